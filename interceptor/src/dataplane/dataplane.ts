/**
 * The dataplane's lifecycle on one node: load and attach the BPF programs,
 * register and unregister pods, attach tc to pod interfaces, read counters,
 * and unload without leaving anything behind.
 *
 * Kernel state lives in bpffs, not in this process (the pin layout is in
 * layout.ts), so the programs keep redirecting while the agent restarts; a
 * new agent of the same build adopts the pins, and one of another build
 * upgrades them in place (upgrade.ts).
 */
import * as fs from 'fs';
import { isIP } from 'net';
import * as path from 'path';
import { BPF_OBJECT_DIR, isNativeError, native } from '../../../native';
import {
  COUNTERS,
  CounterName,
  decodeOrigDst,
  decodePodCounters,
  decodeTuple,
  POD_COUNTERS,
  PodCounters,
  OrigDst,
  Tuple,
  decodePodConfig,
  decodePodRef,
  encodeNetnsKey,
  encodePodConfig,
  encodePodRef,
  PodConfig,
  sumPerCpu,
  LB_COUNTERS,
  LbBackend,
  LbFrontend,
  decodeLbBackend,
  decodeLbCounters,
  decodeLbFrontend,
  decodeLbFrontendKey,
  encodeLbBackend,
  encodeLbBackendKey,
  encodeLbFrontend,
  encodeLbFrontendKey,
  encodeServiceId,
} from './abi';
import { encodeAddr } from '../../../api/addr';
import { Interception, validateInterception, validatePodIps } from '../../../api/interception';
import { MapSizes, validateMapSizes } from './config';
import { ABI_VERSION, Phase, writeAbiRecord } from './abi-record';
import { NEXT_DIR, OLD_DIR, buildId } from './layout';
import { UpgradeOptions, UpgradeResult, pinnedVersion, recoverUpgrade, removePinTree, upgradeDataplane, upgradePlan } from './upgrade';
import { UpgradeRefused } from './migrate';
import { DEFAULT_PIN_ROOT, MAPS, MapName, OBJECTS, PROGRAMS, TC_HANDLE, TC_PRIORITY, objectFile } from './layout';
import { FeatureProbe, HostError, OrigdstHandoff, cgroupLevel, checkKernelFeatures, ensureBpffs, findCgroup2Mount, origdstHandoff } from './host';

export interface DataplaneOptions {
  /** cgroup2 directory whose subtree is intercepted (in Kubernetes: the kubepods cgroup). */
  cgroupPath: string;
  pinRoot?: string;
  objectDir?: string;
  mapSizes?: Partial<MapSizes>;
  /** Attaching at the cgroup2 root intercepts the whole machine; it must be asked for. */
  allowRootCgroup?: boolean;
  /** How kernel features are detected; the default asks the kernel. */
  probe?: FeatureProbe;
  /**
   * Splice pod↔sidecar sockets through the sockmap (sk_msg). On by default;
   * off leaves the TCP loopback path, e.g. to compare or to rule it out.
   */
  sockmapAcceleration?: boolean;
  /** Force the connect → sock_ops hand-off of the original destination; by default the kernel decides (host.ts). */
  origdstHandoff?: OrigdstHandoff;
}

export interface PodSpec {
  netnsPath: string;
  /** The pod's cgroup; only its processes are intercepted. Omit to match any process in the netns. */
  cgroupPath?: string;
  ips: string[];
  interception: Interception;
  /** The pod's interface inside its netns, for the tc inbound path (usually eth0). */
  ifname?: string;
}

export interface Registration {
  netnsCookie: bigint;
  cgroupId: bigint;
  config: PodConfig;
  tc?: { netnsPath: string; ifname: string; createdQdisc: boolean };
  /** IPs that another, now replaced, registration still claimed. */
  reclaimedIps: string[];
}

export class DataplaneError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'DataplaneError';
  }
}

const exists = (p: string) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

export { DEFAULT_PIN_ROOT, PROGRAMS, TC_HANDLE, TC_PRIORITY } from './layout';

export class Dataplane {
  private readonly fds = new Map<MapName, number>();
  /** How this dataplane's connect programs hand the original destination to sock_ops. */
  readonly handoff: OrigdstHandoff;
  private readonly tcAttachments = new Map<bigint, { netnsPath: string; ifname: string; createdQdisc: boolean }>();
  private closed = false;

