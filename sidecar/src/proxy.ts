/**
 * The reference sidecar: a transparent TCP proxy for the two redirected
 * listeners. Outbound connections go to the original destination; inbound
 * connections go to the application's port on the pod's own address (the
 * original destination too). Bytes are piped both ways with half-close, and
 * every connection ends in exactly one access-log line.
 */
import * as net from 'net';
import { Destination, originalDst } from './original-dst';

export type Direction = 'outbound' | 'inbound';

export interface AccessRecord {
  direction: Direction;
  source: string;
  destination: string;
  /** bytes from the downstream client to the upstream */
  sent: number;
  /** bytes from the upstream back to the client */
  received: number;
  durationMs: number;
  result: 'ok' | 'no_original_dst' | 'upstream_connect_failed' | 'reset';
  error?: string;
}

export interface ProxyOptions {
  outboundPort: number;
  inboundPort: number;
  listenHost?: string;
  connectTimeoutMs?: number;
  onAccess: (r: AccessRecord) => void;
}

const hostPort = (address: string | undefined, port: number | undefined) =>
  address && address.includes(':') && !address.startsWith('::ffff:')
    ? `[${address}]:${port}`
    : `${(address ?? '?').replace(/^::ffff:/, '')}:${port}`;

export function formatAccess(r: AccessRecord): string {
  const fields = [
    r.direction,
    `src=${r.source}`,
    `dst=${r.destination}`,
    `sent=${r.sent}`,
    `received=${r.received}`,
    `duration_ms=${r.durationMs}`,
    `result=${r.result}`,
  ];
  if (r.error) fields.push(`error=${JSON.stringify(r.error)}`);
  return fields.join(' ');
}

export class TransparentProxy {
  private readonly servers: net.Server[] = [];
  private readonly live = new Set<net.Socket>();
  connections = 0;

  constructor(private readonly opts: ProxyOptions) {}

  async start(): Promise<void> {
    await this.listen('outbound', this.opts.outboundPort);
    await this.listen('inbound', this.opts.inboundPort);
  }

  private listen(direction: Direction, port: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.handle(direction, socket));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      // '::' is dual-stack: IPv4 clients arrive v4-mapped.
      server.listen({ port, host: this.opts.listenHost ?? '::', ipv6Only: false }, () => resolve());
    });
  }

  private handle(direction: Direction, client: net.Socket): void {
    this.connections++;
    const started = process.hrtime.bigint();
    const source = hostPort(client.remoteAddress, client.remotePort);
    this.live.add(client);

    let dst: Destination | null;
    try {
      dst = originalDst(client);
    } catch (e) {
      dst = null;
    }
    const record: AccessRecord = {
      direction,
      source,
      destination: dst ? hostPort(dst.address, dst.port) : '-',
      sent: 0,
      received: 0,
      durationMs: 0,
      result: 'ok',
    };
    let finished = false;
    const finish = (upstream?: net.Socket) => {
      if (finished) return;
      finished = true;
      record.sent = upstream ? upstream.bytesWritten : 0;
      record.received = client.bytesWritten;
      record.durationMs = Number((process.hrtime.bigint() - started) / 1000000n);
      this.live.delete(client);
      this.opts.onAccess(record);
    };

    if (!dst) {
      // Without the original destination there is nowhere safe to send the bytes.
      record.result = 'no_original_dst';
      client.destroy();
      finish();
      return;
    }

    const upstream = net.connect({ host: dst.address, port: dst.port, allowHalfOpen: true, noDelay: true });
    this.live.add(upstream);
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.opts.connectTimeoutMs ?? 10000);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      clearTimeout(timer);
    });

    // pipe() ends the destination when the source ends: that is the half-close.
    client.pipe(upstream);
    upstream.pipe(client);

    const fail = (which: 'client' | 'upstream') => (err: Error) => {
      clearTimeout(timer);
      if (!record.error) {
        record.result = which === 'upstream' && !connected ? 'upstream_connect_failed' : 'reset';
        record.error = err.message;
      }
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail('client'));
    upstream.on('error', fail('upstream'));

    let closed = 0;
    const onClose = () => {
      if (++closed === 2) {
        this.live.delete(upstream);
        finish(upstream);
      }
    };
    client.once('close', onClose);
    upstream.once('close', onClose);
  }

  async close(): Promise<void> {
    for (const s of this.live) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
