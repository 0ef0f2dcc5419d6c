/**
 * Reconcile, the pure half: from one snapshot of the registration records,
 * the pods the API says run on this node, and the pods the maps hold, what
 * must happen so that the maps match the API. The registrar executes the
 * actions in the order given (registrar.ts), logging and counting each.
 *
 *   record, pod gone or no longer mesh-managed  → unregister
 *   record, its sy_pods or sy_pod_by_ip entries missing → reregister
 *   record, the pod's annotations changed       → update
 *   running mesh pod with IPs and no record     → register-running (its
 *                                                 sandbox is found in /proc)
 *   sy_pods entry no record owns                → drop-unowned
 *
 * drop-unowned comes last and names only entries that were unowned in the
 * snapshot; a register-running before it may claim the same netns (a pod
 * whose record was lost but whose entry survived), and the executor then
 * keeps the entry. Dropping first would open a gap in which that pod's
 * connects escape its sidecar.
 */
import type { Interception } from '../../../api/interception';
import { PodObject, registrationDecision } from './decision';
import type { PodRecord } from './state';

export type ReconcileAction =
  | { kind: 'unregister'; record: PodRecord; reason: 'pod-deleted' | 'no-longer-managed' }
  | { kind: 'reregister'; record: PodRecord }
  | { kind: 'update'; record: PodRecord; interception: Interception }
  | { kind: 'register-running'; pod: PodObject; interception: Interception; ips: string[] }
  | { kind: 'drop-unowned'; netnsCookie: bigint };

export interface ReconcileSnapshot {
  records: PodRecord[];
  /** The pods the API cache holds for this node. */
  pods: PodObject[];
  /** The netns cookies sy_pods holds. */
  mapPods: bigint[];
  /** Which netns cookie sy_pod_by_ip maps an IP to, or null. */
  ipOwner: (ip: string) => bigint | null;
}

/** Whether a registered pod's annotations now ask for other settings. */
export const settingsChanged = (record: PodRecord, interception: Interception) => JSON.stringify(interception) !== JSON.stringify(record.interception);

export function planReconcile(s: ReconcileSnapshot): ReconcileAction[] {
  const actions: ReconcileAction[] = [];
  const live = new Map(s.pods.map((p) => [p.metadata!.uid!, p]));
  const inMaps = new Set(s.mapPods.map(String));
  // Every record's entry is its own business (kept, repaired or unregistered with it), never an unowned one.
  const owned = new Set(s.records.map((r) => r.netnsCookie));
  for (const record of s.records) {
    const pod = live.get(record.uid);
    const d = pod && registrationDecision(pod);
    if (!d?.register) {
      actions.push({ kind: 'unregister', record, reason: pod ? 'no-longer-managed' : 'pod-deleted' });
      continue;
    }
    // The record outlived its map entries (removed by hand, or a crash mid-registration).
    if (!inMaps.has(record.netnsCookie) || record.ips.some((ip) => s.ipOwner(ip) === null)) actions.push({ kind: 'reregister', record });
    else if (settingsChanged(record, d.interception)) actions.push({ kind: 'update', record, interception: d.interception });
  }
  const recorded = new Set(s.records.map((r) => r.uid));
  for (const pod of s.pods) {
    if (recorded.has(pod.metadata!.uid!)) continue;
    const d = registrationDecision(pod);
    const ips = (pod.status?.podIPs ?? []).flatMap((p) => (p.ip ? [p.ip] : []));
    // Not running yet (no IPs): its CNI ADD will register it.
    if (d.register && ips.length) actions.push({ kind: 'register-running', pod, interception: d.interception, ips });
  }
  for (const netnsCookie of s.mapPods) if (!owned.has(String(netnsCookie))) actions.push({ kind: 'drop-unowned', netnsCookie });
  return actions;
}
