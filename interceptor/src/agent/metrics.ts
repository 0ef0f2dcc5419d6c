/** Prometheus metrics for the agent; BPF counters and map fill are read at scrape time. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { COUNTERS, counterKey } from '../dataplane/abi';
import { Dataplane } from '../dataplane/dataplane';
import { ServiceStatus } from '../lb/controller';
import { RecordStore } from './state';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly registrations = new Counter({
    name: 'switchyard_interceptor_registrations_total',
    help: 'CNI ADD outcomes by result (registered, skipped, failed, fail_open) and reason.',
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'switchyard_interceptor_registration_duration_seconds',
    help: 'From the agent receiving CNI ADD to maps and tc ready.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2, 10],
    registers: [this.registry],
  });
  readonly reconciled = new Counter({
    name: 'switchyard_interceptor_reconcile_actions_total',
    help: 'Reconcile actions by kind (reregistered, unregistered_stale, updated).',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });

  private services: () => ServiceStatus[] = () => [];

  /** Per-Service load-balancer figures, read at scrape time. */
  watchServices(f: () => ServiceStatus[]): void {
    this.services = f;
  }

  constructor(dataplane: () => Dataplane | undefined, store: RecordStore) {
    const self = this;
    new Gauge({
      name: 'switchyard_interceptor_service_events',
      help: 'Per Service frontend: connects/datagrams translated to a backend, and refused for lack of one (monotonic).',
      labelNames: ['service', 'frontend', 'event'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of self.services()) {
          this.set({ service: s.service, frontend: s.frontend, event: 'translated' }, Number(s.translations));
          this.set({ service: s.service, frontend: s.frontend, event: 'no_backend' }, Number(s.noBackend));
        }
      },
    });
    new Gauge({
      name: 'switchyard_interceptor_service_backends',
      help: 'Backends programmed per Service frontend: the ready ones, or those terminating but still serving when none is ready.',
      labelNames: ['service', 'frontend'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of self.services()) this.set({ service: s.service, frontend: s.frontend }, s.backends.length);
      },
    });
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'switchyard_interceptor_registered_pods',
      help: 'Pods registered in the BPF maps by this agent.',
      registers: [this.registry],
      collect() {
        this.set(store.all().length);
      },
    });
    new Gauge({
      name: 'switchyard_interceptor_bpf_events',
      help: 'Node-wide BPF counters (monotonic; summed over CPUs).',
      labelNames: ['counter'] as const,
      registers: [this.registry],
      collect() {
        const dp = dataplane();
        if (!dp) return;
        const c = dp.counters();
        for (const name of COUNTERS) this.set({ counter: counterKey(name) }, Number(c[name]));
      },
    });
    new Gauge({
      name: 'switchyard_interceptor_pod_bpf_events',
      help: 'Per-pod BPF counters (monotonic; summed over CPUs).',
      labelNames: ['namespace', 'pod', 'counter'] as const,
      registers: [this.registry],
      collect() {
        const dp = dataplane();
        if (!dp) return;
        this.reset();
        for (const r of store.all()) {
          const c = dp.podCounters(BigInt(r.netnsCookie));
          if (!c) continue;
          for (const [k, v] of Object.entries(c)) this.set({ namespace: r.namespace, pod: r.name, counter: k }, Number(v));
        }
      },
    });
    new Gauge({
      name: 'switchyard_interceptor_map_entries',
      help: 'Entries in each BPF map, and its capacity (kind="max").',
      labelNames: ['map', 'kind'] as const,
      registers: [this.registry],
      collect() {
        const dp = dataplane();
        if (!dp) return;
        for (const [map, f] of Object.entries(dp.mapFill())) {
          this.set({ map, kind: 'used' }, f.entries);
          this.set({ map, kind: 'max' }, f.max);
        }
      },
    });
  }
}
