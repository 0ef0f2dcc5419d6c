#!/usr/bin/env node
/**
 * switchyard-webhook: the sidecar-injection admission server.
 *
 *   switchyard-webhook --tls-cert FILE --tls-key FILE [--port 8443] [--health-port 9443]
 *                      [--config FILE] [--kubeconfig FILE]
 *
 * The Kubernetes client uses in-cluster credentials, or --kubeconfig /
 * $KUBECONFIG. Logs are logfmt on stdout, one line per admission decision.
 */
import * as k8s from '@kubernetes/client-node';
import * as os from 'os';
import { loadConfig } from './config';
import { EventRecorder } from '../../lib/events';
import { stdoutLogger } from '../../lib/log';
import { WebhookMetrics } from './metrics';
import { NamespaceCache } from './namespaces';
import { eventSink } from './event-sink';
import { WebhookServer } from './server';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : process.env[`SWITCHYARD_${name.toUpperCase().replace(/-/g, '_')}`] ?? fallback;
  if (v === undefined) {
    process.stderr.write(`switchyard-webhook: --${name} is required\n`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const config = loadConfig(process.argv.includes('--config') ? arg('config') : undefined);
  const kc = new k8s.KubeConfig();
  const kubeconfig = process.argv.includes('--kubeconfig') ? arg('kubeconfig') : undefined;
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();

  const namespaces = new NamespaceCache(kc);
  const metrics = new WebhookMetrics(true);
  const events = new EventRecorder(eventSink(kc), {
    controller: 'switchyard.dev/webhook',
    instance: os.hostname(), // the pod's name
    onError: (e) => stdoutLogger('warn', 'event not recorded', { error: e.message }),
  });
  const server = new WebhookServer({
    config,
    namespaceLabels: namespaces.labels,
    metrics,
    events,
    tls: { certFile: arg('tls-cert'), keyFile: arg('tls-key') },
    port: Number(arg('port', '8443')),
    healthPort: Number(arg('health-port', '9443')),
    ready: () => namespaces.synced,
  });
  await server.start();
  // Serve (and report not-ready) while the first namespace list is in flight.
  namespaces.start().catch((e: Error) => stdoutLogger('error', 'namespace cache failed to start', { error: e.message }));

  const stop = () => void Promise.all([server.close(), namespaces.stop()]).then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: Error) => {
  process.stderr.write(`switchyard-webhook: ${e.message}\n`);
  process.exit(1);
});
