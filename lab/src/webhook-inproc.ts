/**
 * The admission server in-process over real HTTPS, with a fresh CA and
 * serving certificate for 127.0.0.1 in a temporary directory: for the
 * webhook's tests and its benchmark, which need the server without a cluster.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CertificateBundle, generateCertificates } from '../../certs/src/generate';
import { DEFAULT_CONFIG } from '../../webhook/src/config';
import { WebhookMetrics } from '../../webhook/src/metrics';
import { WebhookServer, WebhookServerOptions } from '../../webhook/src/server';

export interface InProcessWebhook {
  server: WebhookServer;
  port: number;
  healthPort: number;
  bundle: CertificateBundle;
  /** Holds tls.crt and tls.key, the files the server watches. */
  dir: string;
  close(): Promise<void>;
}

export async function startInProcessWebhook(opts: Partial<WebhookServerOptions> & Pick<WebhookServerOptions, 'namespaceLabels'>): Promise<InProcessWebhook> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sywebhook-'));
  const bundle = await generateCertificates({ service: 'switchyard-webhook', namespace: 'switchyard-system', ipAddresses: ['127.0.0.1'] });
  fs.writeFileSync(path.join(dir, 'tls.crt'), bundle.cert);
  fs.writeFileSync(path.join(dir, 'tls.key'), bundle.key);
  const server = new WebhookServer({
    config: DEFAULT_CONFIG,
    metrics: new WebhookMetrics(),
    log: () => undefined,
    tls: { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') },
    host: '127.0.0.1',
    port: 0,
    healthPort: 0,
    ready: () => true,
    certPollMs: 60_000, // tests call reloadCertificates() themselves
    ...opts,
  });
  const { port, healthPort } = await server.start();
  return {
    server,
    port,
    healthPort,
    bundle,
    dir,
    close: async () => {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
