/**
 * Keeps the load-balancer maps equal to the cluster's Services and
 * EndpointSlices.
 *
 *   Service / EndpointSlice reflectors ─► dirty set (namespace/name) ─► sync on the next tick:
 *     serviceFrontends() ─► Dataplane.setService (backends, then frontend, then shrink)
 *                       └─► Dataplane.deleteService for frontends the Service no longer has
 *
 * With node frontends on (nodePort in the agent's config), each Service's
 * NodePorts, externalIPs and LoadBalancer IPs also go into sy_lb_external
 * (node-frontends.ts), and a Local Service's healthCheckNodePort is served.
 *
 * Service ids are per frontend (ClusterIP:port/proto, and per node frontend).
 * After a restart they are taken back from the maps, and frontends that no
 * Service claims are removed.
 */
import { Logger } from '../../../lib/log';
import { Dataplane } from '../dataplane/dataplane';
import { LbFrontend } from '../dataplane/abi';
import { KubeClient } from '../../../lib/kube/client';
import { Reflector } from '../../../lib/kube/reflector';
import { EndpointSliceObject, FrontendSpec, SERVICE_NAME_LABEL, ServiceObject, frontendKey, serviceFrontends, slimEndpointSlice, slimService } from './services';
import type { NodeFrontendStatus, ServiceStatus } from '../../../api/agent-wire';
import type { NodePortMode } from '../dataplane/abi-nodeport';
import { HealthCheckServer } from './health';
import { HealthCheckSpec, NodeFrontendSpec, nodeFrontends } from './node-frontends';

export interface LoadBalancerOptions {
  /** This node: endpoints on it are local (internal/externalTrafficPolicy Local). */
  nodeName?: string;
  /** Node frontends: how remote backends are reached, and the addresses NodePorts listen on. */
  nodePort?: { mode: NodePortMode; addresses: string[]; health?: HealthCheckServer };
}

export type { NodeFrontendStatus, ServiceStatus };


/** Node frontends share the id space with connect-time ones, under their own keys. */
const nodeKey = (f: LbFrontend) => `node|${frontendKey(f)}`;

/** Frontend key -> the Service that owns it and what was programmed for it. */
function owners<T>(owned: Map<string, Map<string, T>>): Map<string, { service: string; spec: T }> {
  const out = new Map<string, { service: string; spec: T }>();
  for (const [service, fs] of owned) for (const [k, spec] of fs) out.set(k, { service, spec });
  return out;
}

