/**
 * The node agent's unix-socket API as switchyard-cni (Go) and the CLI speak
 * it: where the socket is, the CNI paths, the request and reply bodies, and
 * the plugin-specific CNI error codes. api/agent-wire.json holds the same
 * facts for the Go side; api/agent-wire.test.ts and
 * interceptor/cni/wire_test.go hold both sides to that file.
 */

import type { Interception } from './interception';

/** The agent's socketPath default, and the plugin's agentSocket default. */
export const DEFAULT_AGENT_SOCKET = '/run/switchyard/agent.sock';

export const CNI_PATHS = { add: '/v1/cni/add', del: '/v1/cni/del', check: '/v1/cni/check' } as const;

/** CNI error codes 100 and up are the plugin's own (the spec keeps 0-99). */
export const CNI_ERRORS = {
  /** switchyard-cni: the agent's socket did not answer (failOpen applies). */
  agentUnreachable: 100,
  /** switchyard-cni: the agent answered with an error it did not code, or an unreadable reply. */
  agentRefused: 101,
  registrationFailed: 102,
  invalidAnnotations: 103,
  checkFailed: 104,
} as const;

/** POST body of /v1/cni/{add,del,check}. */
export interface CniRequest {
  cniVersion?: string;
  containerId: string;
  netns: string;
  ifname: string;
  podNamespace: string;
  podName: string;
  podUid?: string;
  ips: string[];
}

/** 200 reply. */
export interface CniReply {
  registered: boolean;
  reason: string;
  netnsCookie?: string;
}

/** Non-200 reply; the plugin prints it as a CNI error with this code. */
export interface CniErrorReply {
  code: number;
  message: string;
  details?: string;
}

/** GET /v1/status/NAMESPACE/NAME, and each of GET /v1/status's pods: one registered pod. */
export interface PodStatus {
  namespace: string;
  name: string;
  uid: string;
  containerId: string;
  netnsCookie: string;
  cgroup?: string;
  ips: string[];
  ifname: string;
  interception: Interception;
  registeredAt: string;
  /** The pod's BPF counters (sy_pod_counters) as decimal strings; empty while its map entry is missing. */
  counters: Record<string, string>;
}

/** GET /v1/status: the node's registered pods, its counters, map fill and the agent's memory. */
export interface NodeStatus {
  pods: PodStatus[];
  /** Node-wide BPF counters by their CLI name (connect_redirected_outbound, ...). */
  node: Record<string, string>;
  maps: Record<string, { entries: number; max: number }>;
  memory: NodeJS.MemoryUsage;
}

/** GET /v1/services: { services: ServiceStatus[] }, one per frontend. */
export interface ServiceStatus {
  /** namespace/name */
  service: string;
  /** ip:port/protocol */
  frontend: string;
  serviceId: number;
  affinityTimeoutSeconds: number;
  backends: string[];
  /** No endpoint is ready: the backends are terminating but still serving. */
  terminating?: true;
  translations: string;
  noBackend: string;
}

/** In GET /v1/services as nodeFrontends, when node frontends are on: one per NodePort address, external or LoadBalancer IP. */
export interface NodeFrontendStatus {
  service: string;
  kind: string;
  /** ip:port/protocol */
  frontend: string;
  mode: string;
  policy: 'Local' | 'Cluster';
  backends: string[];
  /** local, snat, dsr, no_backend, replies_rewritten, icmp_too_big (decimal strings) */
  counters: Record<string, string>;
}

/** GET ?pod=NAMESPACE/NAME&type=VERDICT: the decision monitor, one JSON line per event, for as long as the client reads; a blank line is a heartbeat. */
export const MONITOR_PATH = '/v1/monitor';

/** redirect: the destination changed (sidecar, inbound port, or a Service backend); drop: refused; pass: left alone. */
export const VERDICTS = ['redirect', 'pass', 'drop'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** tc-node: tc on the node's own devices (NodePort, external and LoadBalancer IPs from outside the cluster). */
export type MonitorHook = 'connect4' | 'connect6' | 'sock_ops' | 'getsockopt' | 'tc-ingress' | 'tc-node';

export interface MonitorEndpoint {
  ip: string;
  port: number;
}

/** One decision of the kernel programs, resolved by the agent. */
export interface MonitorEventLine {
  time: string;
  node: string;
  hook: MonitorHook;
  verdict: Verdict;
  /** The counter the decision also counted, as `switchyard status` names it (connect_redirected_outbound, ...). */
  reason: string;
  /** Service load balancing chose the destination. */
  balanced: boolean;
  /** namespace/name of the pod the program ran for; absent outside the mesh and for tc-node. */
  pod?: string;
  /** namespace/name of the pod whose sidecar receives the connection, when another. */
  peerPod?: string;
  netnsCookie: string;
  podNetnsCookie?: string;
  /** The client end, when known (not at connect: no port is chosen yet). */
  src?: MonitorEndpoint;
  /** Where the connection goes now. */
  dst: MonitorEndpoint;
  /** Where the client asked to go. */
  orig: MonitorEndpoint;
  /** The calling process, at connect and getsockopt. */
  pid?: number;
  uid?: number;
}

/** Decisions the programs could not report since the previous line (rate limit or a full ring). */
export interface MonitorLostLine {
  time: string;
  node: string;
  lost: string;
}

/** GET /v1/node: what the node offers the dataplane, for `switchyard check` and `kubectl switchyard check`. */
export interface NodeReport {
  node: string;
  kernel: string;
  btf: boolean;
  cgroup: { mount: string; mode: 'unified' | 'hybrid' } | { error: string };
  bpffs: { path: string; mounted: boolean };
  features: { what: string; since: string; ok: boolean }[];
  origdstHandoff: string;
  /** The CNI configuration the runtime uses: its file and the plugin types in chain order. */
  cni: { confDir: string; file?: string; plugins?: string[]; error?: string };
  monitor: { enabled: boolean; watching: number; lost: string };
}

