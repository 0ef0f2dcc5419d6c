/**
 * The agent's handle on one node's dataplane: register and unregister pods
 * (a transaction over sy_pods, sy_pod_counters and sy_pod_by_ip, then tc on
 * the pod's interface), and, delegated, Services (services.ts) and what the
 * maps say (stats.ts).
 *
 * Kernel state lives in bpffs, not in this process (the pin layout is in
 * layout.ts), so the programs keep redirecting while the agent restarts.
 * Getting a handle is loader.ts's job: load, adopt pins of the same build,
 * or upgrade them in place (upgrade.ts); unload() removes everything.
 */
import * as path from 'path';
import { isNativeError, native } from '../../../native';
import {
  CounterName,
  decodeOrigDst,
  decodePodConfig,
  decodePodCounters,
  decodePodRef,
  encodeNetnsKey,
  encodePodConfig,
  encodePodRef,
  LbBackend,
  LbFrontend,
  OrigDst,
  POD_COUNTERS,
  PodConfig,
  PodCounters,
  Tuple,
} from './abi';
import { encodeAddr } from '../../../api/addr';
import { Interception, validateInterception, validatePodIps } from '../../../api/interception';
import { DataplaneError } from './errors';
import { DEFAULT_PIN_ROOT, MAPS, MapName, TC_HANDLE, TC_PRIORITY, pinExists as exists } from './layout';
import { DataplaneOptions, OpenOptions, Opened, adoptPins, isLoaded, loadPins, openPins, removePins } from './loader';
import * as services from './services';
import * as nodeport from './nodeport';
import * as stats from './stats';
import * as monitor from './monitor';
import { OrigdstHandoff, cgroup2MountRoot, cgroupLevel, findCgroup2Mount } from './host';

export type { DataplaneOptions, OpenOptions } from './loader';

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