  private constructor(
    readonly pinRoot: string,
    readonly cgroupPath: string,
  ) {
    for (const m of MAPS) this.fds.set(m, native().mapOpen(path.join(pinRoot, m)));
    this.handoff = exists(path.join(pinRoot, 'sy_origdst_pending')) ? 'task-storage' : 'socket-cookie';
  }

  /**
   * Checks the host, loads every object, pins and attaches. Either all of it
   * happens or none of it: a failure part-way removes what was done.
   */
  static load(opts: DataplaneOptions): Dataplane {
    const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
    const objectDir = opts.objectDir ?? BPF_OBJECT_DIR;
    const sizes = validateMapSizes(opts.mapSizes ?? {});
    const cgroupPath = Dataplane.checkCgroup(opts);
    const handoff = opts.origdstHandoff ?? origdstHandoff(opts.probe);
    for (const obj of OBJECTS) {
      const file = objectFile(objectDir, obj, handoff);
      if (!exists(file)) throw new DataplaneError(`BPF object ${file} is missing: build it with 'make bpf'`);
    }
    checkKernelFeatures(opts.probe);
    ensureBpffs(pinRoot);
    if (exists(pinRoot) && fs.readdirSync(pinRoot).length > 0) {
      throw new DataplaneError(
        `${pinRoot} already holds a Switchyard dataplane: adopt it (Dataplane.adopt) or remove it first ('switchyard-interceptor cleanup')`,
      );
    }

    try {
      fs.mkdirSync(path.join(pinRoot, 'progs'), { recursive: true });
      fs.mkdirSync(path.join(pinRoot, 'links'), { recursive: true });
      const n = native();
      for (const obj of OBJECTS) {
        n.loadObject(objectFile(objectDir, obj, handoff), pinRoot, path.join(pinRoot, 'progs'), { ...sizes });
      }
      for (const p of PROGRAMS) {
        const progPin = path.join(pinRoot, 'progs', p.name);
        if ('cgroupHook' in p) n.attachCgroup(progPin, cgroupPath, p.cgroupHook, path.join(pinRoot, 'links', p.cgroupHook));
        if ('skMsgMap' in p && opts.sockmapAcceleration !== false) n.attachSkMsg(progPin, path.join(pinRoot, p.skMsgMap));
      }
      writeAbiRecord(path.join(pinRoot, 'sy_abi'), { version: ABI_VERSION, from: ABI_VERSION, phase: Phase.Live, build: buildId(objectDir, handoff) });
      return new Dataplane(pinRoot, cgroupPath);
    } catch (e) {
      Dataplane.removePins(pinRoot);
      if (e instanceof HostError || e instanceof DataplaneError) throw e;
      throw new DataplaneError(`loading the dataplane failed and was rolled back: ${(e as Error).message}`, e);
    }
  }

  /** Takes over a dataplane that an earlier agent left pinned, without touching traffic. */
  static adopt(opts: { pinRoot?: string; cgroupPath: string }): Dataplane {
    const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
    if (exists(path.join(pinRoot, NEXT_DIR))) {
      throw new DataplaneError(`cannot adopt the dataplane at ${pinRoot}: an upgrade is in progress there; start the agent, which finishes it`);
    }
    const version = exists(path.join(pinRoot, 'sy_pods')) ? pinnedVersion(pinRoot) : ABI_VERSION;
    if (version !== ABI_VERSION) {
      throw new DataplaneError(
        `cannot adopt the dataplane at ${pinRoot}: its maps follow BPF ABI version ${version}, this agent's ${ABI_VERSION}; ` +
          (version < ABI_VERSION ? 'start the agent, which upgrades it in place' : 'run an agent of that version or later'),
      );
    }
    const missing = [
      ...MAPS.map((m) => path.join(pinRoot, m)),
      ...PROGRAMS.map((p) => path.join(pinRoot, 'progs', p.name)),
      ...PROGRAMS.flatMap((p) => ('cgroupHook' in p ? [path.join(pinRoot, 'links', p.cgroupHook)] : [])),
    ].filter((p) => !exists(p));
    if (missing.length) {
      throw new DataplaneError(
        `cannot adopt the dataplane at ${pinRoot}: ${missing.length} pins are missing (${missing.slice(0, 3).join(', ')}...). ` +
          `Remove the remains with 'switchyard-interceptor cleanup' and load again`,
      );
    }
    return new Dataplane(pinRoot, opts.cgroupPath);
  }

