/**
 * The admission server: express 5 over HTTPS (TLS 1.2+), POST /mutate, plus
 * /healthz, /readyz and /metrics on a separate plain-HTTP port. It owns the
 * transport concerns - content type, body limit, malformed JSON, timeouts,
 * certificate reload - and hands the parsed review to the pure core.
 */
import express, { NextFunction, Request, Response } from 'express';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as tls from 'tls';
import { AddressInfo } from 'net';
import { BadReview, NamespaceLabels, review } from './admission';
import { InjectorConfig } from './config';
import { Logger, stdoutLogger } from '../../lib/log';
import type { EventRecorder } from '../../lib/events';
import { admissionEvent } from './events';
import { WebhookMetrics } from './metrics';

export interface AdmissionAppOptions {
  config: InjectorConfig;
  namespaceLabels: NamespaceLabels;
  metrics: WebhookMetrics;
  log?: Logger;
  /** Largest accepted body. Pods with a 1 MB env list must fit. Default 8 MiB. */
  bodyLimit?: string;
  /** Where decisions a user should see become Kubernetes Events (./events.ts). */
  events?: EventRecorder;
}

/** The express app for POST /mutate (transport-agnostic: tests drive it over HTTP or HTTPS). */
export function admissionApp(opts: AdmissionAppOptions): express.Express {
  const log = opts.log ?? stdoutLogger;
  const app = express();
  app.disable('x-powered-by');

  app.post(
    '/mutate',
    (req: Request, res: Response, next: NextFunction) => {
      if (!req.is('application/json')) {
        res.status(415).json({ error: `content type must be application/json, got ${req.headers['content-type'] ?? 'none'}` });
        return;
      }
      next();
    },
    express.json({ limit: opts.bodyLimit ?? '8mb', strict: true }),
    (req: Request, res: Response) => {
      const started = process.hrtime.bigint();
      try {
        const outcome = review(req.body, opts.namespaceLabels, opts.config);
        res.status(200).json(outcome.review);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        opts.metrics.requests.inc({ decision: outcome.decision.action, reason: outcome.decision.reason });
        opts.metrics.latency.observe(seconds);
        log(outcome.decision.action === 'deny' ? 'warn' : 'info', `pod ${outcome.decision.action === 'inject' ? 'injected' : outcome.decision.action === 'deny' ? 'denied' : 'not injected'}`, {
          namespace: outcome.namespace,
          pod: outcome.pod,
          owner: outcome.owner,
          decision: outcome.decision.action,
          reason: outcome.decision.reason,
          detail: outcome.decision.message,
          patch_bytes: outcome.patchBytes || undefined,
          dry_run: outcome.dryRun || undefined,
          duration_ms: (seconds * 1000).toFixed(2),
        });
        const event = outcome.object && !outcome.dryRun ? admissionEvent(outcome.decision, outcome.object, outcome.namespace, outcome.pod) : undefined;
        if (event) opts.events?.record(event);
      } catch (e) {
        const bad = e instanceof BadReview;
        opts.metrics.requests.inc({ decision: 'error', reason: bad ? 'bad-request' : 'internal' });
        log(bad ? 'warn' : 'error', 'admission request rejected', { error: (e as Error).message });
        res.status(bad ? 400 : 500).json({ error: bad ? `malformed AdmissionReview: ${(e as Error).message}` : 'internal error' });
      }
    },
  );

  // Body-parser failures: too large, not JSON.
  app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const status = err.type === 'entity.too.large' ? 413 : err.type === 'entity.parse.failed' ? 400 : err.status ?? 500;
    const message =
      status === 413 ? `request body exceeds the limit of ${opts.bodyLimit ?? '8mb'}` : status === 400 ? `malformed JSON: ${err.message}` : err.message;
    opts.metrics.requests.inc({ decision: 'error', reason: status === 413 ? 'too-large' : 'bad-request' });
    log('warn', 'admission request rejected', { status, error: message });
    res.status(status).json({ error: message });
  });
  return app;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface WebhookServerOptions extends AdmissionAppOptions {
  tls: TlsFiles;
  host?: string;
  port: number;
  healthPort: number;
  /** Ready once the namespace cache has synced. */
  ready: () => boolean;
  /** How often to look for rotated certificate files (ms). */
  certPollMs?: number;
  /** How long a client may take to complete the TLS handshake (ms). Default 5000. */
  handshakeTimeoutMs?: number;
}