const key = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace}/${o.metadata?.name}`;

export class ServiceLoadBalancer {
  private readonly services: Reflector<ServiceObject>;
  private readonly slices: Reflector<EndpointSliceObject>;
  private readonly slicesByService = new Map<string, Map<string, EndpointSliceObject>>();
  private readonly ids = new Map<string, number>(); // frontend key -> service id
  private readonly owned = new Map<string, Map<string, FrontendSpec>>(); // Service -> its frontends, as last programmed
  private readonly ownedNode = new Map<string, Map<string, NodeFrontendSpec>>(); // Service -> its node frontends
  private readonly health = new Map<string, HealthCheckSpec>(); // Service -> its healthCheckNodePort
  private nextId = 1;
  private readonly dirty = new Set<string>();
  private scheduled = false;
  syncs = 0;

  constructor(
    client: KubeClient,
    private readonly dp: Dataplane,
    private readonly log: Logger,
    onError: (e: Error) => void,
    private readonly opts: LoadBalancerOptions = {},
  ) {
    const common = { client, resourceVersion: (o: { metadata?: { resourceVersion?: string } }) => o.metadata?.resourceVersion, onError };
    this.services = new Reflector<ServiceObject>({ ...common, path: '/api/v1/services', slim: slimService, key });
    this.slices = new Reflector<EndpointSliceObject>({ ...common, path: '/apis/discovery.k8s.io/v1/endpointslices', slim: slimEndpointSlice, key });
  }

  private owner(s: EndpointSliceObject): string | undefined {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    return svc ? `${s.metadata?.namespace}/${svc}` : undefined;
  }

  /** Removes the entries of one frontend table that no Service owns. */
  private sweep<T extends { serviceId: number; frontend: LbFrontend }>(owned: Map<string, Map<string, unknown>>, pinned: T[], keyOf: (f: LbFrontend) => string, remove: (s: T) => void, what: string): void {
    const claimed = new Set([...owned.values()].flatMap((m) => [...m.keys()]));
    for (const s of pinned) {
      const k = keyOf(s.frontend);
      if (claimed.has(k)) continue;
      remove(s);
      this.ids.delete(k);
      this.log('info', what, { frontend: frontendKey(s.frontend), reason: 'no-such-service' });
    }
  }

  async start(): Promise<void> {
    for (const s of this.dp.services()) {
      this.ids.set(frontendKey(s.frontend), s.serviceId);
      this.nextId = Math.max(this.nextId, s.serviceId + 1);
    }
    for (const s of this.dp.nodeServices()) {
      this.ids.set(nodeKey(s.frontend), s.serviceId);
      this.nextId = Math.max(this.nextId, s.serviceId + 1);
    }
    this.slices.on('upsert', (s, old) => {
      const prev = old && this.owner(old);
      if (prev && prev !== this.owner(s)) this.slicesByService.get(prev)?.delete(key(s));
      const o = this.owner(s);
      if (!o) return;
      if (!this.slicesByService.has(o)) this.slicesByService.set(o, new Map());
      this.slicesByService.get(o)!.set(key(s), s);
      this.mark(o);
      if (prev && prev !== o) this.mark(prev);
    });
    this.slices.on('delete', (s) => {
      const o = this.owner(s);
      if (!o) return;
      this.slicesByService.get(o)?.delete(key(s));
      this.mark(o);
    });
    this.services.on('upsert', (s) => this.mark(key(s)));
    this.services.on('delete', (s) => this.mark(key(s)));
    await Promise.all([this.slices.start(), this.services.start()]);
    this.flush();
    // Frontends left by an earlier agent that no Service claims any more.
    this.sweep(this.owned, this.dp.services(), frontendKey, (s) => this.dp.deleteService(s.serviceId, s.frontend), 'service frontend removed');
    this.sweep(this.ownedNode, this.dp.nodeServices(), nodeKey, (s) => this.dp.deleteNodeService(s.serviceId, s.frontend), 'node frontend removed');
  }

  stop(): void {
    this.services.stop();
    this.slices.stop();
  }

  private mark(svc: string): void {
    this.dirty.add(svc);
    if (this.scheduled || !this.services.synced || !this.slices.synced) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Programs every dirty Service now. Safe to call at any time. */
  flush(): void {
    this.scheduled = false;
    const todo = [...this.dirty];
    this.dirty.clear();
    for (const svc of todo) {
      try {
        this.sync(svc);
      } catch (e) {
        this.log('error', 'service not programmed', { service: svc, error: (e as Error).message });
      }
    }
  }

  private idFor(k: string): number {
    let id = this.ids.get(k);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(k, id);
    }
    return id;
  }

  private sync(svc: string): void {
    const started = process.hrtime.bigint();
    const obj = this.services.get(svc);
    const slices = [...(this.slicesByService.get(svc)?.values() ?? [])];
    const { frontends, skipped } = obj ? serviceFrontends(obj, slices, this.opts.nodeName) : { frontends: [] as FrontendSpec[], skipped: undefined };
    const np = this.opts.nodePort;
    const nf = obj && np && this.opts.nodeName ? nodeFrontends(obj, slices, { nodeName: this.opts.nodeName, nodeAddresses: np.addresses }) : { node: [], connect: [] };
    frontends.push(...nf.connect);
    const before = this.replaceOwned(this.owned, svc, frontends.map((f) => [frontendKey(f.frontend), f]),
      (k, f) => this.dp.setService(this.idFor(k), f.frontend, f.backends, f.affinityTimeoutSeconds),
      (k, f) => this.dp.deleteService(this.ids.get(k)!, f.frontend));
    const mode = np?.mode ?? 'snat';
    this.replaceOwned(this.ownedNode, svc, nf.node.map((f) => [nodeKey(f.frontend), f]),
      (k, f) => this.dp.setNodeService(this.idFor(k), f.frontend, f.backends, { mode, local: f.local, affinityTimeoutSeconds: f.affinityTimeoutSeconds }),
      (k, f) => this.dp.deleteNodeService(this.ids.get(k)!, f.frontend));
    if (nf.health) this.health.set(svc, nf.health);
    else this.health.delete(svc);
    np?.health?.sync([...this.health.values()]);
    this.syncs++;
    const ms = (Number(process.hrtime.bigint() - started) / 1e6).toFixed(2);
    if (!obj) this.log('info', 'service removed', { service: svc, frontends: before.size, duration_ms: ms });
    else if (skipped) this.log('info', 'service not load-balanced', { service: svc, reason: skipped, removed_frontends: before.size });
    else
      this.log('info', 'service programmed', {
        service: svc,
        frontends: frontends.map((f) => `${frontendKey(f.frontend)}→${f.backends.length}${f.terminating ? '(terminating)' : ''}`).join(','),
        node_frontends: nf.node.length ? nf.node.map((f) => `${f.kind}:${frontendKey(f.frontend)}→${f.backends.length}${f.local ? '(local)' : ''}`).join(',') : undefined,
        node_mode: nf.node.length ? np?.mode : undefined,
        health_check_port: nf.health ? `${nf.health.port}(${nf.health.localEndpoints} local)` : undefined,
        affinity_s: frontends[0]?.affinityTimeoutSeconds || undefined,
        duration_ms: ms,
      });
  }

  /**
   * One Service's entries in one table: program the wanted ones (set), then
   * remove those it had before and no longer has (del), and remember the new
   * set. Returns the old one.
   */
  private replaceOwned<T>(owned: Map<string, Map<string, T>>, svc: string, wanted: [string, T][], set: (k: string, v: T) => void, del: (k: string, v: T) => void): Map<string, T> {
    const before = owned.get(svc) ?? new Map<string, T>();
    const after = new Map<string, T>();
    for (const [k, v] of wanted) {
      set(k, v);
      after.set(k, v);
    }
    for (const [k, v] of before) {
      if (after.has(k)) continue;
      del(k, v);
      this.ids.delete(k);
    }
    if (after.size) owned.set(svc, after);
    else owned.delete(svc);
    return before;
  }

  /** Node frontends as the kernel holds them, with their owners (`switchyard status services`). */
  nodeStatus(): NodeFrontendStatus[] {
    const owner = owners(this.ownedNode);
    return this.dp.nodeServices().map((s) => {
      const o = owner.get(nodeKey(s.frontend));
      return {
        service: o?.service ?? '(unowned)',
        kind: o?.spec.kind ?? 'NodePort',
        frontend: frontendKey(s.frontend),
        mode: s.mode,
        policy: s.local ? 'Local' : 'Cluster',
        backends: s.backends.map((b) => `${b.ip}:${b.port}${b.local ? '(local)' : ''}`),
        counters: Object.fromEntries(Object.entries(s.counters).map(([k, v]) => [k, String(v)])),
      };
    });
  }

  /** The kernel's view, with the Service that owns each frontend. */
  status(): ServiceStatus[] {
    const owner = owners(this.owned);
    return this.dp.services().map((s) => {
      const o = owner.get(frontendKey(s.frontend));
      return {
        service: o?.service ?? '(unowned)',
        frontend: frontendKey(s.frontend),
        serviceId: s.serviceId,
        affinityTimeoutSeconds: s.affinityTimeoutSeconds,
        backends: s.backends.map((b) => `${b.ip.includes(':') ? `[${b.ip}]` : b.ip}:${b.port}`),
        ...(o?.spec.terminating ? { terminating: true as const } : {}),
        translations: String(s.translations),
        noBackend: String(s.noBackend),
      };
    });
  }
}
