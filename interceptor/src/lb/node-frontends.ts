/**
 * Service + EndpointSlices → the frontends that traffic from outside the
 * cluster reaches at this node (pure): NodePort on each of the node's
 * addresses, every externalIP, and every status.loadBalancer.ingress IP,
 * per port and protocol.
 *
 * Each becomes two entries: a node frontend (sy_lb_external, served by tc
 * on the node's devices) whose backends follow externalTrafficPolicy, and a
 * connect-time frontend (sy_lb_frontends) with every endpoint, so that
 * in-cluster clients that dial a NodePort or an external IP are balanced
 * at connect as they are for a ClusterIP (kube-proxy also sends them to
 * every endpoint, whatever the policy).
 */
import { isIP } from 'net';
import type { LbBackend, LbFrontend, LbProtocol } from '../dataplane/abi';
import { EndpointSliceObject, FrontendSpec, ServiceObject, affinityOf, chooseBackends, familyOf, portEndpoints, skipReason } from './services';

export type NodeFrontendKind = 'NodePort' | 'ExternalIP' | 'LoadBalancer';

export interface NodeFrontendSpec {
  /** namespace/name:port/PROTO@address (kind). */
  id: string;
  kind: NodeFrontendKind;
  frontend: LbFrontend;
  /** externalTrafficPolicy Local: this node's endpoints only, and the client IP is kept in every mode. */
  local: boolean;
  backends: LbBackend[];
  terminating?: true;
  affinityTimeoutSeconds: number;
}

export interface NodeContext {
  nodeName: string;
  /** The node's addresses that NodePorts listen on (IPv4; node frontends are IPv4 only). */
  nodeAddresses: string[];
}

/** The healthCheckNodePort a Local Service asks for, with this node's endpoint count (kube-proxy's service health server). */
export interface HealthCheckSpec {
  service: { namespace: string; name: string };
  port: number;
  localEndpoints: number;
}

export function nodeFrontends(svc: ServiceObject, slices: EndpointSliceObject[], ctx: NodeContext): { node: NodeFrontendSpec[]; connect: FrontendSpec[]; health?: HealthCheckSpec } {
  const spec = svc.spec ?? {};
  if (skipReason(svc)) return { node: [], connect: [] };
  const name = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
  const local = spec.externalTrafficPolicy === 'Local';
  const affinity = affinityOf(spec);
  const nodePorts = spec.type === 'NodePort' || spec.type === 'LoadBalancer';
  const externals: { ip: string; kind: NodeFrontendKind }[] = [
    ...(spec.externalIPs ?? []).map((ip) => ({ ip, kind: 'ExternalIP' as const })),
    ...(spec.type === 'LoadBalancer' ? (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [{ ip: i.ip, kind: 'LoadBalancer' as const }] : [])) : []),
  ].filter((e) => isIP(e.ip) === 4);

  const node: NodeFrontendSpec[] = [];
  const connect: FrontendSpec[] = [];
  let localEndpoints = 0;
  for (const p of spec.ports ?? []) {
    const protocol = (p.protocol ?? 'TCP') as string;
    if (protocol !== 'TCP' && protocol !== 'UDP') continue;
    const endpoints = portEndpoints(slices, 'IPv4', p.name ?? '', protocol, ctx.nodeName);
    const external = chooseBackends(endpoints, local);
    const cluster = chooseBackends(endpoints, false);
    localEndpoints = Math.max(localEndpoints, chooseBackends(endpoints, true).backends.length);
    const targets = [
      ...(nodePorts && p.nodePort ? ctx.nodeAddresses.filter((a) => familyOf(a) === 'IPv4').map((ip) => ({ ip, port: p.nodePort!, kind: 'NodePort' as const })) : []),
      ...externals.map((e) => ({ ip: e.ip, port: p.port, kind: e.kind })),
    ];
    for (const t of targets) {
      const frontend: LbFrontend = { ip: t.ip, port: t.port, protocol: protocol as LbProtocol };
      const id = `${name}:${p.name || p.port}/${protocol}@${t.ip}:${t.port}`;
      node.push({ id, kind: t.kind, frontend, local, backends: external.backends, ...(external.terminating ? { terminating: true as const } : {}), affinityTimeoutSeconds: affinity });
      connect.push({ id, frontend, backends: cluster.backends, ...(cluster.terminating ? { terminating: true as const } : {}), affinityTimeoutSeconds: affinity });
    }
  }
  const health =
    local && nodePorts && spec.healthCheckNodePort
      ? { service: { namespace: svc.metadata?.namespace ?? '', name: svc.metadata?.name ?? '' }, port: spec.healthCheckNodePort, localEndpoints }
      : undefined;
  return { node, connect, ...(health ? { health } : {}) };
}
