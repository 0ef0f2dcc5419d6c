#!/usr/bin/env node
/**
 * One HTTP GET, printed as one line: `GET <url> status=<code> body=<first line>`.
 * Exit 0 on a 2xx answer, 1 otherwise (with the error), like `curl -f`.
 *
 *   http-get URL [--timeout-ms 5000]
 */
import * as http from 'http';

const url = process.argv[2];
const t = process.argv.indexOf('--timeout-ms');
const timeout = Number(t >= 0 ? process.argv[t + 1] : 5000);
if (!url) {
  process.stderr.write('usage: http-get URL [--timeout-ms N]\n');
  process.exit(2);
}
const req = http.get(url, { timeout, agent: false }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (c) => (body += c));
  res.on('end', () => {
    process.stdout.write(`GET ${url} status=${res.statusCode} body=${JSON.stringify(body.split('\n')[0])}\n`);
    process.exit(res.statusCode && res.statusCode < 300 ? 0 : 1);
  });
});
req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
req.on('error', (e) => {
  process.stdout.write(`GET ${url} error=${JSON.stringify(e.message)}\n`);
  process.exit(1);
});
