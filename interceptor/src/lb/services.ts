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
  spec?: Pick<
    V1ServiceSpec,
    'type' | 'clusterIP' | 'clusterIPs' | 'sessionAffinity' | 'sessionAffinityConfig' | 'externalIPs' | 'externalTrafficPolicy' | 'internalTrafficPolicy' | 'healthCheckNodePort'
  > & { ports?: Pick<V1ServicePort, 'name' | 'port' | 'protocol' | 'nodePort'>[] };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

export type EndpointConditions = Pick<V1EndpointConditions, 'ready' | 'serving' | 'terminating'>;

/** The fields of a V1EndpointSlice that the translation reads. */
export interface EndpointSliceObject {
  metadata?: Pick<V1ObjectMeta, 'name' | 'namespace' | 'labels' | 'resourceVersion'>;
  addressType?: string;
  endpoints?: { addresses?: string[]; conditions?: EndpointConditions; nodeName?: string }[];
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
    spec: {
      type: s.type,
      clusterIP: s.clusterIP,
      clusterIPs: s.clusterIPs,
      ports: s.ports?.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, nodePort: p.nodePort })),
      sessionAffinity: s.sessionAffinity,
      sessionAffinityConfig: s.sessionAffinityConfig,
      externalIPs: s.externalIPs,
      externalTrafficPolicy: s.externalTrafficPolicy,
      internalTrafficPolicy: s.internalTrafficPolicy,
      healthCheckNodePort: s.healthCheckNodePort,
    },
    status: { loadBalancer: { ingress: raw?.status?.loadBalancer?.ingress?.map((i) => ({ ip: i.ip })) } },
  };
}

export function slimEndpointSlice(raw: V1EndpointSlice): EndpointSliceObject {
  const m = raw?.metadata ?? {};
  return {
    metadata: { name: m.name, namespace: m.namespace, labels: m.labels, resourceVersion: m.resourceVersion },
    addressType: raw?.addressType,
    endpoints: (raw?.endpoints ?? []).map((e) => ({
      addresses: e?.addresses,
      nodeName: e?.nodeName,
      conditions: { ready: e?.conditions?.ready, serving: e?.conditions?.serving, terminating: e?.conditions?.terminating },
    })),
    ports: raw?.ports,
  };
}

/** The endpoints behind one Service port, ready and terminating-but-serving, each marked local when it runs on nodeName. */
export interface PortEndpoints {
  ready: LbBackend[];
  terminating: LbBackend[];
}

export function portEndpoints(slices: EndpointSliceObject[], family: 'IPv4' | 'IPv6', portName: string, protocol: string, nodeName?: string): PortEndpoints {
  const seen = new Set<string>();
  const out: PortEndpoints = { ready: [], terminating: [] };
  for (const slice of slices) {
    if (slice.addressType !== family) continue;
    const sp = (slice.ports ?? []).find((x) => (x.name ?? '') === portName && (x.protocol ?? 'TCP') === protocol);
    if (!sp?.port) continue;
    for (const e of slice.endpoints ?? []) {
      const use = endpointUse(e.conditions);
      if (use === 'none') continue;
      for (const a of e.addresses ?? []) {
        const k = `${a}|${sp.port}`;
        if (!isIP(a) || seen.has(k)) continue;
        seen.add(k);
        out[use].push({ ip: a, port: sp.port, ...(nodeName !== undefined && e.nodeName === nodeName ? { local: true } : {}) });
      }
    }
  }
  return out;
}

/**
 * The backends to use: ready ones, or when none is ready the terminating
 * ones that still serve; only this node's when local. Sorted, so that the
 * same set always lands in the same slots.
 */
export function chooseBackends(e: PortEndpoints, local: boolean): { backends: LbBackend[]; terminating: boolean } {
  const pick = (l: LbBackend[]) => (local ? l.filter((b) => b.local) : l);
  const ready = pick(e.ready);
  const terminating = ready.length === 0 && pick(e.terminating).length > 0;
  const backends = [...(terminating ? pick(e.terminating) : ready)].sort((x, y) => (x.ip === y.ip ? x.port - y.port : x.ip < y.ip ? -1 : 1));
  return { backends, terminating };
}

export const familyOf = (ip: string): 'IPv4' | 'IPv6' => (isIP(ip) === 6 ? 'IPv6' : 'IPv4');

export const affinityOf = (spec: NonNullable<ServiceObject['spec']>) =>
  spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT) : 0;

/** Why a Service gets no frontend at all, or undefined. */
export function skipReason(svc: ServiceObject): SkipReason | undefined {
  const spec = svc.spec ?? {};
  if (svc.metadata?.annotations?.[LB_IGNORE_ANNOTATION] === 'true') return 'ignored-by-annotation';
  if (spec.type === 'ExternalName') return 'external-name';
  if (spec.clusterIP === 'None') return 'headless';
  return undefined;
}

/**
 * The connect-time frontends: every ClusterIP, and (with nodeName given)
 * internalTrafficPolicy Local, which keeps in-cluster clients on this node's endpoints.
 */
export function serviceFrontends(svc: ServiceObject, slices: EndpointSliceObject[], nodeName?: string): { frontends: FrontendSpec[]; skipped?: SkipReason } {
  const spec = svc.spec ?? {};
  const name = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
  const skipped = skipReason(svc);
  if (skipped) return { frontends: [], skipped };
  const ips = (spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []).filter((ip) => isIP(ip));
  if (!ips.length) return { frontends: [], skipped: 'no-cluster-ip' };
  const affinity = affinityOf(spec);
  const local = spec.internalTrafficPolicy === 'Local' && nodeName !== undefined;

  const out: FrontendSpec[] = [];
  for (const ip of ips) {
    for (const p of spec.ports ?? []) {
      const protocol = (p.protocol ?? 'TCP') as string;
      if (protocol !== 'TCP' && protocol !== 'UDP') continue; // SCTP: not at the socket layer
      const portName = p.name ?? '';
      const { backends, terminating } = chooseBackends(portEndpoints(slices, familyOf(ip), portName, protocol, nodeName), local);
      const frontend: LbFrontend = { ip, port: p.port, protocol: protocol as LbProtocol };
      out.push({ id: `${name}:${portName || p.port}/${protocol}@${ip}`, frontend, backends, ...(terminating ? { terminating: true as const } : {}), affinityTimeoutSeconds: affinity });
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
