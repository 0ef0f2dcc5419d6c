/**
 * `switchyard monitor`: the kernel's decisions as they happen, one line
 * each, streamed from the node agent (GET /v1/monitor on its socket), like
 * `cilium monitor`. The kubectl plugin runs it in every agent pod with
 * `-o json` and prints the lines with formatEvent, so both look the same.
 */
import * as http from 'http';
import { MONITOR_PATH, MonitorEventLine, MonitorLostLine } from '../api/agent-wire';
import { socketError } from './agent-client';

export type MonitorLine = MonitorEventLine | MonitorLostLine;

const hostPort = (a: { ip: string; port: number }) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`);

/** One event as a line of text: when, where, which program, what it decided and why, and the connection. */
export function formatEvent(e: MonitorLine, withNode = false): string {
  const time = e.time.slice(11, 23);
  const node = withNode ? `${e.node} ` : '';
  if ('lost' in e) return `${time} ${node}!! ${e.lost} decisions were not reported (rate limit or full ring buffer)\n`;
  const orig = hostPort(e.orig);
  const dst = hostPort(e.dst);
  const conn = e.src ? `${hostPort(e.src)} -> ${dst}${dst !== orig ? ` (asked ${orig})` : ''}` : dst !== orig ? `${orig} => ${dst}` : `${orig} (unchanged)`;
  const extra = [
    e.balanced ? 'balanced' : '',
    e.peerPod ? `to=${e.peerPod}` : '',
    e.pid !== undefined ? `pid=${e.pid} uid=${e.uid}` : '',
  ].filter(Boolean);
  return `${time} ${node}${(e.pod ?? (e.hook === 'tc-node' ? '(node)' : '(not in mesh)')).padEnd(24)} ${e.hook.padEnd(10)} ${e.verdict.padEnd(8)} ${e.reason.padEnd(28)} ${conn}${extra.length ? `  ${extra.join(' ')}` : ''}\n`;
}

export interface MonitorOptions {
  socket: string;
  pod?: string;
  type?: string;
  json: boolean;
  /** Stop after this many events (lost notices do not count). */
  count?: number;
  /** Stop when stdin reaches end of file: `kubectl exec -i` closes it when the client goes. */
  untilStdinCloses?: boolean;
}

/** Streams until count events, stdin's end, or the agent ends the stream. */
export function streamMonitor(o: MonitorOptions, out: (s: string) => void): Promise<number> {
  const query = new URLSearchParams({ ...(o.pod ? { pod: o.pod } : {}), ...(o.type ? { type: o.type } : {}) }).toString();
  return new Promise((resolve, reject) => {
    let seen = 0;
    const req = http.get({ socketPath: o.socket, path: `${MONITOR_PATH}${query ? `?${query}` : ''}`, agent: false }, (res) => {
      let buf = '';
      const done = (code: number) => {
        req.destroy();
        resolve(code);
      };
      if (res.statusCode !== 200) {
        res.on('data', (c) => (buf += c)).on('end', () => {
          try {
            reject(new Error(JSON.parse(buf).error));
          } catch {
            reject(new Error(`the interceptor answered ${res.statusCode}: ${buf.slice(0, 200)}`));
          }
        });
        return;
      }
      if (o.untilStdinCloses) process.stdin.on('end', () => done(0)).resume();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line) continue; // the agent's heartbeat
          const e = JSON.parse(line) as MonitorLine;
          out(o.json ? `${line}\n` : formatEvent(e));
          if (!('lost' in e) && o.count !== undefined && ++seen >= o.count) return done(0);
        }
      });
      res.on('end', () => resolve(0));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET' && o.count !== undefined && seen >= o.count) return;
      reject(socketError(e, o.socket));
    });
  });
}
