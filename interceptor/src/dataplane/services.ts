/**
 * Service frontends and backends in the kernel's load-balancing maps
 * (sy_lb_frontends, sy_lb_backends, sy_lb_counters), written in an order
 * that a connect running meanwhile never sees half of. Dataplane delegates
 * here; the controller (interceptor/src/lb/) decides what to program.
 */
import { isIP } from 'net';
import { native } from '../../../native';
import { validatePodIps } from '../../../api/interception';
import {
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
import { DataplaneError } from './errors';
import type { MapName } from './layout';

/** The open fd of one of the dataplane's maps. */
export type MapFd = (m: MapName) => number;

/**
 * Programs one Service frontend and its backends, in an order that never
 * lets a connect see a slot that does not exist: backends are written
 * first, then the frontend that counts them, and slots beyond the new
 * count are deleted last. Zero backends make connects fail with
 * ECONNREFUSED. The per-service counters entry is created once.
 */
export function setService(fd: MapFd, serviceId: number, frontend: LbFrontend, backends: LbBackend[], affinityTimeoutSeconds = 0): void {
  const n = native();
  const ckey = encodeServiceId(serviceId);
  programFrontend(fd, 'sy_lb_frontends', serviceId, frontend, backends, () => {
    if (!n.mapLookup(fd('sy_lb_counters'), ckey)) n.mapUpdate(fd('sy_lb_counters'), ckey, Buffer.alloc(LB_COUNTERS.size * n.possibleCpus()));
    return encodeLbFrontend({ serviceId, backendCount: backends.length, affinityTimeoutSeconds });
  });
}

/**
 * The ordering every frontend table shares (sy_lb_frontends, and
 * sy_lb_external for node frontends): validate, backends, the frontend
 * value that value() returns, then the slots beyond the new count.
 */
export function programFrontend(fd: MapFd, table: 'sy_lb_frontends' | 'sy_lb_external', serviceId: number, frontend: LbFrontend, backends: LbBackend[], value: () => Buffer): void {
  if (!Number.isInteger(serviceId) || serviceId < 1 || serviceId > 0xffffffff) throw new DataplaneError(`service id must be a positive 32-bit integer, got ${serviceId}`);
  if (backends.length > 0xffff) throw new DataplaneError(`a frontend has at most 65535 backends, got ${backends.length}`);
  validatePodIps([frontend.ip]);
  if (backends.some((b) => isIP(b.ip) !== isIP(frontend.ip))) throw new DataplaneError(`backends of ${frontend.ip}:${frontend.port} must be of its address family`);
  const n = native();
  const fkey = encodeLbFrontendKey(frontend);
  const old = n.mapLookup(fd(table), fkey);
  const oldCount = old ? decodeLbFrontend(old).backendCount : 0;
  const v = value();
  backends.forEach((b, slot) => n.mapUpdate(fd('sy_lb_backends'), encodeLbBackendKey(serviceId, slot), encodeLbBackend(b)));
  n.mapUpdate(fd(table), fkey, v);
  for (let slot = backends.length; slot < oldCount; slot++) n.mapDelete(fd('sy_lb_backends'), encodeLbBackendKey(serviceId, slot));
}

/** Removes a frontend from its table (first, so nothing new uses it), then its backends. */
export function removeFrontend(fd: MapFd, table: 'sy_lb_frontends' | 'sy_lb_external', serviceId: number, frontend: LbFrontend): void {
  const n = native();
  const fkey = encodeLbFrontendKey(frontend);
  const old = n.mapLookup(fd(table), fkey);
  n.mapDelete(fd(table), fkey);
  const count = old ? decodeLbFrontend(old).backendCount : 0;
  for (let slot = 0; slot < count; slot++) n.mapDelete(fd('sy_lb_backends'), encodeLbBackendKey(serviceId, slot));
}

/** The backends in slots 0..count-1 of a service id. */
export function readBackends(fd: MapFd, serviceId: number, count: number): LbBackend[] {
  const n = native();
  const backends: LbBackend[] = [];
  for (let slot = 0; slot < count; slot++) {
    const b = n.mapLookup(fd('sy_lb_backends'), encodeLbBackendKey(serviceId, slot));
    if (b) backends.push(decodeLbBackend(b));
  }
  return backends;
}

/** Removes a frontend (first, so no new connect uses it), then its backends and counters. */
export function deleteService(fd: MapFd, serviceId: number, frontend: LbFrontend): void {
  removeFrontend(fd, 'sy_lb_frontends', serviceId, frontend);
  native().mapDelete(fd('sy_lb_counters'), encodeServiceId(serviceId));
}

/** A frontend's value and its backends in slot order, as the kernel holds them. */
function readFrontend(fd: MapFd, key: Buffer): { serviceId: number; backends: LbBackend[]; affinityTimeoutSeconds: number } | null {
  const n = native();
  const raw = n.mapLookup(fd('sy_lb_frontends'), key);
  if (!raw) return null;
  const v = decodeLbFrontend(raw);
  return { serviceId: v.serviceId, backends: readBackends(fd, v.serviceId, v.backendCount), affinityTimeoutSeconds: v.affinityTimeoutSeconds };
}

/** One frontend's backends as the kernel holds them, or null. */
export function service(fd: MapFd, frontend: LbFrontend): { serviceId: number; backends: LbBackend[]; affinityTimeoutSeconds: number } | null {
  return readFrontend(fd, encodeLbFrontendKey(frontend));
}

/** Every programmed frontend with its backends and counters, as the kernel holds them. */
export function services(fd: MapFd): { frontend: LbFrontend; serviceId: number; affinityTimeoutSeconds: number; backends: LbBackend[]; translations: bigint; noBackend: bigint }[] {
  const n = native();
  return n.mapKeys(fd('sy_lb_frontends')).flatMap((k) => {
    const f = readFrontend(fd, k);
    if (!f) return [];
    const c = n.mapLookup(fd('sy_lb_counters'), encodeServiceId(f.serviceId));
    const counters = c ? decodeLbCounters(c) : { translations: 0n, noBackend: 0n };
    return [{ frontend: decodeLbFrontendKey(k), ...f, ...counters }];
  });
}

