/**
 * switchyard-webhook as a process on this machine, for the admission tests
 * (test/e2e/admission.test.ts), which exercise the admission chain of a real
 * apiserver without nodes: the apiserver calls it by URL on loopback.
 * Ready when its /readyz answers 200.
 */
import * as http from 'http';
import * as path from 'path';
import { projectRoot } from '../../native';
import { Proc } from './proc';
import { freePort } from './ports';

export async function startWebhookProcess(o: { certDir: string; port: number; kubeconfig: string; config?: string; logFile?: string }): Promise<Proc> {
  const healthPort = await freePort();
  const webhook = Proc.start('switchyard-webhook', [
    process.execPath,
    path.join(projectRoot(), 'dist/webhook/src/main.js'),
    '--tls-cert', path.join(o.certDir, 'tls.crt'),
    '--tls-key', path.join(o.certDir, 'tls.key'),
    '--port', String(o.port),
    '--health-port', String(healthPort),
    '--kubeconfig', o.kubeconfig,
    ...(o.config ? ['--config', o.config] : []),
  ]);
  if (o.logFile) webhook.tee(o.logFile);
  await webhook.readyWhen('ready (/readyz)', async () => (await httpStatus(`http://127.0.0.1:${healthPort}/readyz`)) === 200, 30_000);
  return webhook;
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => http.get(url, { agent: false }, (res) => resolve(res.resume().statusCode ?? 0)).on('error', () => resolve(0)));
}
