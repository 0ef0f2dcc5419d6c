/**
 * One table of connect decisions, run twice: against the explain model
 * (interceptor/src/agent/explain.test.ts) and against the kernel
 * (test/kernel/agent.test.ts), where each case is a real connect whose
 * node counters must move exactly as the model says.
 *
 * The world, by role: the asking mesh pod (outbound port 7070 and the CIDR
 * `excludedCidr` excluded), another mesh pod on the node (`peer`), a non-mesh
 * server (`plain`), and four TCP Services: `svc` (:80 → plain:8080),
 * `svcToPeer` (:80 → peer:8080), `svcExcluded` (:7070 → plain:8080) and
 * `svcEmpty` (:80, no endpoints).
 */
import { CounterName } from '../../interceptor/src/dataplane/abi';
import { Verdict } from '../../interceptor/src/agent/explain';

export interface ExplainWorld {
  pod: string;
  peer: string;
  plain: string;
  /** An address in the asking pod's excluded outbound CIDR. */
  excludedCidr: string;
  svc: string;
  svcToPeer: string;
  svcExcluded: string;
  svcEmpty: string;
}

export interface ExplainCase {
  name: string;
  from: 'app' | 'sidecar' | 'foreign';
  dst: (w: ExplainWorld) => { ip: string; port: number };
  verdict: Verdict;
  counters: CounterName[];
}

export const EXPLAIN_CASES: ExplainCase[] = [
  { name: 'app to a server', from: 'app', dst: (w) => ({ ip: w.plain, port: 8080 }), verdict: 'redirect-outbound', counters: ['SY_C_CONNECT_REDIRECTED_OUTBOUND'] },
  { name: 'app to an excluded port', from: 'app', dst: (w) => ({ ip: w.plain, port: 7070 }), verdict: 'direct', counters: ['SY_C_CONNECT_EXCLUDED'] },
  { name: 'app to an excluded CIDR', from: 'app', dst: (w) => ({ ip: w.excludedCidr, port: 8080 }), verdict: 'direct', counters: ['SY_C_CONNECT_EXCLUDED'] },
  { name: 'app to loopback', from: 'app', dst: () => ({ ip: '127.0.0.1', port: 8080 }), verdict: 'direct', counters: ['SY_C_CONNECT_EXCLUDED'] },
  { name: 'app to a v4-mapped server address', from: 'app', dst: (w) => ({ ip: `::ffff:${w.plain}`, port: 8080 }), verdict: 'redirect-outbound', counters: ['SY_C_CONNECT_REDIRECTED_OUTBOUND'] },
  { name: 'app to v4-mapped loopback', from: 'app', dst: () => ({ ip: '::ffff:127.0.0.1', port: 8080 }), verdict: 'direct', counters: ['SY_C_CONNECT_EXCLUDED'] },
  { name: 'sidecar to a server', from: 'sidecar', dst: (w) => ({ ip: w.plain, port: 8080 }), verdict: 'direct', counters: ['SY_C_CONNECT_SIDECAR_PASSED'] },
  { name: 'sidecar to a mesh pod on the node', from: 'sidecar', dst: (w) => ({ ip: w.peer, port: 8080 }), verdict: 'redirect-inbound', counters: ['SY_C_CONNECT_REDIRECTED_INBOUND'] },
  { name: "sidecar to a mesh pod's inbound port", from: 'sidecar', dst: (w) => ({ ip: w.peer, port: 15003 }), verdict: 'direct', counters: ['SY_C_CONNECT_SIDECAR_PASSED'] },
  { name: 'app to a ClusterIP', from: 'app', dst: (w) => ({ ip: w.svc, port: 80 }), verdict: 'redirect-outbound', counters: ['SY_C_LB_MESH_DEFERRED', 'SY_C_CONNECT_REDIRECTED_OUTBOUND'] },
  { name: 'sidecar to a ClusterIP', from: 'sidecar', dst: (w) => ({ ip: w.svc, port: 80 }), verdict: 'direct', counters: ['SY_C_LB_TRANSLATED', 'SY_C_CONNECT_SIDECAR_PASSED'] },
  { name: 'sidecar to a ClusterIP backed by a mesh pod on the node', from: 'sidecar', dst: (w) => ({ ip: w.svcToPeer, port: 80 }), verdict: 'redirect-inbound', counters: ['SY_C_LB_TRANSLATED', 'SY_C_CONNECT_REDIRECTED_INBOUND'] },
  { name: 'app to a ClusterIP on an excluded port', from: 'app', dst: (w) => ({ ip: w.svcExcluded, port: 7070 }), verdict: 'direct', counters: ['SY_C_LB_TRANSLATED', 'SY_C_CONNECT_EXCLUDED'] },
  // A mesh app's connect is left for its sidecar, which then meets the refusal.
  { name: 'app to a ClusterIP without endpoints', from: 'app', dst: (w) => ({ ip: w.svcEmpty, port: 80 }), verdict: 'redirect-outbound', counters: ['SY_C_LB_MESH_DEFERRED', 'SY_C_CONNECT_REDIRECTED_OUTBOUND'] },
  { name: 'sidecar to a ClusterIP without endpoints', from: 'sidecar', dst: (w) => ({ ip: w.svcEmpty, port: 80 }), verdict: 'refused', counters: ['SY_C_LB_NO_BACKEND'] },
  { name: 'a process outside the pod cgroup to a server', from: 'foreign', dst: (w) => ({ ip: w.plain, port: 8080 }), verdict: 'direct', counters: ['SY_C_CONNECT_FOREIGN_CGROUP'] },
  { name: 'a process outside the pod cgroup to a ClusterIP', from: 'foreign', dst: (w) => ({ ip: w.svc, port: 80 }), verdict: 'direct', counters: ['SY_C_LB_TRANSLATED', 'SY_C_CONNECT_FOREIGN_CGROUP'] },
];
