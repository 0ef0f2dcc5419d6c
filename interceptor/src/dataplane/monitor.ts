/**
 * The kernel half of the decision monitor (bpf/headers/monitor.h): turning
 * it on and off through the sy_monitor flag map, reading what was lost, and
 * decoding the events the programs put on the sy_events ring buffer.
 *
 * Each event's reason is the sy_counter the program also counted, so an
 * event and the counters always agree; its verdict follows from the reason.
 */
import * as path from 'path';
import { RingbufHandle, native } from '../../../native';
import { decodeAddr } from '../../../api/addr';
import { COUNTERS, MONITOR_BUDGET, MONITOR_CONFIG, MONITOR_EVENT, counterKey } from './abi';
import { EVENTS_RING } from './layout';
import type { MonitorEventLine, MonitorHook, Verdict } from '../../../api/agent-wire';
import type { MapFd } from './services';

/** Per CPU, per second: enough to follow a busy pod, small enough that the ring never grows the agent. */
export const DEFAULT_EVENTS_PER_SEC = 2000;

const HOOKS: Record<number, MonitorHook> = { 1: 'connect4', 2: 'connect6', 3: 'sock_ops', 4: 'getsockopt', 5: 'tc-ingress', 6: 'tc-node' };

const DROPS = new Set([
  'connect_refused_map_full',
  'lb_no_backend',
  'sockops_origdst_map_full',
  'tc_dropped_map_full',
  'tc_dropped_collision',
  'np_no_backend',
  'np_snat_ports_exhausted',
  'np_icmp_too_big',
]);
const REDIRECTS = new Set([
  'connect_redirected_outbound',
  'connect_redirected_inbound',
  'lb_translated',
  'sockops_origdst_moved',
  'getsockopt_answered',
  'tc_inbound_new',
  'np_local',
  'np_snat',
  'np_dsr',
]);

export function verdictOf(reason: string, balanced: boolean): Verdict {
  if (DROPS.has(reason)) return 'drop';
  return REDIRECTS.has(reason) || balanced ? 'redirect' : 'pass';
}

/** One decision as the ring carries it (the agent adds time, node and pod names: api/agent-wire.ts). */
export type MonitorEvent = Omit<MonitorEventLine, 'time' | 'node' | 'pod' | 'peerPod'> & {
  /** bpf_ktime_get_ns(): CLOCK_MONOTONIC. */
  ktimeNs: string;
};

const f = (name: string) => MONITOR_EVENT.fields[name][0];

export function decodeMonitorEvent(b: Buffer): MonitorEvent {
  if (b.length < MONITOR_EVENT.size) throw new Error(`monitor event of ${b.length} bytes, expected ${MONITOR_EVENT.size}`);
  const addr = (name: string) => decodeAddr(b.subarray(f(name), f(name) + 16));
  const reasonIndex = b.readUInt32LE(f('reason'));
  const reason = reasonIndex < COUNTERS.length ? counterKey(COUNTERS[reasonIndex]) : `reason_${reasonIndex}`;
  const balanced = (b[f('flags')] & 1) !== 0;
  const hook = HOOKS[b[f('hook')]] ?? (`hook_${b[f('hook')]}` as MonitorHook);
  const pod = b.readBigUInt64LE(f('pod_netns_cookie'));
  const srcPort = b.readUInt16LE(f('src_port'));
  const inTask = hook === 'connect4' || hook === 'connect6' || hook === 'getsockopt';
  return {
    ktimeNs: String(b.readBigUInt64LE(f('ts_ns'))),
    hook,
    verdict: verdictOf(reason, balanced),
    reason,
    balanced,
    netnsCookie: String(b.readBigUInt64LE(f('netns_cookie'))),
    ...(pod ? { podNetnsCookie: String(pod) } : {}),
    ...(srcPort ? { src: { ip: addr('src'), port: srcPort } } : {}),
    dst: { ip: addr('dst'), port: b.readUInt16LE(f('dst_port')) },
    orig: { ip: addr('orig'), port: b.readUInt16LE(f('orig_port')) },
    ...(inTask ? { pid: b.readUInt32LE(f('pid')), uid: b.readUInt32LE(f('uid')) } : {}),
  };
}

const KEY0 = Buffer.alloc(4);

/** Turns the programs' reporting on (at most eventsPerSec per CPU) or off. */
export function setMonitor(fd: MapFd, on: boolean, eventsPerSec = DEFAULT_EVENTS_PER_SEC): void {
  const v = Buffer.alloc(MONITOR_CONFIG.size);
  v.writeUInt32LE(on ? 1 : 0, MONITOR_CONFIG.fields.enabled[0]);
  v.writeUInt32LE(eventsPerSec, MONITOR_CONFIG.fields.events_per_sec[0]);
  native().mapUpdate(fd('sy_monitor'), KEY0, v);
}

export function monitorEnabled(fd: MapFd): boolean {
  const v = native().mapLookup(fd('sy_monitor'), KEY0);
  return !!v && v.readUInt32LE(MONITOR_CONFIG.fields.enabled[0]) !== 0;
}

/** Events the programs could not report since load, over all CPUs (rate limit or a full ring). */
export function monitorLost(fd: MapFd): bigint {
  const v = native().mapLookup(fd('sy_monitor_budget'), KEY0);
  if (!v) return 0n;
  let lost = 0n;
  const stride = Math.ceil(MONITOR_BUDGET.size / 8) * 8; // per-CPU values are 8-byte aligned
  for (let off = 0; off + stride <= v.length; off += stride) lost += v.readBigUInt64LE(off + MONITOR_BUDGET.fields.lost[0]);
  return lost;
}

/** A reader of the pinned ring buffer; one per agent. */
export class EventRing {
  private handle?: RingbufHandle;

  constructor(pinRoot: string) {
    this.handle = native().ringbufOpen(path.join(pinRoot, EVENTS_RING));
  }

  /** The events waiting now, at most max, oldest first; never blocks. */
  read(max = 4096): MonitorEvent[] {
    if (!this.handle) return [];
    return native().ringbufConsume(this.handle, max).map(decodeMonitorEvent);
  }

  close(): void {
    if (this.handle) native().ringbufClose(this.handle);
    this.handle = undefined;
  }
}
