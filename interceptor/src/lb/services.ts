/**
 * Service + EndpointSlices → load-balancer frontends (pure).
 *
 * One frontend per ClusterIP × port × protocol; its backends are the ready
 * endpoints of that family whose slice port has the Service port's name and
 * protocol, so a named targetPort that differs per pod resolves per pod, as
 * with kube-proxy. When no endpoint is ready, endpoints that are terminating
 * but still serving take the traffic (kube-proxy's ProxyTerminatingEndpoints,
 * GA in 1.28): a rollout of a one-replica Deployment, or a pod draining while
 * its replacement starts, does not refuse connections in between.
 */
import { isIP } from 'net';
import type { DiscoveryV1EndpointPort, V1EndpointConditions, V1EndpointSlice, V1ObjectMeta, V1Service, V1ServicePort, V1ServiceSpec } from '@kubernetes/client-node';
import { LbBackend, LbFrontend, LbProtocol } from '../dataplane/abi';

export const LB_IGNORE_ANNOTATION = 'switchyard.dev/lb-ignore';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** kube-proxy's default for sessionAffinityConfig.clientIP.timeoutSeconds. */
export const DEFAULT_AFFINITY_TIMEOUT = 10800;

/** The fields of a V1Service that the translation reads (slimService keeps these). */
export interface ServiceObject {
  metadata?: Pick<V1ObjectMeta, 'name' | 'namespace' | 'annotations' | 'resourceVersion'>;
  spec?: Pick<V1ServiceSpec, 'type' | 'clusterIP' | 'clusterIPs' | 'sessionAffinity' | 'sessionAffinityConfig'> & { ports?: Pick<V1ServicePort, 'name' | 'port' | 'protocol'>[] };
}

export type EndpointConditions = Pick<V1EndpointConditions, 'ready' | 'serving' | 'terminating'>;

/** The fields of a V1EndpointSlice that the translation reads. */
export interface EndpointSliceObject {
  metadata?: Pick<V1ObjectMeta, 'name' | 'namespace' | 'labels' | 'resourceVersion'>;
  addressType?: string;
  endpoints?: { addresses?: string[]; conditions?: EndpointConditions }[];
  ports?: Pick<DiscoveryV1EndpointPort, 'name' | 'port' | 'protocol'>[];
}

export interface FrontendSpec {
  /** namespace/name:port-name/PROTO@ClusterIP: stable, for logs and ids. */
  id: string;
  frontend: LbFrontend;
  backends: LbBackend[];
  /** No endpoint was ready: these backends are terminating but still serving. */
  terminating?: true;
  affinityTimeoutSeconds: number;
}

export type SkipReason = 'ignored-by-annotation' | 'headless' | 'external-name' | 'no-cluster-ip';

export const frontendKey = (f: LbFrontend) => `${f.ip.includes(':') ? `[${f.ip}]` : f.ip}:${f.port}/${f.protocol}`;

/** Keeps what the translation reads. */
export function slimService(raw: V1Service): ServiceObject {
  const m = raw?.metadata ?? {};
  const s = raw?.spec ?? {};
  return {
    metadata: { name: m.name, namespace: m.namespace, annotations: m.annotations, resourceVersion: m.resourceVersion },
    spec: { type: s.type, clusterIP: s.clusterIP, clusterIPs: s.clusterIPs, ports: s.ports, sessionAffinity: s.sessionAffinity, sessionAffinityConfig: s.sessionAffinityConfig },
  };
}

export function slimEndpointSlice(raw: V1EndpointSlice): EndpointSliceObject {
  const m = raw?.metadata ?? {};
  return {
    metadata: { name: m.name, namespace: m.namespace, labels: m.labels, resourceVersion: m.resourceVersion },
    addressType: raw?.addressType,
    endpoints: (raw?.endpoints ?? []).map((e) => ({
      addresses: e?.addresses,
      conditions: { ready: e?.conditions?.ready, serving: e?.conditions?.serving, terminating: e?.conditions?.terminating },
    })),
    ports: raw?.ports,
  };
}

export function serviceFrontends(svc: ServiceObject, slices: EndpointSliceObject[]): { frontends: FrontendSpec[]; skipped?: SkipReason } {
  const spec = svc.spec ?? {};
  const name = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
  if (svc.metadata?.annotations?.[LB_IGNORE_ANNOTATION] === 'true') return { frontends: [], skipped: 'ignored-by-annotation' };
  if (spec.type === 'ExternalName') return { frontends: [], skipped: 'external-name' };
  if (spec.clusterIP === 'None') return { frontends: [], skipped: 'headless' };
  const ips = (spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []).filter((ip) => isIP(ip));
  if (!ips.length) return { frontends: [], skipped: 'no-cluster-ip' };
  const affinity = spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT) : 0;

  const out: FrontendSpec[] = [];
  for (const ip of ips) {
    const family = isIP(ip) === 6 ? 'IPv6' : 'IPv4';
    for (const p of spec.ports ?? []) {
      const protocol = (p.protocol ?? 'TCP') as string;
      if (protocol !== 'TCP' && protocol !== 'UDP') continue; // SCTP: not at the socket layer
      const portName = p.name ?? '';
      const seen = new Set<string>();
      const ready: LbBackend[] = [];
      const terminating: LbBackend[] = [];
      for (const slice of slices) {
        if (slice.addressType !== family) continue;
        const sp = (slice.ports ?? []).find((x) => (x.name ?? '') === portName && (x.protocol ?? 'TCP') === protocol);
        if (!sp?.port) continue;
        for (const e of slice.endpoints ?? []) {
          const into = endpointUse(e.conditions) === 'ready' ? ready : endpointUse(e.conditions) === 'terminating' ? terminating : undefined;
          if (!into) continue;
          for (const a of e.addresses ?? []) {
            const k = `${a}|${sp.port}`;
            if (isIP(a) && !seen.has(k)) {
              seen.add(k);
              into.push({ ip: a, port: sp.port });
            }
          }
        }
      }
      const useTerminating = ready.length === 0 && terminating.length > 0;
      const backends = (useTerminating ? terminating : ready).sort((x, y) => (x.ip === y.ip ? x.port - y.port : x.ip < y.ip ? -1 : 1));
      const frontend: LbFrontend = { ip, port: p.port, protocol: protocol as LbProtocol };
      out.push({ id: `${name}:${portName || p.port}/${protocol}@${ip}`, frontend, backends, ...(useTerminating ? { terminating: true as const } : {}), affinityTimeoutSeconds: affinity });
    }
  }
  return { frontends: out };
}

/**
 * What an endpoint is good for, per the EndpointSlice API: unset ready means
 * ready; unset serving defers to ready; unset terminating means not.
 */
export function endpointUse(c?: EndpointConditions): 'ready' | 'terminating' | 'none' {
  if (c?.ready !== false) return 'ready';
  if (c.terminating === true && (c.serving ?? c.ready) === true) return 'terminating';
  return 'none';
}
