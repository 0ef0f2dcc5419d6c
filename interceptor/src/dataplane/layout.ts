/**
 * What a Switchyard dataplane consists of on a node: its BPF objects, the
 * programs in them and where each attaches, the maps the agent opens, and
 * the pin layout under the pin root. The loader, the upgrade and the
 * cleanup all read these tables; nothing here touches the kernel.
 *
 *   <pinRoot>/sy_pods, sy_pod_by_ip, ...   maps, pinned by name by libbpf
 *   <pinRoot>/sy_abi                       the ABI version record (abi-record.ts)
 *   <pinRoot>/sy_events                    the decision monitor's ring buffer (monitor.ts)
 *   <pinRoot>/progs/<program>              every program
 *   <pinRoot>/links/<hook>                 cgroup attachments (bpf_link)
 *   <pinRoot>/upgrade-next/, upgrade-old/  only while an upgrade runs (upgrade.ts; bpffs allows no dots in names)
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { CgroupHook, TcDirection } from '../../../native';
import type { OrigdstHandoff } from './host';

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/switchyard';

/** tc filter identity: priority 1 so we run before other chained classifiers. */
export const TC_PRIORITY = 1;
export const TC_HANDLE = 0x5359; // "SY"

export type ProgramSpec =
  | { object: string; name: string; cgroupHook: CgroupHook }
  | { object: string; name: string; skMsgMap: string }
  | { object: string; name: string; tc: TcDirection }
  /** On the node's own devices (NodePort, external IPs), not on pod interfaces. */
  | { object: string; name: string; tc: TcDirection; device: 'node' };

export const PROGRAMS: ProgramSpec[] = [
  { object: 'sy_connect', name: 'sy_connect4', cgroupHook: 'connect4' },
  { object: 'sy_connect', name: 'sy_connect6', cgroupHook: 'connect6' },
  { object: 'sy_sockops', name: 'sy_sockops', cgroupHook: 'sock_ops' },
  { object: 'sy_getsockopt', name: 'sy_getsockopt', cgroupHook: 'getsockopt' },
  { object: 'sy_skmsg', name: 'sy_skmsg', skMsgMap: 'sy_sock_hash' },
  { object: 'sy_lb', name: 'sy_sendmsg4', cgroupHook: 'sendmsg4' },
  { object: 'sy_lb', name: 'sy_sendmsg6', cgroupHook: 'sendmsg6' },
  { object: 'sy_lb', name: 'sy_recvmsg4', cgroupHook: 'recvmsg4' },
  { object: 'sy_lb', name: 'sy_recvmsg6', cgroupHook: 'recvmsg6' },
  { object: 'sy_lb', name: 'sy_getpeername4', cgroupHook: 'getpeername4' },
  { object: 'sy_lb', name: 'sy_getpeername6', cgroupHook: 'getpeername6' },
  { object: 'sy_tc', name: 'sy_tc_ingress', tc: 'ingress' },
  { object: 'sy_tc', name: 'sy_tc_egress', tc: 'egress' },
  { object: 'sy_nodeport', name: 'sy_np_ingress', tc: 'ingress', device: 'node' },
  { object: 'sy_nodeport', name: 'sy_np_egress', tc: 'egress', device: 'node' },
];

export const OBJECTS = [...new Set(PROGRAMS.map((p) => p.object))];

/** The maps the agent opens and writes (the objects pin a few more, e.g. the hand-off's). */
export const MAPS = [
  'sy_pods',
  'sy_pod_by_ip',
  'sy_origdst',
  'sy_origdst_transient',
  'sy_sock_hash',
  'sy_sock_addr',
  'sy_sidecar_conns',
  'sy_counters',
  'sy_pod_counters',
  'sy_lb_frontends',
  'sy_lb_backends',
  'sy_lb_affinity',
  'sy_lb_revnat',
  'sy_lb_counters',
  'sy_monitor',
  'sy_monitor_budget',
  'sy_lb_external',
  'sy_np_flows',
  'sy_np_snat',
  'sy_np_revnat',
  'sy_np_affinity',
  'sy_np_config',
  'sy_np_counters',
] as const;
export type MapName = (typeof MAPS)[number];

/** The decision monitor's ring buffer, read through its own reader rather than as a map. */
export const EVENTS_RING = 'sy_events';

/** Staging and retired pins of an upgrade in progress. */
export const NEXT_DIR = 'upgrade-next';
export const OLD_DIR = 'upgrade-old';

/** Whether a pin (or any path) exists; lstat, so a dangling name counts. */
export function pinExists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** sy_connect and sy_sockops come in two builds, one per hand-off (bpf/headers/handoff.h). */
export function objectFile(objectDir: string, obj: string, handoff: OrigdstHandoff): string {
  const variant = handoff === 'socket-cookie' && (obj === 'sy_connect' || obj === 'sy_sockops') ? '.cookie' : '';
  return path.join(objectDir, `${obj}${variant}.bpf.o`);
}

/**
 * The identity of a set of BPF objects: a digest of their bytes. Two agents
 * with the same build id run the same programs, so the later one adopts the
 * pins; any other build swaps its programs in (upgrade.ts).
 */
export function buildId(objectDir: string, handoff: OrigdstHandoff): string {
  const h = createHash('sha256');
  for (const obj of OBJECTS) h.update(fs.readFileSync(objectFile(objectDir, obj, handoff)));
  return h.digest('hex').slice(0, 32);
}
