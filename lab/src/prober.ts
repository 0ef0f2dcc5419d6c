#!/usr/bin/env node
/**
 * The lab node's prober. It runs inside the node's network namespace, where
 * pod IPs are routable (the kubelet probes pods from the node), and answers
 * one JSON line per JSON request line on stdin:
 *
 *   {"id":1,"type":"http","host":"10.244.0.5","port":15021,"path":"/healthz/ready","timeoutMs":1000}
 *   {"id":1,"ok":true,"detail":"HTTP 200"}
 *
 * HTTP success is a status from 200 to 399, as for the kubelet; TCP success is
 * an accepted connection.
 */
import * as http from 'http';
import * as net from 'net';
import * as readline from 'readline';

interface ProbeRequest {
  id: number;
  type: 'http' | 'tcp';
  host: string;
  port: number;
  path?: string;
  timeoutMs: number;
}

function reply(id: number, ok: boolean, detail: string): void {
  process.stdout.write(JSON.stringify({ id, ok, detail }) + '\n');
}

function probe(r: ProbeRequest): void {
  if (r.type === 'tcp') {
    const s = net.connect({ host: r.host, port: r.port, timeout: r.timeoutMs });
    s.on('connect', () => {
      reply(r.id, true, 'connected');
      s.destroy();
    });
    s.on('timeout', () => s.destroy(new Error(`no connection within ${r.timeoutMs} ms`)));
    s.on('error', (e) => reply(r.id, false, e.message));
    return;
  }
  const req = http.get({ host: r.host, port: r.port, path: r.path ?? '/', timeout: r.timeoutMs, agent: false, headers: { 'user-agent': 'kube-probe/switchyard-lab' } }, (res) => {
    res.resume();
    const code = res.statusCode ?? 0;
    reply(r.id, code >= 200 && code < 400, `HTTP ${code}`);
  });
  req.on('timeout', () => req.destroy(new Error(`no answer within ${r.timeoutMs} ms`)));
  req.on('error', (e) => reply(r.id, false, e.message));
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let r: ProbeRequest;
  try {
    r = JSON.parse(line);
  } catch {
    process.stderr.write(`prober: not a JSON request: ${line.slice(0, 200)}\n`);
    return;
  }
  probe(r);
}).on('close', () => process.exit(0));
process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