  /**
   * What the agent does at start: finish or roll back an upgrade a dead
   * agent left, then load (nothing pinned), adopt (the same build is
   * pinned) or upgrade in place (another build, ABI version or map sizes).
   */
  static open(
    opts: DataplaneOptions & Pick<UpgradeOptions, 'tcTargets' | 'onStep' | 'onPoint'>,
  ): { dp: Dataplane; outcome: 'loaded' | 'adopted' | 'upgraded'; recovery: ReturnType<typeof recoverUpgrade>; upgrade?: UpgradeResult } {
    const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
    const objectDir = opts.objectDir ?? BPF_OBJECT_DIR;
    const handoff = opts.origdstHandoff ?? origdstHandoff(opts.probe);
    ensureBpffs(pinRoot);
    const up: UpgradeOptions = {
      pinRoot,
      objectDir,
      handoff,
      mapSizes: { ...validateMapSizes(opts.mapSizes ?? {}) },
      cgroupPath: Dataplane.checkCgroup(opts),
      sockmapAcceleration: opts.sockmapAcceleration !== false,
      tcTargets: opts.tcTargets,
      onStep: opts.onStep,
      onPoint: opts.onPoint,
    };
    try {
      const recovery = exists(pinRoot) ? recoverUpgrade(up) : 'none';
      if (!Dataplane.isLoaded(pinRoot)) return { dp: Dataplane.load({ ...opts, origdstHandoff: handoff }), outcome: 'loaded', recovery };
      const plan = upgradePlan(up);
      if (!plan.needed) return { dp: new Dataplane(pinRoot, up.cgroupPath), outcome: 'adopted', recovery };
      checkKernelFeatures(opts.probe);
      const upgrade = upgradeDataplane(up, plan);
      return { dp: new Dataplane(pinRoot, up.cgroupPath), outcome: 'upgraded', recovery, upgrade };
    } catch (e) {
      if (e instanceof UpgradeRefused || e instanceof DataplaneError || e instanceof HostError) throw e;
      throw new DataplaneError(`upgrading the dataplane at ${pinRoot} failed: ${(e as Error).message}; start the agent again to resume or roll back`, e);
    }
  }

  /** True when pins of a dataplane exist under pinRoot. */
  static isLoaded(pinRoot = DEFAULT_PIN_ROOT): boolean {
    return exists(path.join(pinRoot, 'sy_pods'));
  }

  private static checkCgroup(opts: DataplaneOptions): string {
    const mount = findCgroup2Mount();
    const cgroupPath = path.resolve(opts.cgroupPath);
    if (!fs.existsSync(cgroupPath)) throw new DataplaneError(`cgroup ${cgroupPath} does not exist`);
    if (cgroupLevel(cgroupPath, mount) === 0 && !opts.allowRootCgroup) {
      throw new DataplaneError(
        `refusing to attach to the cgroup2 root ${mount}: that intercepts every process on the machine. ` +
          'Point cgroupPath at the pods\' parent cgroup (e.g. kubepods), or set allowRootCgroup',
      );
    }
    return cgroupPath;
  }

