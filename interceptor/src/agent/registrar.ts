/**
 * Registration: CNI ADD/DEL/CHECK and reconcile, between the API cache, the
 * dataplane and the records. Every outcome is one log line naming the pod,
 * its netns cookie, cgroup, IPs, ports and exclusions, the time taken, and
 * the reason for any failure.
 */
import * as fs from 'fs';
import { isIP } from 'net';
import { native } from '../../../native';
import { CNI_ERRORS, CniReply, CniRequest } from '../../../api/agent-wire';
import { Dataplane } from '../dataplane/dataplane';
import type { EventRecorder } from '../../../lib/events';
import { Logger } from '../../../lib/log';
import { anyPid, findPodCgroup } from './cgroups';
import { AgentConfig } from './config';
import { FailureReason, PodObject, REGISTRATION_REASONS, registrationDecision } from './decision';
import { AgentMetrics } from './metrics';
import { PodCache } from './pods';
import { PodRecord, RecordStore } from './state';
import { planReconcile, settingsChanged } from './reconcile';
import type { Interception } from '../../../api/interception';

/** CNI error codes: 3 unknown container, 4 invalid env, 7 invalid config, 11 try again later; 100+ ours (api/agent-wire.ts). */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }
}

export function validateCniRequest(body: unknown): CniRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  const problems: string[] = [];
  const str = (k: string) => (typeof b[k] === 'string' && b[k] !== '' ? (b[k] as string) : (problems.push(`${k} is missing`), ''));
  const req: CniRequest = {
    containerId: str('containerId'),
    netns: typeof b.netns === 'string' ? b.netns : '',
    ifname: str('ifname'),
    podNamespace: str('podNamespace'),
    podName: str('podName'),
    podUid: typeof b.podUid === 'string' && b.podUid ? b.podUid : undefined,
    ips: Array.isArray(b.ips) ? (b.ips as unknown[]).map(String) : [],
  };
  if (req.containerId && !/^[A-Za-z0-9_.-]+$/.test(req.containerId)) problems.push(`containerId '${req.containerId}' has invalid characters`);
  for (const ip of req.ips) if (!isIP(ip)) problems.push(`'${ip}' is not an IP address`);
  if (problems.length) throw new CniError(4, `invalid request from switchyard-cni: ${problems.join('; ')}`);
  return req;
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

export class Registrar {
  constructor(
    private readonly cfg: AgentConfig,
    private readonly dp: Dataplane,
    private readonly pods: PodCache,
    private readonly store: RecordStore,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
    /** Where a mesh pod's failed or fail-open registration becomes an Event on the Pod. */
    private readonly events?: EventRecorder,
  ) {}

  private podEvent(req: CniRequest, uid: string | undefined, reason: 'NotRegistered' | 'NotIntercepted', note: string): void {
    this.events?.record({
      regarding: { apiVersion: 'v1', kind: 'Pod', name: req.podName, namespace: req.podNamespace, ...(uid ? { uid } : {}) },
      type: 'Warning',
      reason,
      action: 'Register',
      note,
    });
  }

  private podFields(r: Pick<PodRecord, 'namespace' | 'name'>) {
    return { pod: `${r.namespace}/${r.name}` };
  }

