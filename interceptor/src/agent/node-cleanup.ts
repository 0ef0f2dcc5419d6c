/**
 * `switchyard-interceptor cleanup`, run on every node by the uninstall
 * DaemonSet: after it, nothing of Switchyard is left on the node.
 *
 *   1. tc: Switchyard's filters (its priority and handle) come off every pod
 *      interface it can find: those the agent's registration records name
 *      (with the clsact qdisc the agent created there), then eth0 in every
 *      network namespace under the netns directory, for pods whose records
 *      are gone. A filter holds its program, and the program its maps, so a
 *      pod left with one would stay intercepted after the pins are gone.
 *   2. every cgroup attachment (links) and pin (Dataplane.removePins).
 *   3. the records themselves.
 */
import * as fs from 'fs';
import * as path from 'path';
import { TcDirection, isNativeError, native } from '../../../native';
import { Dataplane, TC_HANDLE, TC_PRIORITY } from '../dataplane/dataplane';
import { PodRecord } from './state';

export interface CleanupOptions {
  pinRoot?: string;
  /** The agent's registration records (its stateDir). */
  stateDir?: string;
  /** Where the runtime keeps pod network namespaces. */
  netnsDir?: string;
  /** The node's own devices carrying the node frontends (nodePort.devices); their qdisc stays. */
  nodeDevices?: string[];
}

export interface CleanupResult {
  /** tc filters removed, qdiscs removed, pod interfaces looked at. */
  filters: number;
  qdiscs: number;
  interfaces: number;
}

/** A namespace or interface that is gone has no filter left to remove. */
function gone(e: unknown): boolean {
  return isNativeError(e) && (e.code === 'ENOENT' || e.code === 'ENODEV' || e.code === 'EINVAL');
}

function records(stateDir: string): PodRecord[] {
  if (!fs.existsSync(stateDir)) return [];
  const out: PodRecord[] = [];
  for (const f of fs.readdirSync(stateDir).filter((x) => x.endsWith('.json'))) {
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(stateDir, f), 'utf8')) as PodRecord);
    } catch {
      /* a torn write: the netns scan below still finds the interface */
    }
  }
  return out;
}

export function cleanupNode(opts: CleanupOptions = {}): CleanupResult {
  const stateDir = opts.stateDir ?? '/run/switchyard/state';
  const netnsDir = opts.netnsDir ?? '/var/run/netns';
  const n = native();
  const result: CleanupResult = { filters: 0, qdiscs: 0, interfaces: 0 };
  const targets = new Map<string, boolean>(); // "netns\0ifname" → the agent created the qdisc
  for (const r of records(stateDir)) targets.set(`${r.netnsPath}\0${r.ifname}`, r.tcCreatedQdisc ?? false);
  for (const d of opts.nodeDevices ?? []) targets.set(`/proc/self/ns/net\0${d}`, false);
  if (fs.existsSync(netnsDir)) {
    for (const ns of fs.readdirSync(netnsDir)) {
      const key = `${path.join(netnsDir, ns)}\0eth0`;
      if (!targets.has(key)) targets.set(key, false);
    }
  }
  for (const [key, createdQdisc] of targets) {
    const [netnsPath, ifname] = key.split('\0');
    try {
      let removed = 0;
      for (const dir of ['ingress', 'egress'] as TcDirection[]) {
        if (n.tcQuery(netnsPath, ifname, dir, TC_PRIORITY, TC_HANDLE) !== null && n.tcDetach(netnsPath, ifname, dir, TC_PRIORITY, TC_HANDLE)) removed++;
      }
      result.interfaces++;
      result.filters += removed;
      if (removed && createdQdisc && n.tcDestroyClsact(netnsPath, ifname)) result.qdiscs++;
    } catch (e) {
      if (!gone(e)) throw e;
    }
  }
  Dataplane.removePins(opts.pinRoot);
  for (const f of fs.existsSync(stateDir) ? fs.readdirSync(stateDir) : []) fs.rmSync(path.join(stateDir, f), { force: true });
  return result;
}