  /**
   * Detaches and unpins everything under pinRoot. Idempotent; works without a
   * live agent (the 'cleanup' command). tc filters on pod interfaces are
   * removed by unload(); pods deleted since then took theirs with their netns.
   */
  static removePins(pinRoot = DEFAULT_PIN_ROOT): void {
    const n = native();
    const linkDir = path.join(pinRoot, 'links');
    // Detach first (synchronous), then unpin: unpinning alone releases the link later, from a workqueue.
    if (exists(linkDir)) {
      for (const l of fs.readdirSync(linkDir)) {
        n.detachLink(path.join(linkDir, l));
        fs.unlinkSync(path.join(linkDir, l));
      }
    }
    // An interrupted upgrade may have attached its staged sk_msg program too.
    for (const p of PROGRAMS) {
      if (!('skMsgMap' in p)) continue;
      for (const dir of [pinRoot, path.join(pinRoot, NEXT_DIR)]) {
        const mapPin = path.join(dir, p.skMsgMap);
        for (const progPin of [path.join(pinRoot, 'progs', p.name), path.join(pinRoot, NEXT_DIR, 'progs', p.name)]) {
          if (exists(progPin) && exists(mapPin)) n.detachSkMsg(progPin, mapPin);
        }
      }
    }
    removePinTree(path.join(pinRoot, NEXT_DIR));
    removePinTree(path.join(pinRoot, OLD_DIR));
    for (const dir of [path.join(pinRoot, 'progs'), linkDir]) {
      if (!exists(dir)) continue;
      for (const f of fs.readdirSync(dir)) fs.unlinkSync(path.join(dir, f));
      fs.rmdirSync(dir);
    }
    if (exists(pinRoot)) {
      for (const f of fs.readdirSync(pinRoot)) fs.unlinkSync(path.join(pinRoot, f));
      fs.rmdirSync(pinRoot);
    }
  }

  /** Detaches tc from every pod this agent attached, then removes all pins. */
  unload(): void {
    for (const [cookie] of this.tcAttachments) this.detachTc(cookie);
    this.close();
    Dataplane.removePins(this.pinRoot);
  }

  /** Releases this process's handles; pinned state keeps working. */
  close(): void {
    if (this.closed) return;
    for (const fd of this.fds.values()) native().closeFd(fd);
    this.closed = true;
  }

  private mountCache?: string;
  /**
   * Read once: mountinfo grows by one line per netns (each is a bind mount
   * under /var/run/netns), so parsing it per registration would cost O(pods).
   */
  private cgroup2Mount(): string {
    return (this.mountCache ??= findCgroup2Mount());
  }

  private fd(m: MapName): number {
    if (this.closed) throw new DataplaneError('the dataplane handle is closed');
    return this.fds.get(m)!;
  }

  /**
   * Registers a mesh pod: its config by netns cookie, its IPs, then tc on its
   * interface. Validation happens first; a failure later undoes the writes.
   */
  registerPod(spec: PodSpec): Registration {
    const interception = validateInterception(spec.interception);
    validatePodIps(spec.ips);
    const n = native();
    const netnsCookie = n.netnsCookie(spec.netnsPath);
    if (netnsCookie === n.netnsCookie('/proc/self/ns/net') /* the agent runs in the host netns */) {
      throw new DataplaneError(
        `refusing to register ${spec.netnsPath}: it is the host network namespace (hostNetwork pods cannot be intercepted)`,
      );
    }
    const cgroupId = spec.cgroupPath ? n.cgroupId(spec.cgroupPath) : 0n;
    const config: PodConfig = {
      ips: spec.ips,
      cgroupId,
      cgroupLevel: spec.cgroupPath ? cgroupLevel(spec.cgroupPath, this.cgroup2Mount()) : 0,
      sidecarUid: interception.sidecarUid,
      outboundPort: interception.outboundPort,
      inboundPort: interception.inboundPort,
      excludeOutboundPorts: interception.excludeOutboundPorts,
      excludeInboundPorts: interception.excludeInboundPorts,
      excludeOutboundCidrs: interception.cidrs,
      sockmap: interception.sockmap !== false,
    };

    const key = encodeNetnsKey(netnsCookie);
    const previous = n.mapLookup(this.fd('sy_pods'), key);
    const previousIps = previous ? decodePodConfig(previous).ips : [];
    // Every key this attempt writes, with the value it had before (null: absent), so that a
    // failure puts back exactly the previous state: a repeated ADD for a registered pod
    // must leave that registration whole when it fails.
    const undo: { map: MapName; key: Buffer; before: Buffer | null }[] = [];
    const write = (map: MapName, k: Buffer, value: Buffer) => {
      undo.push({ map, key: k, before: n.mapLookup(this.fd(map), k) });
      n.mapUpdate(this.fd(map), k, value);
    };
    const reclaimedIps: string[] = [];
    let tc: Registration['tc'];
    try {
      // Nothing in the pod runs before registration returns, so the order of these writes is free.
      write('sy_pods', key, encodePodConfig(config));
      if (n.mapLookup(this.fd('sy_pod_counters'), key) === null) {
        write('sy_pod_counters', key, Buffer.alloc(POD_COUNTERS.size * n.possibleCpus()));
      }
      for (const ip of spec.ips) {
        const ipKey = encodeAddr(ip);
        const owner = n.mapLookup(this.fd('sy_pod_by_ip'), ipKey);
        if (owner && decodePodRef(owner) !== netnsCookie) reclaimedIps.push(ip);
        write('sy_pod_by_ip', ipKey, encodePodRef(netnsCookie));
      }
      if (spec.ifname) tc = this.attachTc(netnsCookie, spec.netnsPath, spec.ifname);
    } catch (e) {
      for (const u of undo.reverse()) {
        if (u.before) n.mapUpdate(this.fd(u.map), u.key, u.before);
        else n.mapDelete(this.fd(u.map), u.key);
      }
      const full = isNativeError(e) && (e.code === 'E2BIG' || e.code === 'ENOMEM');
      throw new DataplaneError(
        `registering pod netns ${spec.netnsPath} failed${full ? ' (map full)' : ''} and was rolled back: ${(e as Error).message}`,
        e,
      );
    }
    // The new IP set replaces the old one: drop our claims on addresses the pod no longer has.
    const current = new Set(spec.ips.map((ip) => encodeAddr(ip).toString('hex')));
    for (const ip of previousIps) {
      if (!current.has(encodeAddr(ip).toString('hex'))) this.releaseIp(netnsCookie, ip);
    }
    return { netnsCookie, cgroupId, config, tc, reclaimedIps };
  }