  async add(req: CniRequest): Promise<CniReply> {
    const started = process.hrtime.bigint();
    const who = `${req.podNamespace}/${req.podName}`;
    const fail = (reason: FailureReason, err: CniError): never => {
      this.metrics.registrations.inc({ result: 'failed', reason });
      this.log('error', 'pod not registered', { pod: who, container: req.containerId, reason, error: err.message, duration_ms: ms(started).toFixed(2) });
      if (reason !== 'netns-missing') {
        // Each kubelet retry brings a new sandbox netns: left in, its path would make every retry a new Event instead of one with a count.
        const note = err.message.split(`pod netns ${req.netns}`).join('the pod').split(req.netns).join("the sandbox's network namespace");
        this.podEvent(req, req.podUid || undefined, 'NotRegistered', `${reason}: ${note}; switchyard-cni refuses the sandbox (failurePolicy fail-closed) and the kubelet retries it`);
      }
      throw err;
    };

    if (!req.netns || !fs.existsSync(req.netns)) {
      fail('netns-missing', new CniError(3, `network namespace '${req.netns}' of ${who} does not exist; the sandbox is gone or the runtime passed a wrong path`));
    }
    const pod = await this.pods.waitFor(req.podNamespace, req.podName, req.podUid, this.cfg.podWaitMs);
    if (!pod) {
      fail('pod-unknown', new CniError(11, `pod ${who}${req.podUid ? ` (uid ${req.podUid})` : ''} is not in the interceptor's API cache after ${this.cfg.podWaitMs} ms; the kubelet will retry the sandbox`));
    }
    const d = registrationDecision(pod!);
    if (!d.register) {
      if (d.reason === 'invalid-annotations') {
        fail(d.reason, new CniError(CNI_ERRORS.invalidAnnotations, `pod ${who} is mesh-managed but its interception annotations are invalid: ${d.detail}`));
      }
      this.metrics.registrations.inc({ result: 'skipped', reason: d.reason });
      this.log('info', 'pod not intercepted', { pod: who, reason: d.reason, detail: REGISTRATION_REASONS[d.reason], duration_ms: ms(started).toFixed(2) });
      return { registered: false, reason: d.reason };
    }
    if (req.ips.length === 0) fail('no-ips', new CniError(7, `the previous CNI plugin assigned no IP to ${who}; switchyard-cni must run after the plugin that does`));

    const cgroupPath = findPodCgroup(this.cfg.podCgroupRoot ?? this.cfg.cgroupPath, pod!.metadata!.uid!);
    const lookedUp = ms(started);
    try {
      const kernelStart = process.hrtime.bigint();
      const reg = this.dp.registerPod({ netnsPath: req.netns, cgroupPath, ips: req.ips, interception: d.interception, ifname: req.ifname });
      const kernelMs = ms(kernelStart);
      const record: PodRecord = {
        containerId: req.containerId,
        namespace: req.podNamespace,
        name: req.podName,
        uid: pod!.metadata!.uid!,
        netnsPath: req.netns,
        ifname: req.ifname,
        ips: req.ips,
        cgroupPath,
        netnsCookie: String(reg.netnsCookie),
        tcCreatedQdisc: reg.tc?.createdQdisc,
        interception: d.interception,
        registeredAt: new Date().toISOString(),
      };
      this.store.put(record);
      const seconds = ms(started) / 1000;
      this.metrics.latency.observe(seconds);
      this.metrics.registrations.inc({ result: 'registered', reason: 'registered' });
      this.log('info', 'pod registered', {
        ...this.podFields(record),
        container: req.containerId,
        netns_cookie: record.netnsCookie,
        cgroup: cgroupPath ?? 'not found (any process in the netns is intercepted)',
        ips: req.ips.join(','),
        outbound_port: d.interception.outboundPort,
        inbound_port: d.interception.inboundPort,
        sidecar_uid: d.interception.sidecarUid,
        exclude_inbound: d.interception.excludeInboundPorts.join(',') || '-',
        exclude_outbound: d.interception.excludeOutboundPorts.join(',') || '-',
        exclude_cidrs: d.interception.excludeOutboundCidrs.join(',') || '-',
        sockmap: reg.config.sockmap ? 'on' : 'off',
        reclaimed_ips: reg.reclaimedIps.join(',') || undefined,
        duration_ms: (seconds * 1000).toFixed(2),
        lookup_ms: lookedUp.toFixed(2), // API cache wait + cgroup lookup
        kernel_ms: kernelMs.toFixed(2), // map writes + tc attach
      });
      return { registered: true, reason: 'registered', netnsCookie: record.netnsCookie };
    } catch (e) {
      if (this.cfg.failurePolicy === 'fail-open') {
        this.metrics.registrations.inc({ result: 'fail_open', reason: 'registration-failed' });
        this.log('warn', 'pod starts WITHOUT interception (fail-open)', { pod: who, error: (e as Error).message });
        this.podEvent(req, pod!.metadata?.uid, 'NotIntercepted', `fail-open: the pod starts WITHOUT interception, its traffic bypasses the sidecar: ${(e as Error).message}`);
        return { registered: false, reason: 'fail-open' };
      }
      return fail('registration-failed', new CniError(CNI_ERRORS.registrationFailed, `cannot register mesh pod ${who}: ${(e as Error).message}`));
    }
  }

