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
import * as os from 'os';
import { loadConfig } from './config';
import { EventRecorder } from '../../lib/events';
import { stdoutLogger } from '../../lib/log';
import { WebhookMetrics } from './metrics';
import { NamespaceCache } from './namespaces';
import { KubeClient } from '../../lib/kube/client';
import { loadKubeConfig } from '../../lib/kube/config';
import { apiEventSink } from '../../lib/kube/event-sink';
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
  const tls = { certFile: arg('tls-cert'), keyFile: arg('tls-key') };
  const port = Number(arg('port', '8443'));
  const healthPort = Number(arg('health-port', '9443'));
  const kubeconfig = process.argv.includes('--kubeconfig') ? arg('kubeconfig') : process.env.KUBECONFIG || undefined;
  const kube = new KubeClient(loadKubeConfig(kubeconfig), 'switchyard-webhook');

  const namespaces = new NamespaceCache(kube);
  const metrics = new WebhookMetrics(true);
  const events = new EventRecorder(apiEventSink(kube), {
    controller: 'switchyard.dev/webhook',
    instance: os.hostname(), // the pod's name
    onError: (e) => stdoutLogger('warn', 'event not recorded', { error: e.message }),
  });
  const server = new WebhookServer({
    config,
    namespaceLabels: namespaces.labels,
    metrics,
    events,
    tls,
    port,
    healthPort,
    ready: () => namespaces.synced,
  });
  await server.start();
  // Serve (and report not-ready) while the first namespace list is in flight.
  namespaces.start().catch((e: Error) => stdoutLogger('error', 'namespace cache failed to start', { error: e.message }));

  const stop = () => {
    namespaces.stop();
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: Error) => {
  process.stderr.write(`switchyard-webhook: ${e.message}\n`);
  process.exit(1);
});
