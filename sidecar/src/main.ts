#!/usr/bin/env node
/**
 * switchyard-sidecar: the reference proxy injected by the webhook.
 *
 *   switchyard-sidecar [--outbound-port 15001] [--inbound-port 15003] [--admin-port 15021]
 *
 *   switchyard-sidecar wait-ready [--admin-port 15021] [--timeout-s 60]
 *
 * The second form is the classic-mode postStart hook: it returns once the
 * proxy answers /healthz/ready, so the kubelet starts the app only then.
 * Environment variables SWITCHYARD_OUTBOUND_PORT / _INBOUND_PORT / _ADMIN_PORT
 * do the same as the flags. Access log lines go to stdout; one JSON 'ready' line is printed
 * once every listener is up (and /healthz/ready answers 200).
 */
import * as http from 'http';
import { TransparentProxy, formatAccess } from './proxy';

function option(name: string, env: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[env];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    process.stderr.write(`switchyard-sidecar: --${name} must be a port from 1 to 65535, got '${raw}'\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const outboundPort = option('outbound-port', 'SWITCHYARD_OUTBOUND_PORT', 15001);
  const inboundPort = option('inbound-port', 'SWITCHYARD_INBOUND_PORT', 15003);
  const adminPort = option('admin-port', 'SWITCHYARD_ADMIN_PORT', 15021);

  const proxy = new TransparentProxy({
    outboundPort,
    inboundPort,
    onAccess: (r) => process.stdout.write(`${new Date().toISOString()} ${formatAccess(r)}\n`),
  });
  await proxy.start();

  const admin = http.createServer((req, res) => {
    if (req.url === '/healthz/ready') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
    } else if (req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ connections: proxy.connections }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => admin.once('error', reject).listen(adminPort, '::', resolve));

  process.stdout.write(
    JSON.stringify({ event: 'ready', outboundPort, inboundPort, adminPort, uid: process.getuid?.(), pid: process.pid }) + '\n',
  );
  if (process.getuid?.() === 0) {
    process.stderr.write('switchyard-sidecar: running as root; the interceptor only exempts the configured sidecar uid\n');
  }

  const stop = () => {
    admin.close();
    void proxy.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function waitReady(): Promise<void> {
  const port = option('admin-port', 'SWITCHYARD_ADMIN_PORT', 15021);
  const deadline = Date.now() + option('timeout-s', 'SWITCHYARD_WAIT_TIMEOUT_S', 60) * 1000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) =>
      http
        .get({ host: '127.0.0.1', port, path: '/healthz/ready', timeout: 1000 }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        })
        .on('error', () => resolve(false))
        .on('timeout', function (this: http.ClientRequest) {
          this.destroy();
        }),
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`the proxy did not become ready on :${port}/healthz/ready in time`);
    await new Promise((r) => setTimeout(r, 100)); // poll interval of a readiness probe
  }
}

(process.argv[2] === 'wait-ready' ? waitReady() : main()).catch((e: Error) => {
  process.stderr.write(`switchyard-sidecar: ${e.message}\n`);
  process.exit(1);
});
