/**
 * The agent's half of the decision monitor: while at least one client
 * watches (GET /v1/monitor on the agent socket), the programs' reporting is
 * on and the ring buffer is read every POLL_MS; each event is resolved to
 * the pods it concerns and written to every client whose filter it passes.
 * When the last client goes, reporting is turned off again, so a node that
 * nobody watches pays one array lookup per program run and nothing else.
 *
 * A client that stops reading is found by a heartbeat (a blank line every
 * HEARTBEAT_MS) failing, so a dead `switchyard monitor` never keeps the
 * monitor on.
 */
import type { Dataplane } from '../dataplane/dataplane';
import { EventRing, MonitorEvent } from '../dataplane/monitor';
import type { MonitorEventLine, Verdict } from '../../../api/agent-wire';
import type { RecordStore } from './state';

const POLL_MS = 100;
const HEARTBEAT_MS = 5000;

export interface MonitorFilter {
  /** namespace/name: events the pod made or receives. */
  pod?: string;
  verdict?: Verdict;
}

export interface MonitorClient {
  filter: MonitorFilter;
  /** Writes one NDJSON line; returns false once the client is gone. */
  write(line: string): boolean;
  /** Ends the stream (the agent is stopping). */
  end(): void;
}

export class DecisionMonitor {
  private readonly clients = new Set<MonitorClient>();
  private ring?: EventRing;
  private poll?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private lost = 0n;

  constructor(
    private readonly dp: Dataplane,
    private readonly store: RecordStore,
    private readonly node: string,
  ) {}

  get watching(): number {
    return this.clients.size;
  }

  /** Adds a client; the returned function removes it. */
  subscribe(client: MonitorClient): () => void {
    this.clients.add(client);
    if (this.clients.size === 1) this.start();
    return () => this.unsubscribe(client);
  }

  private unsubscribe(client: MonitorClient): void {
    if (!this.clients.delete(client) || this.clients.size) return;
    this.stop();
  }

  private start(): void {
    this.ring ??= this.dp.openEvents();
    this.ring.read(); // what an earlier session left unread is not news
    this.lost = this.dp.monitorLost();
    this.dp.setMonitor(true);
    this.poll = setInterval(() => this.drain(), POLL_MS);
    this.heartbeat = setInterval(() => this.broadcast(() => true, ''), HEARTBEAT_MS);
  }

  /** Turns reporting off and ends every stream; safe to call when it is already off (agent start and shutdown). */
  stop(): void {
    for (const c of this.clients) c.end();
    clearInterval(this.poll);
    clearInterval(this.heartbeat);
    this.poll = this.heartbeat = undefined;
    this.dp.setMonitor(false);
    this.ring?.close();
    this.ring = undefined;
    this.clients.clear();
  }

  private broadcast(wants: (f: MonitorFilter) => boolean, line: string): void {
    for (const c of [...this.clients]) {
      if (wants(c.filter) && !c.write(line)) this.unsubscribe(c);
    }
  }

  private drain(): void {
    if (!this.ring) return;
    const events = this.ring.read();
    if (events.length) {
      const names = this.podNames();
      // bpf_ktime_get_ns() and hrtime are both CLOCK_MONOTONIC.
      const wallNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
      for (const e of events) {
        const r = resolve(e, names, this.node, wallNs);
        this.broadcast((f) => matches(r, f), JSON.stringify(r));
      }
    }
    const lost = this.dp.monitorLost();
    if (lost > this.lost) {
      const line = JSON.stringify({ time: new Date().toISOString(), node: this.node, lost: String(lost - this.lost) });
      this.broadcast(() => true, line);
      this.lost = lost;
    }
  }

  /** netns cookie and pod IP -> namespace/name of the pods registered here. */
  private podNames(): Map<string, string> {
    const out = new Map<string, string>();
    for (const r of this.store.all()) {
      out.set(r.netnsCookie, `${r.namespace}/${r.name}`);
      for (const ip of r.ips) out.set(ip, `${r.namespace}/${r.name}`);
    }
    return out;
  }
}

export function resolve(e: MonitorEvent, names: Map<string, string>, node: string, wallNs: bigint): MonitorEventLine {
  const { ktimeNs, ...rest } = e;
  const pod = names.get(e.netnsCookie);
  // The receiving pod: named by the program (sock_ops, getsockopt, tc), or by the address a connect now goes to.
  const peer = (e.podNetnsCookie && names.get(e.podNetnsCookie)) || names.get(e.dst.ip);
  return {
    time: new Date(Number((BigInt(ktimeNs) + wallNs) / 1_000_000n)).toISOString(),
    node,
    ...(pod ? { pod } : {}),
    ...(peer && peer !== pod ? { peerPod: peer } : {}),
    ...rest,
  };
}

export function matches(e: MonitorEventLine, f: MonitorFilter): boolean {
  if (f.verdict && e.verdict !== f.verdict) return false;
  return !f.pod || e.pod === f.pod || e.peerPod === f.pod;
}