  /** Removes a pod and everything keyed to it. Unknown pods are fine (idempotent). */
  unregisterPod(netnsCookie: bigint): boolean {
    const n = native();
    const key = encodeNetnsKey(netnsCookie);
    const raw = n.mapLookup(this.fd('sy_pods'), key);
    if (this.tcAttachments.has(netnsCookie)) this.detachTc(netnsCookie);
    if (!raw) return false;
    for (const ip of decodePodConfig(raw).ips) this.releaseIp(netnsCookie, ip);
    n.mapDelete(this.fd('sy_pods'), key);
    n.mapDelete(this.fd('sy_pod_counters'), key);
    this.sweepOrigDst(netnsCookie);
    return true;
  }

  /** Removes a pod's claim on an IP; only its own: the IP may already belong to a newer pod. */
  private releaseIp(netnsCookie: bigint, ip: string): void {
    const n = native();
    const ipKey = encodeAddr(ip);
    const owner = n.mapLookup(this.fd('sy_pod_by_ip'), ipKey);
    if (owner && decodePodRef(owner) === netnsCookie) n.mapDelete(this.fd('sy_pod_by_ip'), ipKey);
  }

  /** The netns cookie of the pod that owns an IP in sy_pod_by_ip, or null. */
  ipOwner(ip: string): bigint | null {
    const raw = native().mapLookup(this.fd('sy_pod_by_ip'), encodeAddr(ip));
    return raw ? decodePodRef(raw) : null;
  }

  /** Drops connection entries that point at a pod that is gone, live and transient. */
  private sweepOrigDst(netnsCookie: bigint): number {
    const n = native();
    let removed = 0;
    for (const m of ['sy_origdst', 'sy_origdst_transient'] as const) {
      for (const k of n.mapKeys(this.fd(m))) {
        const v = n.mapLookup(this.fd(m), k);
        if (v && decodeOrigDst(v).podNetnsCookie === netnsCookie && n.mapDelete(this.fd(m), k)) removed++;
      }
    }
    return removed;
  }

