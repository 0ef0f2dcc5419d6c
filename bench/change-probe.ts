/**
 * The "first connection after a change" probe: one new connection to URL's
 * host:port every millisecond, a GET, and the body. Prints a JSON line each
 * time the body differs from the last one, with the CLOCK_MONOTONIC time of
 * the connection that brought it (the bench's clock too), so the bench can
 * tell when a client first reached the backend an EndpointSlice change named.
 *
 *   node dist/bench/change-probe.js --to IP:PORT
 */
import * as net from 'net';

const i = process.argv.indexOf('--to');
const m = i > 0 ? /^([\d.]+):(\d+)$/.exec(process.argv[i + 1] ?? '') : null;
if (!m) {
  process.stderr.write('usage: change-probe --to IP:PORT\n');
  process.exit(2);
}
const [host, port] = [m[1], Number(m[2])];

function once(): Promise<{ body: string; tNs: bigint }> {
  return new Promise((resolve) => {
    const t = process.hrtime.bigint();
    const s = net.connect({ host, port });
    let data = '';
    s.setTimeout(1000, () => s.destroy());
    s.on('connect', () => s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => (data += d));
    s.on('error', () => undefined);
    s.on('close', () => {
      const at = data.indexOf('\r\n\r\n');
      resolve({ body: at >= 0 ? data.slice(at + 4) : `(no answer: ${data ? 'bad reply' : 'connection failed'})`, tNs: t });
    });
  });
}

async function main(): Promise<void> {
  let last = '';
  for (;;) {
    const r = await once();
    if (r.body !== last) {
      last = r.body;
      process.stdout.write(JSON.stringify({ event: 'body', body: r.body, tNs: String(r.tNs) }) + '\n');
    }
    await new Promise((res) => setTimeout(res, 1));
  }
}

void main();