  /** Idempotent: unknown pods and missing namespaces are success. */
  del(req: Pick<CniRequest, 'containerId' | 'netns' | 'podNamespace' | 'podName'>): CniReply {
    const record = this.store.get(req.containerId);
    let cookie: bigint | undefined = record ? BigInt(record.netnsCookie) : undefined;
    if (cookie === undefined && req.netns && fs.existsSync(req.netns)) {
      try {
        cookie = native().netnsCookie(req.netns);
      } catch {
        cookie = undefined;
      }
    }
    const removed = cookie !== undefined && this.dp.unregisterPod(cookie);
    if (record) this.store.delete(req.containerId);
    if (removed || record) {
      this.log('info', 'pod unregistered', { pod: `${record?.namespace ?? req.podNamespace}/${record?.name ?? req.podName}`, container: req.containerId, netns_cookie: String(cookie), reason: 'cni-del' });
    }
    return { registered: false, reason: removed ? 'unregistered' : 'not-registered' };
  }

  check(req: CniRequest): CniReply {
    const record = this.store.get(req.containerId);
    if (!record) {
      const pod = this.pods.get(req.podNamespace, req.podName);
      if (pod && registrationDecision(pod).register) throw new CniError(CNI_ERRORS.checkFailed, `mesh pod ${req.podNamespace}/${req.podName} is not registered`);
      return { registered: false, reason: 'not-managed' };
    }
    const config = this.dp.pod(BigInt(record.netnsCookie));
    const problems: string[] = [];
    if (!config) problems.push('its sy_pods entry is missing');
    else if (req.ips.some((ip) => !config.ips.includes(ip))) problems.push(`its IPs ${config.ips.join(',')} differ from ${req.ips.join(',')}`);
    for (const ip of config?.ips ?? []) {
      const owner = this.dp.ipOwner(ip);
      if (owner === null) problems.push(`its sy_pod_by_ip entry for ${ip} is missing`);
      else if (String(owner) !== record.netnsCookie) problems.push(`sy_pod_by_ip maps ${ip} to another pod (netns cookie ${owner})`);
    }
    for (const dir of ['ingress', 'egress'] as const) {
      try {
        if (native().tcQuery(record.netnsPath, record.ifname, dir, 1, 0x5359) === null) problems.push(`tc ${dir} is not attached on ${record.ifname}`);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    if (problems.length) throw new CniError(CNI_ERRORS.checkFailed, `pod ${record.namespace}/${record.name}: ${problems.join('; ')}`);
    return { registered: true, reason: 'registered', netnsCookie: record.netnsCookie };
  }

  /** The pod's sandbox from /proc, for pods that run but are missing from the maps. */
  private sandboxOf(pod: PodObject): { netnsPath: string; cgroupPath: string } | undefined {
    const cgroupPath = findPodCgroup(this.cfg.podCgroupRoot ?? this.cfg.cgroupPath, pod.metadata!.uid!);
    const pid = cgroupPath && anyPid(cgroupPath);
    return pid ? { netnsPath: `/proc/${pid}/ns/net`, cgroupPath: cgroupPath! } : undefined;
  }

  /**
   * Makes the maps match the API: unregisters records of pods that are gone
   * (or were replaced under the same name), registers running mesh pods that
   * are missing, updates changed settings, and drops map entries nobody owns.
   * What to do is planned from one snapshot by planReconcile (reconcile.ts,
   * pure and table-tested); this executes the plan, logging and counting.
   */
  reconcile(): { reregistered: number; removed: number; updated: number } {
    const out = { reregistered: 0, removed: 0, updated: 0 };
    const actions = planReconcile({ records: this.store.all(), pods: this.pods.all(), mapPods: [...this.dp.pods().keys()], ipOwner: (ip) => this.dp.ipOwner(ip) });
    /** Netns cookies this pass registered: an entry unowned in the snapshot may be one of them by now. */
    const claimed = new Set<string>();
    for (const a of actions) {
      switch (a.kind) {
        case 'unregister':
          this.dp.unregisterPod(BigInt(a.record.netnsCookie));
          this.store.delete(a.record.containerId);
          this.metrics.reconciled.inc({ action: 'unregistered_stale' });
          this.log('info', 'pod unregistered', { pod: `${a.record.namespace}/${a.record.name}`, netns_cookie: a.record.netnsCookie, reason: a.reason });
          out.removed++;
          break;
        case 'reregister':
          if (this.reregister(a.record, 'reconcile-missing-entry', claimed)) out.reregistered++;
          break;
        case 'update':
          if (this.updateSettings(a.record, a.interception)) out.updated++;
          break;
        case 'register-running': {
          const sandbox = this.sandboxOf(a.pod);
          if (!sandbox) break; // no process yet: its CNI ADD will register it
          const record: PodRecord = {
            containerId: `reconciled-${a.pod.metadata!.uid}`,
            namespace: a.pod.metadata!.namespace!,
            name: a.pod.metadata!.name!,
            uid: a.pod.metadata!.uid!,
            netnsPath: sandbox.netnsPath,
            ifname: 'eth0', // the pod interface name Kubernetes runtimes use
            ips: a.ips,
            cgroupPath: sandbox.cgroupPath,
            netnsCookie: '', // set by reregister
            interception: a.interception,
            registeredAt: new Date().toISOString(),
          };
          if (this.reregister(record, 'reconcile-missing', claimed)) out.reregistered++;
          break;
        }
        case 'drop-unowned':
          if (claimed.has(String(a.netnsCookie))) break;
          this.dp.unregisterPod(a.netnsCookie);
          this.metrics.reconciled.inc({ action: 'unregistered_stale' });
          this.log('info', 'pod unregistered', { netns_cookie: String(a.netnsCookie), reason: 'unowned-map-entry' });
          out.removed++;
          break;
      }
    }
    return out;
  }

  private reregister(r: PodRecord, reason: 'reconcile-missing' | 'reconcile-missing-entry', claimed: Set<string>): boolean {
    try {
      const reg = this.dp.registerPod({ netnsPath: r.netnsPath, cgroupPath: r.cgroupPath, ips: r.ips, interception: r.interception, ifname: r.ifname });
      claimed.add(String(reg.netnsCookie));
      this.store.put({ ...r, netnsCookie: String(reg.netnsCookie), tcCreatedQdisc: r.tcCreatedQdisc || reg.tc?.createdQdisc });
      this.metrics.reconciled.inc({ action: 'reregistered' });
      this.log('info', 'pod registered', { pod: `${r.namespace}/${r.name}`, netns_cookie: String(reg.netnsCookie), ips: r.ips.join(','), cgroup: r.cgroupPath, reason });
      return true;
    } catch (e) {
      const reason: FailureReason = 'reconcile-failed';
      this.log('error', 'pod not registered', { pod: `${r.namespace}/${r.name}`, reason, error: (e as Error).message });
      return false;
    }
  }

  /** Applies changed interception annotations to a registered pod. */
  private updateSettings(r: PodRecord, interception: Interception): boolean {
    try {
      this.dp.registerPod({ netnsPath: r.netnsPath, cgroupPath: r.cgroupPath, ips: r.ips, interception });
    } catch (e) {
      this.log('error', 'pod settings not updated', { pod: `${r.namespace}/${r.name}`, error: (e as Error).message });
      return false;
    }
    this.store.put({ ...r, interception });
    this.metrics.reconciled.inc({ action: 'updated' });
    this.log('info', 'pod settings updated', { pod: `${r.namespace}/${r.name}`, netns_cookie: r.netnsCookie, exclude_inbound: interception.excludeInboundPorts.join(',') || '-', exclude_outbound: interception.excludeOutboundPorts.join(',') || '-', exclude_cidrs: interception.excludeOutboundCidrs.join(',') || '-' });
    return true;
  }

  /** Watch events: settings changes and deletions (tombstones included). */
  onPodUpsert(pod: PodObject): void {
    const d = registrationDecision(pod);
    if (!d.register) return;
    for (const r of this.store.byUid(pod.metadata?.uid ?? '')) if (settingsChanged(r, d.interception)) this.updateSettings(r, d.interception);
  }

  onPodDelete(pod: PodObject): void {
    for (const r of this.store.byUid(pod.metadata?.uid ?? '')) {
      this.dp.unregisterPod(BigInt(r.netnsCookie));
      this.store.delete(r.containerId);
      this.log('info', 'pod unregistered', { pod: `${r.namespace}/${r.name}`, netns_cookie: r.netnsCookie, reason: 'pod-deleted' });
    }
  }
}