  attachTc(netnsCookie: bigint, netnsPath: string, ifname: string): { netnsPath: string; ifname: string; createdQdisc: boolean } {
    const n = native();
    const prog = (name: string) => path.join(this.pinRoot, 'progs', name);
    const ingress = n.tcAttach(prog('sy_tc_ingress'), netnsPath, ifname, 'ingress', TC_PRIORITY, TC_HANDLE);
    try {
      n.tcAttach(prog('sy_tc_egress'), netnsPath, ifname, 'egress', TC_PRIORITY, TC_HANDLE);
    } catch (e) {
      n.tcDetach(netnsPath, ifname, 'ingress', TC_PRIORITY, TC_HANDLE);
      if (ingress.createdQdisc) n.tcDestroyClsact(netnsPath, ifname);
      throw e;
    }
    // Re-registration finds the qdisc we made last time: it is still ours to remove.
    const createdQdisc = ingress.createdQdisc || (this.tcAttachments.get(netnsCookie)?.createdQdisc ?? false);
    const record = { netnsPath, ifname, createdQdisc };
    this.tcAttachments.set(netnsCookie, record);
    return record;
  }

  /** Removes our tc filters; the clsact qdisc too, if we created it. */
  detachTc(netnsCookie: bigint): void {
    const rec = this.tcAttachments.get(netnsCookie);
    if (!rec) return;
    const n = native();
    try {
      n.tcDetach(rec.netnsPath, rec.ifname, 'ingress', TC_PRIORITY, TC_HANDLE);
      n.tcDetach(rec.netnsPath, rec.ifname, 'egress', TC_PRIORITY, TC_HANDLE);
      if (rec.createdQdisc) n.tcDestroyClsact(rec.netnsPath, rec.ifname);
    } catch (e) {
      // A netns that is already gone took its filters with it.
      if (!(isNativeError(e) && e.code === 'ENOENT')) throw e;
    }
    this.tcAttachments.delete(netnsCookie);
  }

  pod(netnsCookie: bigint): PodConfig | null {
    const raw = native().mapLookup(this.fd('sy_pods'), encodeNetnsKey(netnsCookie));
    return raw ? decodePodConfig(raw) : null;
  }

  pods(): Map<bigint, PodConfig> {
    const n = native();
    const out = new Map<bigint, PodConfig>();
    for (const k of n.mapKeys(this.fd('sy_pods'))) {
      const v = n.mapLookup(this.fd('sy_pods'), k);
      if (v) out.set(k.readBigUInt64LE(0), decodePodConfig(v));
    }
    return out;
  }

  /** One pod's counters, summed over CPUs; null for an unknown pod. */
  podCounters(netnsCookie: bigint): PodCounters | null {
    const raw = native().mapLookup(this.fd('sy_pod_counters'), encodeNetnsKey(netnsCookie));
    return raw ? decodePodCounters(raw) : null;
  }

  /**
   * Programs one Service frontend and its backends, in an order that never
   * lets a connect see a slot that does not exist: backends are written
   * first, then the frontend that counts them, and slots beyond the new
   * count are deleted last. Zero backends make connects fail with
   * ECONNREFUSED. The per-service counters entry is created once.
   */
  setService(serviceId: number, frontend: LbFrontend, backends: LbBackend[], affinityTimeoutSeconds = 0): void {
    if (!Number.isInteger(serviceId) || serviceId < 1 || serviceId > 0xffffffff) throw new DataplaneError(`service id must be a positive 32-bit integer, got ${serviceId}`);
    if (backends.length > 0xffff) throw new DataplaneError(`a frontend has at most 65535 backends, got ${backends.length}`);
    validatePodIps([frontend.ip]);
    if (backends.some((b) => isIP(b.ip) !== isIP(frontend.ip))) throw new DataplaneError(`backends of ${frontend.ip}:${frontend.port} must be of its address family`);
    const n = native();
    const fkey = encodeLbFrontendKey(frontend);
    const old = n.mapLookup(this.fd('sy_lb_frontends'), fkey);
    const oldCount = old ? decodeLbFrontend(old).backendCount : 0;
    const ckey = encodeServiceId(serviceId);
    if (!n.mapLookup(this.fd('sy_lb_counters'), ckey)) n.mapUpdate(this.fd('sy_lb_counters'), ckey, Buffer.alloc(LB_COUNTERS.size * n.possibleCpus()));
    backends.forEach((b, slot) => n.mapUpdate(this.fd('sy_lb_backends'), encodeLbBackendKey(serviceId, slot), encodeLbBackend(b)));
    n.mapUpdate(this.fd('sy_lb_frontends'), fkey, encodeLbFrontend({ serviceId, backendCount: backends.length, affinityTimeoutSeconds }));
    for (let slot = backends.length; slot < oldCount; slot++) n.mapDelete(this.fd('sy_lb_backends'), encodeLbBackendKey(serviceId, slot));
  }

