/**
 * The webhook's EventSink: events.k8s.io/v1 create and merge-patch as plain
 * JSON over the client-node KubeConfig's credentials (its typed Events API
 * would re-serialize the body and expects Date objects for MicroTime).
 */
import * as k8s from '@kubernetes/client-node';
import * as https from 'https';
import { EventSink, eventPath } from '../../lib/events';

async function send(kc: k8s.KubeConfig, method: 'POST' | 'PATCH', path: string, body: unknown): Promise<void> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  const opts: https.RequestOptions = {
    method,
    headers: { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json', accept: 'application/json' },
    timeout: 10_000,
  };
  await kc.applyToHTTPSOptions(opts);
  const data = JSON.stringify(body);
  await new Promise<void>((resolve, reject) => {
    const req = https.request(new URL(path, server), opts, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => (text += c)).on('end', () => {
        if ((res.statusCode ?? 0) < 300) return resolve();
        let message = text.slice(0, 300);
        try {
          message = JSON.parse(text).message ?? message;
        } catch {
          /* not a Status */
        }
        reject(new Error(`${method} ${path}: HTTP ${res.statusCode}: ${message}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

export function eventSink(kc: k8s.KubeConfig): EventSink {
  return {
    create: (ns, event) => send(kc, 'POST', eventPath(ns), event),
    patch: (ns, name, patch) => send(kc, 'PATCH', eventPath(ns, name), patch),
  };
}
