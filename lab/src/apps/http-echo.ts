#!/usr/bin/env node
/**
 * The lab's demo application: an HTTP/1.1 server that answers every request
 * with the pod that served it. One log line per request on stdout.
 *
 *   http-echo [--port 8080]       (or $PORT)
 */
import * as http from 'http';
import * as os from 'os';

const i = process.argv.indexOf('--port');
const port = Number(i >= 0 ? process.argv[i + 1] : process.env.PORT ?? 8080);
const name = process.env.HOSTNAME ?? os.hostname();

const server = http.createServer((req, res) => {
  const body = `hello from ${name}\n`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-served-by': name });
  res.end(body);
  process.stdout.write(`${new Date().toISOString()} ${req.method} ${req.url} from=${req.socket.remoteAddress}:${req.socket.remotePort} status=200\n`);
});
server.listen(port, () => process.stdout.write(`${new Date().toISOString()} listening on :${port} as ${name}\n`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.close(() => process.exit(0)));