export class WebhookServer {
  private https!: https.Server;
  private health!: http.Server;
  private certStamp = '';

  constructor(private readonly opts: WebhookServerOptions) {}

  private readTls(): { cert: Buffer; key: Buffer } {
    return { cert: fs.readFileSync(this.opts.tls.certFile), key: fs.readFileSync(this.opts.tls.keyFile) };
  }

  private stamp(): string {
    const s = (f: string) => {
      const st = fs.statSync(f);
      return `${st.ino}:${st.mtimeMs}:${st.size}`;
    };
    return `${s(this.opts.tls.certFile)}|${s(this.opts.tls.keyFile)}`;
  }

  async start(): Promise<{ port: number; healthPort: number }> {
    const log = this.opts.log ?? stdoutLogger;
    const material = this.readTls();
    tls.createSecureContext(material); // fail fast on a bad pair
    this.certStamp = this.stamp();
    this.https = https.createServer(
      {
        ...material,
        minVersion: 'TLSv1.2',
        // A connection that never completes TLS is dropped after this, not Node's default 120 s.
        handshakeTimeout: this.opts.handshakeTimeoutMs ?? 5_000,
        requestTimeout: 10_000,
        headersTimeout: 5_000,
        keepAliveTimeout: 30_000,
      },
      admissionApp(this.opts),
    );
    const health = express();
    health.get('/healthz', (_req, res) => void res.status(200).send('ok\n'));
    health.get('/readyz', (_req, res) => void (this.opts.ready() ? res.status(200).send('ready\n') : res.status(503).send('namespace cache not synced\n')));
    health.get('/metrics', async (_req, res) => {
      res.set('content-type', this.opts.metrics.registry.contentType).send(await this.opts.metrics.registry.metrics());
    });
    this.health = http.createServer(health);

    const listen = (s: http.Server, port: number) =>
      new Promise<number>((resolve, reject) => s.once('error', reject).listen(port, this.opts.host ?? '::', () => resolve((s.address() as AddressInfo).port)));
    const port = await listen(this.https, this.opts.port);
    const healthPort = await listen(this.health, this.opts.healthPort);

    // Secret volumes rotate by swapping a symlink: poll the stat, then swap contexts without dropping connections.
    fs.watchFile(this.opts.tls.certFile, { interval: this.opts.certPollMs ?? 2000 }, () => this.reloadCertificates());
    log('info', 'webhook listening', { port, health_port: healthPort, tls_min: 'TLSv1.2' });
    return { port, healthPort };
  }

  /** Loads the certificate files again if they changed. Keeps the old pair when the new one is unusable. */
  reloadCertificates(): boolean {
    const log = this.opts.log ?? stdoutLogger;
    try {
      const stamp = this.stamp();
      if (stamp === this.certStamp) return false;
      const material = this.readTls();
      tls.createSecureContext(material);
      this.https.setSecureContext({ ...material, minVersion: 'TLSv1.2' });
      this.certStamp = stamp;
      this.opts.metrics.certReloads.inc({ result: 'ok' });
      log('info', 'serving certificate reloaded', { cert: this.opts.tls.certFile });
      return true;
    } catch (e) {
      this.opts.metrics.certReloads.inc({ result: 'error' });
      log('error', 'serving certificate reload failed; keeping the previous one', { error: (e as Error).message });
      return false;
    }
  }

  async close(): Promise<void> {
    fs.unwatchFile(this.opts.tls.certFile);
    this.https.closeAllConnections();
    await Promise.all([this.https, this.health].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