export { DataplaneError };

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
    /**
     * sk_msg is attached to the sockhash. When it is not, no socket goes
     * into the hash either: a socket there runs through tcp_bpf's psock on
     * every send, receive and close, which cost about 8 µs per short
     * connection with nothing to splice (bench/profile.ts, scenario c).
     */
    readonly sockmapAcceleration = true,
  ) {
    for (const m of MAPS) this.fds.set(m, native().mapOpen(path.join(pinRoot, m)));
    this.handoff = exists(path.join(pinRoot, 'sy_origdst_pending')) ? 'task-storage' : 'socket-cookie';
  }

  /** Checks the host, loads every object, pins and attaches; all of it or none (loader.ts). */
  static load(opts: DataplaneOptions): Dataplane {
    const p = loadPins(opts);
    return new Dataplane(p.pinRoot, p.cgroupPath, opts.sockmapAcceleration !== false);
  }

  /** Takes over a dataplane of this ABI version that an earlier agent left pinned, without touching traffic. */
  static adopt(opts: { pinRoot?: string; cgroupPath: string; sockmapAcceleration?: boolean }): Dataplane {
    const p = adoptPins(opts);
    return new Dataplane(p.pinRoot, p.cgroupPath, opts.sockmapAcceleration !== false);
  }

  /** What the agent does at start: recover, then load, adopt or upgrade in place (loader.ts). */
  static open(opts: OpenOptions): Opened & { dp: Dataplane } {
    const { pinRoot, cgroupPath, ...opened } = openPins(opts);
    return { dp: new Dataplane(pinRoot, cgroupPath, opts.sockmapAcceleration !== false), ...opened };
  }

  /** True when pins of a dataplane exist under pinRoot. */
  static isLoaded(pinRoot = DEFAULT_PIN_ROOT): boolean {
    return isLoaded(pinRoot);
  }

  /** Detaches and unpins everything under pinRoot; idempotent, works without a live agent. */
  static removePins(pinRoot = DEFAULT_PIN_ROOT): void {
    removePins(pinRoot);
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

  private mountCache?: { mount: string; root: string };
  /**
   * The cgroup2 mount and its root, read once: mountinfo grows by a line per
   * netns (each is a bind mount under /var/run/netns) and per container
   * rootfs, so parsing it per registration costs O(pods) (at 1000 pods it
   * was most of the agent's 6 ms per ADD).
   */
  private cgroup2Mount(): { mount: string; root: string } {
    if (!this.mountCache) {
      const mount = findCgroup2Mount();
      this.mountCache = { mount, root: cgroup2MountRoot(mount) };
    }
    return this.mountCache;
  }

  /** The open fd of a map, for the map-level modules (services.ts, stats.ts). */
  private readonly mapFd = (m: MapName): number => this.fd(m);

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
      cgroupLevel: spec.cgroupPath ? cgroupLevel(spec.cgroupPath, this.cgroup2Mount().mount, this.cgroup2Mount().root) : 0,
      sidecarUid: interception.sidecarUid,
      outboundPort: interception.outboundPort,
      inboundPort: interception.inboundPort,
      excludeOutboundPorts: interception.excludeOutboundPorts,
      excludeInboundPorts: interception.excludeInboundPorts,
      excludeOutboundCidrs: interception.cidrs,
      sockmap: interception.sockmap !== false && this.sockmapAcceleration,
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

  /** Programs one Service frontend and its backends (services.ts has the ordering rules). */
  setService(serviceId: number, frontend: LbFrontend, backends: LbBackend[], affinityTimeoutSeconds = 0): void {
    services.setService(this.mapFd, serviceId, frontend, backends, affinityTimeoutSeconds);
  }

  /** Removes a frontend, then its backends and counters. */
  deleteService(serviceId: number, frontend: LbFrontend): void {
    services.deleteService(this.mapFd, serviceId, frontend);
  }

  /** One frontend's backends as the kernel holds them, or null. */
  service(frontend: LbFrontend): ReturnType<typeof services.service> {
    return services.service(this.mapFd, frontend);
  }

  /** Every programmed frontend with its backends and counters, as the kernel holds them. */
  services(): ReturnType<typeof services.services> {
    return services.services(this.mapFd);
  }

  /** Node frontends (NodePort, external and LoadBalancer IPs; nodeport.ts). */
  setNodePortConfig(c: Parameters<typeof nodeport.setNodePortConfig>[1]): void {
    nodeport.setNodePortConfig(this.mapFd, c);
  }

  setNodeService(serviceId: number, frontend: LbFrontend, backends: LbBackend[], o: nodeport.NodeServiceOptions): void {
    nodeport.setNodeService(this.mapFd, serviceId, frontend, backends, o);
  }

  deleteNodeService(serviceId: number, frontend: LbFrontend): void {
    nodeport.deleteNodeService(this.mapFd, serviceId, frontend);
  }

  nodeServices(): nodeport.NodeServiceState[] {
    return nodeport.nodeServices(this.mapFd);
  }

  /** Attaches the node frontends' programs to one of the node's devices (replacing ours atomically). */
  attachNodeDevice(d: nodeport.NodeDevice): void {
    nodeport.attachNodeDevice(this.pinRoot, d);
  }

  detachNodeDevice(d: nodeport.NodeDevice): void {
    nodeport.detachNodeDevice(d);
  }

  /** Node-wide counters, summed over CPUs. */
  counters(): Record<CounterName, bigint> {
    return stats.counters(this.mapFd);
  }

  /** Connections whose original destination the dataplane is holding. */
  connections(): (Tuple & OrigDst)[] {
    return stats.connections(this.mapFd);
  }

  /** Entry counts, for fill metrics and leak checks. */
  mapEntries(name: Exclude<MapName, 'sy_counters' | 'sy_sock_hash'>): number {
    return stats.mapEntries(this.mapFd, name);
  }

  /** Current entries and capacity of every sized map, for fill metrics. */
  mapFill(): ReturnType<typeof stats.mapFill> {
    return stats.mapFill(this.mapFd);
  }

  /** The decision monitor (monitor.ts): on while someone watches, off otherwise. */
  setMonitor(on: boolean, eventsPerSec?: number): void {
    monitor.setMonitor(this.mapFd, on, eventsPerSec);
  }

  monitorEnabled(): boolean {
    return monitor.monitorEnabled(this.mapFd);
  }

  /** Events the programs could not report (rate limit, full ring), since load. */
  monitorLost(): bigint {
    return monitor.monitorLost(this.mapFd);
  }

  /** A reader of the monitor's ring buffer. */
  openEvents(): monitor.EventRing {
    return new monitor.EventRing(this.pinRoot);
  }
}
