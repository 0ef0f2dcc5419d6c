import { MANAGED_LABEL } from '../../../api/contract';
import { DEFAULT_INTERCEPTION } from '../../../api/interception';
import { interceptionAnnotations, parseInterceptionAnnotations } from '../../../api/annotations';
import type { PodObject } from './decision';
import { ReconcileAction, ReconcileSnapshot, planReconcile } from './reconcile';
import type { PodRecord } from './state';

const mesh = (uid: string, extra: { ips?: string[]; annotations?: Record<string, string>; managed?: boolean } = {}): PodObject => ({
  metadata: { namespace: 'apps', name: `pod-${uid}`, uid, labels: extra.managed === false ? {} : { [MANAGED_LABEL]: 'true' }, annotations: { ...interceptionAnnotations(DEFAULT_INTERCEPTION), ...extra.annotations } },
  spec: { nodeName: 'n' },
  status: { podIPs: (extra.ips ?? [`10.0.0.${uid}`]).map((ip) => ({ ip })) },
});
const record = (uid: string, cookie: string): PodRecord => ({
  containerId: `c-${uid}`,
  namespace: 'apps',
  name: `pod-${uid}`,
  uid,
  netnsPath: `/var/run/netns/${uid}`,
  ifname: 'eth0',
  ips: [`10.0.0.${uid}`],
  netnsCookie: cookie,
  interception: parseInterceptionAnnotations(interceptionAnnotations(DEFAULT_INTERCEPTION)), // as ADD stores it
  registeredAt: '2026-12-02T00:00:00Z',
});

/** A node where every record is whole in the maps, unless the case says otherwise. */
function snapshot(records: PodRecord[], pods: PodObject[], opts: { mapPods?: string[]; missingIps?: string[] } = {}): ReconcileSnapshot {
  const owners = new Map(records.flatMap((r) => r.ips.map((ip) => [ip, BigInt(r.netnsCookie)] as const)));
  return {
    records,
    pods,
    mapPods: (opts.mapPods ?? records.map((r) => r.netnsCookie)).map(BigInt),
    ipOwner: (ip) => (opts.missingIps?.includes(ip) ? null : (owners.get(ip) ?? null)),
  };
}
const kinds = (actions: ReconcileAction[]) =>
  actions.map((a) => ('record' in a ? `${a.kind} ${a.record.uid}${a.kind === 'unregister' ? ` (${a.reason})` : ''}` : a.kind === 'register-running' ? `${a.kind} ${a.pod.metadata!.uid} ${a.ips.join(',')}` : `${a.kind} ${a.netnsCookie}`));

describe('planReconcile: what makes the maps match the API', () => {
  test.each<[string, ReconcileSnapshot, string[]]>([
    ['everything in place: nothing to do', snapshot([record('1', '11')], [mesh('1')]), []],
    ['the pod is gone', snapshot([record('1', '11')], []), ['unregister 1 (pod-deleted)']],
    ['the pod lost its managed label', snapshot([record('1', '11')], [mesh('1', { managed: false })]), ['unregister 1 (no-longer-managed)']],
    ['its annotations became invalid', snapshot([record('1', '11')], [mesh('1', { annotations: { 'switchyard.dev/outbound-port': 'x' } })]), ['unregister 1 (no-longer-managed)']],
    ['its sy_pods entry is missing', snapshot([record('1', '11')], [mesh('1')], { mapPods: [] }), ['reregister 1']],
    ['an sy_pod_by_ip entry is missing', snapshot([record('1', '11')], [mesh('1')], { missingIps: ['10.0.0.1'] }), ['reregister 1']],
    ['its annotations changed', snapshot([record('1', '11')], [mesh('1', { annotations: { 'switchyard.dev/exclude-outbound-ports': '5432' } })]), ['update 1']],
    ['a running mesh pod without a record', snapshot([], [mesh('2')]), ['register-running 2 10.0.0.2']],
    ['a mesh pod without IPs yet (its CNI ADD will register it)', snapshot([], [mesh('2', { ips: [] })]), []],
    ['a running pod that is not mesh-managed', snapshot([], [mesh('2', { managed: false })]), []],
    ['an entry nobody owns', snapshot([record('1', '11')], [mesh('1')], { mapPods: ['11', '99'] }), ['drop-unowned 99']],
    ['the pod of a deleted record keeps no entry of its own to drop', snapshot([record('1', '11')], [], { mapPods: ['11'] }), ['unregister 1 (pod-deleted)']],
  ])('%s', (_name, s, expected) => {
    expect(kinds(planReconcile(s))).toEqual(expected);
  });

  test('a lost record and its surviving entry: the pod is registered again before any entry is dropped', () => {
    // State lost, the entry kept: the executor re-registers pod 2 (same netns, same cookie) and then keeps the entry it claimed.
    expect(kinds(planReconcile(snapshot([], [mesh('2')], { mapPods: ['22'] })))).toEqual(['register-running 2 10.0.0.2', 'drop-unowned 22']);
  });

  test('the order is: records first (unregister, reregister, update), then missing pods, then unowned entries', () => {
    const s = snapshot([record('1', '11'), record('3', '33'), record('4', '44')], [mesh('3', { annotations: { 'switchyard.dev/exclude-outbound-ports': '80' } }), mesh('4'), mesh('5')], { mapPods: ['11', '33', '99'] });
    expect(kinds(planReconcile(s))).toEqual(['unregister 1 (pod-deleted)', 'update 3', 'reregister 4', 'register-running 5 10.0.0.5', 'drop-unowned 99']);
  });
});
