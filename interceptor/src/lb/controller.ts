/**
 * Keeps the load-balancer maps equal to the cluster's Services and
 * EndpointSlices.
 *
 *   Service / EndpointSlice reflectors ─► dirty set (namespace/name) ─► sync on the next tick:
 *     serviceFrontends() ─► Dataplane.setService (backends, then frontend, then shrink)
 *                       └─► Dataplane.deleteService for frontends the Service no longer has
 *
 * Service ids are per frontend (ClusterIP:port/proto). After a restart they
 * are taken back from the maps, and frontends that no Service claims are removed.
 */
import { Logger } from '../../../lib/log';
import { Dataplane } from '../dataplane/dataplane';
import { LbFrontend } from '../dataplane/abi';
import { KubeClient } from '../../../lib/kube/client';
import { Reflector } from '../../../lib/kube/reflector';
import { EndpointSliceObject, FrontendSpec, SERVICE_NAME_LABEL, ServiceObject, frontendKey, serviceFrontends, slimEndpointSlice, slimService } from './services';
import type { ServiceStatus } from '../../../api/agent-wire';

export type { ServiceStatus };


/** One frontend as `switchyard status services` and the metrics show it. */
const key = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace}/${o.metadata?.name}`;

export class ServiceLoadBalancer {
  private readonly services: Reflector<ServiceObject>;
  private readonly slices: Reflector<EndpointSliceObject>;
  private readonly slicesByService = new Map<string, Map<string, EndpointSliceObject>>();
  private readonly ids = new Map<string, number>(); // frontend key -> service id
  private readonly owned = new Map<string, Map<string, FrontendSpec>>(); // Service -> its frontends, as last programmed
  private nextId = 1;
  private readonly dirty = new Set<string>();
  private scheduled = false;
  syncs = 0;

  constructor(
    client: KubeClient,
    private readonly dp: Dataplane,
    private readonly log: Logger,
    onError: (e: Error) => void,
  ) {
    const common = { client, resourceVersion: (o: { metadata?: { resourceVersion?: string } }) => o.metadata?.resourceVersion, onError };
    this.services = new Reflector<ServiceObject>({ ...common, path: '/api/v1/services', slim: slimService, key });
    this.slices = new Reflector<EndpointSliceObject>({ ...common, path: '/apis/discovery.k8s.io/v1/endpointslices', slim: slimEndpointSlice, key });
  }

  private owner(s: EndpointSliceObject): string | undefined {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    return svc ? `${s.metadata?.namespace}/${svc}` : undefined;
  }

  async start(): Promise<void> {
    for (const s of this.dp.services()) {
      this.ids.set(frontendKey(s.frontend), s.serviceId);
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
    const claimed = new Set([...this.owned.values()].flatMap((m) => [...m.keys()]));
    for (const s of this.dp.services()) {
      const k = frontendKey(s.frontend);
      if (claimed.has(k)) continue;
      this.dp.deleteService(s.serviceId, s.frontend);
      this.ids.delete(k);
      this.log('info', 'service frontend removed', { frontend: k, reason: 'no-such-service' });
    }
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

  private idFor(f: LbFrontend): number {
    const k = frontendKey(f);
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
    const { frontends, skipped } = obj ? serviceFrontends(obj, [...(this.slicesByService.get(svc)?.values() ?? [])]) : { frontends: [] as FrontendSpec[], skipped: undefined };
    const before = this.owned.get(svc) ?? new Map<string, FrontendSpec>();
    const after = new Map<string, FrontendSpec>();
    for (const f of frontends) {
      this.dp.setService(this.idFor(f.frontend), f.frontend, f.backends, f.affinityTimeoutSeconds);
      after.set(frontendKey(f.frontend), f);
    }
    for (const [k, f] of before) {
      if (after.has(k)) continue;
      this.dp.deleteService(this.ids.get(k)!, f.frontend);
      this.ids.delete(k);
    }
    if (after.size) this.owned.set(svc, after);
    else this.owned.delete(svc);
    this.syncs++;
    const ms = (Number(process.hrtime.bigint() - started) / 1e6).toFixed(2);
    if (!obj) this.log('info', 'service removed', { service: svc, frontends: before.size, duration_ms: ms });
    else if (skipped) this.log('info', 'service not load-balanced', { service: svc, reason: skipped, removed_frontends: before.size });
    else
      this.log('info', 'service programmed', {
        service: svc,
        frontends: frontends.map((f) => `${frontendKey(f.frontend)}→${f.backends.length}${f.terminating ? '(terminating)' : ''}`).join(','),
        affinity_s: frontends[0]?.affinityTimeoutSeconds || undefined,
        duration_ms: ms,
      });
  }

  /** The kernel's view, with the Service that owns each frontend. */
  status(): ServiceStatus[] {
    const owner = new Map<string, { service: string; spec: FrontendSpec }>();
    for (const [service, fs] of this.owned) for (const [k, spec] of fs) owner.set(k, { service, spec });
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