  /** Removes a frontend (first, so no new connect uses it), then its backends and counters. */
  deleteService(serviceId: number, frontend: LbFrontend): void {
    const n = native();
    const fkey = encodeLbFrontendKey(frontend);
    const old = n.mapLookup(this.fd('sy_lb_frontends'), fkey);
    n.mapDelete(this.fd('sy_lb_frontends'), fkey);
    const count = old ? decodeLbFrontend(old).backendCount : 0;
    for (let slot = 0; slot < count; slot++) n.mapDelete(this.fd('sy_lb_backends'), encodeLbBackendKey(serviceId, slot));
    n.mapDelete(this.fd('sy_lb_counters'), encodeServiceId(serviceId));
  }

  /** A frontend's value and its backends in slot order, as the kernel holds them. */
  private readFrontend(key: Buffer): { serviceId: number; backends: LbBackend[]; affinityTimeoutSeconds: number } | null {
    const n = native();
    const raw = n.mapLookup(this.fd('sy_lb_frontends'), key);
    if (!raw) return null;
    const v = decodeLbFrontend(raw);
    const backends: LbBackend[] = [];
    for (let slot = 0; slot < v.backendCount; slot++) {
      const b = n.mapLookup(this.fd('sy_lb_backends'), encodeLbBackendKey(v.serviceId, slot));
      if (b) backends.push(decodeLbBackend(b));
    }
    return { serviceId: v.serviceId, backends, affinityTimeoutSeconds: v.affinityTimeoutSeconds };
  }

  /** One frontend's backends as the kernel holds them, or null. */
  service(frontend: LbFrontend): { serviceId: number; backends: LbBackend[]; affinityTimeoutSeconds: number } | null {
    return this.readFrontend(encodeLbFrontendKey(frontend));
  }

  /** Every programmed frontend with its backends and counters, as the kernel holds them. */
  services(): { frontend: LbFrontend; serviceId: number; affinityTimeoutSeconds: number; backends: LbBackend[]; translations: bigint; noBackend: bigint }[] {
    const n = native();
    return n.mapKeys(this.fd('sy_lb_frontends')).flatMap((k) => {
      const f = this.readFrontend(k);
      if (!f) return [];
      const c = n.mapLookup(this.fd('sy_lb_counters'), encodeServiceId(f.serviceId));
      const counters = c ? decodeLbCounters(c) : { translations: 0n, noBackend: 0n };
      return [{ frontend: decodeLbFrontendKey(k), ...f, ...counters }];
    });
  }

  /** Node-wide counters, summed over CPUs. */
  counters(): Record<CounterName, bigint> {
    const n = native();
    const out = {} as Record<CounterName, bigint>;
    COUNTERS.forEach((name, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      const v = n.mapLookup(this.fd('sy_counters'), key);
      out[name] = v ? sumPerCpu(v) : 0n;
    });
    return out;
  }

  /** Connections whose original destination the dataplane is holding. */
  connections(): (Tuple & OrigDst)[] {
    const n = native();
    const out: (Tuple & OrigDst)[] = [];
    for (const k of n.mapKeys(this.fd('sy_origdst'))) {
      const v = n.mapLookup(this.fd('sy_origdst'), k);
      if (v) out.push({ ...decodeTuple(k), ...decodeOrigDst(v) });
    }
    return out;
  }

  /** Entry counts, for fill metrics and leak checks. */
  mapEntries(name: Exclude<MapName, 'sy_counters' | 'sy_sock_hash'>): number {
    return native().mapKeys(this.fd(name)).length;
  }

  /** Current entries and capacity of every sized map, for fill metrics. */
  mapFill(): Record<string, { entries: number; max: number }> {
    const out: Record<string, { entries: number; max: number }> = {};
    for (const m of ['sy_pods', 'sy_pod_by_ip', 'sy_origdst', 'sy_origdst_transient', 'sy_pod_counters'] as const) {
      out[m] = { entries: native().mapKeys(this.fd(m)).length, max: native().mapInfo(this.fd(m)).maxEntries };
    }
    return out;
  }
}
