/**
 * What the dataplane's maps say about traffic: node counters, held
 * connections, entry counts and fill. Read-only; Dataplane delegates here.
 */
import * as fs from 'fs';
import { native } from '../../../native';
import { COUNTERS, CounterName, OrigDst, Tuple, decodeOrigDst, decodeTuple, sumPerCpu } from './abi';
import type { MapName } from './layout';
import type { MapFd } from './services';

/** Node-wide counters, summed over CPUs. */
export function counters(fd: MapFd): Record<CounterName, bigint> {
  const n = native();
  const out = {} as Record<CounterName, bigint>;
  COUNTERS.forEach((name, i) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(i);
    const v = n.mapLookup(fd('sy_counters'), key);
    out[name] = v ? sumPerCpu(v) : 0n;
  });
  return out;
}

/** Connections whose original destination the dataplane is holding. */
export function connections(fd: MapFd): (Tuple & OrigDst)[] {
  const n = native();
  const out: (Tuple & OrigDst)[] = [];
  for (const k of n.mapKeys(fd('sy_origdst'))) {
    const v = n.mapLookup(fd('sy_origdst'), k);
    if (v) out.push({ ...decodeTuple(k), ...decodeOrigDst(v) });
  }
  return out;
}

/** Entry counts, for fill metrics and leak checks. */
export function mapEntries(fd: MapFd, name: Exclude<MapName, 'sy_counters' | 'sy_sock_hash'>): number {
  return native().mapKeys(fd(name)).length;
}

/** Current entries and capacity of every sized map, for fill metrics. */
export function mapFill(fd: MapFd): Record<string, { entries: number; max: number; memlockBytes: number }> {
  const out: Record<string, { entries: number; max: number; memlockBytes: number }> = {};
  for (const m of ['sy_pods', 'sy_pod_by_ip', 'sy_origdst', 'sy_origdst_transient', 'sy_pod_counters', 'sy_lb_external', 'sy_np_flows', 'sy_np_snat', 'sy_np_revnat'] as const) {
    out[m] = { entries: native().mapKeys(fd(m)).length, max: native().mapInfo(fd(m)).maxEntries, memlockBytes: memlock(fd(m)) };
  }
  return out;
}

/** The kernel's charge for a map (its fdinfo's memlock line), in bytes; 0 when unreadable. */
function memlock(mapFd: number): number {
  try {
    return Number(/^memlock:\s+(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${mapFd}`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
