/**
 * Node frontends in the kernel's maps: NodePort on the node's addresses,
 * externalIPs and LoadBalancer ingress IPs (sy_lb_external, with backends
 * in sy_lb_backends under their own service id), the node's snat settings
 * (sy_np_config), and the tc programs on the node's devices that serve them
 * (bpf/sy_nodeport.c). Dataplane delegates here; the controller decides.
 */
import { isIP } from 'net';
import * as path from 'path';
import { isNativeError, native } from '../../../native';
import { LbBackend, LbFrontend, decodeLbFrontendKey, encodeServiceId } from './abi';
import {
  NODEPORT_MODES,
  NP_COUNTERS,
  NodePortConfig,
  NodePortCounters,
  NodePortMode,
  decodeNodeFrontend,
  decodeNodePortCounters,
  encodeNodeFrontend,
  encodeNodePortConfig,
} from './abi-nodeport';
import { DataplaneError } from './errors';
import { TC_HANDLE, TC_PRIORITY } from './layout';
import { MapFd, programFrontend, readBackends, removeFrontend } from './services';

export interface NodeServiceOptions {
  mode: NodePortMode;
  /** externalTrafficPolicy: Local: the backends given are this node's, and the client IP is kept in every mode. */
  local: boolean;
  affinityTimeoutSeconds: number;
}

export interface NodeServiceState extends NodeServiceOptions {
  frontend: LbFrontend;
  serviceId: number;
  backends: LbBackend[];
  counters: NodePortCounters;
}

const ZERO = Buffer.alloc(4);

export function setNodePortConfig(fd: MapFd, c: NodePortConfig): void {
  const problems: string[] = [];
  if (c.snatAddress !== undefined && isIP(c.snatAddress) !== 4) problems.push(`the snat address must be an IPv4 address, got ${JSON.stringify(c.snatAddress)}`);
  if (!Number.isInteger(c.snatPortMin) || !Number.isInteger(c.snatPortMax) || c.snatPortMin < 1 || c.snatPortMax > 65535 || c.snatPortMin > c.snatPortMax) {
    problems.push(`the snat port range must be two ports, low to high, got ${c.snatPortMin}-${c.snatPortMax}`);
  }
  const grace = c.snatClosedGraceSeconds;
  if (grace !== undefined && (!Number.isInteger(grace) || grace < 0 || grace > 3600)) problems.push(`the snat closed grace must be whole seconds from 0 to 3600, got ${grace}`);
  const tw = c.snatTimeWaitSeconds;
  if (tw !== undefined && (!Number.isInteger(tw) || tw < 0 || tw > 600)) problems.push(`the snat TIME_WAIT must be whole seconds from 0 to 600, got ${tw}`);
  if (problems.length) throw new DataplaneError(`node frontend settings refused: ${problems.join('; ')}`);
  native().mapUpdate(fd('sy_np_config'), ZERO, encodeNodePortConfig(c));
}

/** Programs one node frontend: backends, then the frontend, then the shrink (services.ts's order). */
export function setNodeService(fd: MapFd, serviceId: number, frontend: LbFrontend, backends: LbBackend[], o: NodeServiceOptions): void {
  if (!NODEPORT_MODES.includes(o.mode)) throw new DataplaneError(`node frontend mode must be one of ${NODEPORT_MODES.join(', ')}, got ${JSON.stringify(o.mode)}`);
  if (isIP(frontend.ip) !== 4) throw new DataplaneError(`node frontends are IPv4 only (bpf/README.md, "NodePort at the node"), got ${frontend.ip}`);
  const n = native();
  const ckey = encodeServiceId(serviceId);
  programFrontend(fd, 'sy_lb_external', serviceId, frontend, backends, () => {
    if (!n.mapLookup(fd('sy_np_counters'), ckey)) n.mapUpdate(fd('sy_np_counters'), ckey, Buffer.alloc(NP_COUNTERS.size * n.possibleCpus()));
    return encodeNodeFrontend({ serviceId, backendCount: backends.length, affinityTimeoutSeconds: o.affinityTimeoutSeconds, mode: o.mode, local: o.local });
  });
}

export function deleteNodeService(fd: MapFd, serviceId: number, frontend: LbFrontend): void {
  removeFrontend(fd, 'sy_lb_external', serviceId, frontend);
  native().mapDelete(fd('sy_np_counters'), encodeServiceId(serviceId));
}

/** Every node frontend as the kernel holds it, with its counters. */
export function nodeServices(fd: MapFd): NodeServiceState[] {
  const n = native();
  return n.mapKeys(fd('sy_lb_external')).flatMap((k) => {
    const raw = n.mapLookup(fd('sy_lb_external'), k);
    if (!raw) return [];
    const v = decodeNodeFrontend(raw);
    const c = n.mapLookup(fd('sy_np_counters'), encodeServiceId(v.serviceId));
    const counters = c ? decodeNodePortCounters(c) : decodeNodePortCounters(Buffer.alloc(NP_COUNTERS.size));
    return [{ frontend: decodeLbFrontendKey(k), serviceId: v.serviceId, mode: v.mode, local: v.local, affinityTimeoutSeconds: v.affinityTimeoutSeconds, backends: readBackends(fd, v.serviceId, v.backendCount), counters }];
  });
}

/** A node device carrying sy_np_ingress/egress, in a network namespace (the agent's own: /proc/self/ns/net). */
export interface NodeDevice {
  netnsPath: string;
  ifname: string;
}

/** Attaches (or atomically replaces) both programs on a node device; a failure leaves the device as it was. */
export function attachNodeDevice(pinRoot: string, d: NodeDevice): { createdQdisc: boolean } {
  const n = native();
  const prog = (name: string) => path.join(pinRoot, 'progs', name);
  const ingress = n.tcAttach(prog('sy_np_ingress'), d.netnsPath, d.ifname, 'ingress', TC_PRIORITY, TC_HANDLE);
  try {
    n.tcAttach(prog('sy_np_egress'), d.netnsPath, d.ifname, 'egress', TC_PRIORITY, TC_HANDLE);
  } catch (e) {
    n.tcDetach(d.netnsPath, d.ifname, 'ingress', TC_PRIORITY, TC_HANDLE);
    if (ingress.createdQdisc) n.tcDestroyClsact(d.netnsPath, d.ifname);
    throw new DataplaneError(`cannot attach the node frontends to ${d.ifname}: ${(e as Error).message}`, e);
  }
  return ingress;
}

/** Removes our filters from a node device (never its qdisc: other programs may share the device's clsact). */
export function detachNodeDevice(d: NodeDevice): void {
  const n = native();
  try {
    for (const dir of ['ingress', 'egress'] as const) n.tcDetach(d.netnsPath, d.ifname, dir, TC_PRIORITY, TC_HANDLE);
  } catch (e) {
    if (!(isNativeError(e) && (e.code === 'ENOENT' || e.code === 'ENODEV'))) throw e;
  }
}
