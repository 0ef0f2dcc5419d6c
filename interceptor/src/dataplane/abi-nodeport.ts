/**
 * Codecs of the node frontends' maps (bpf/headers/switchyard.h, "NodePort,
 * externalIPs and LoadBalancer ingress IPs"; bpf/sy_nodeport.c). Like abi.ts,
 * held to the objects' BTF by test/abi.test.ts.
 */
import { encodeAddr } from '../../../api/addr';
import { LB_FRONTEND, LB_FLAG_AFFINITY, Layout } from './abi';

const FLOW_KEY: Layout = {
  name: 'sy_np_flow_key',
  size: 40,
  fields: { client: [0, 16], frontend: [16, 16], client_port: [32, 2], frontend_port: [34, 2], proto: [36, 1], _pad: [37, 3] },
};
const FLOW: Layout = {
  name: 'sy_np_flow',
  size: 32,
  fields: { backend: [0, 16], backend_port: [16, 2], nat_port: [18, 2], service_id: [20, 4], slot: [24, 4], path: [28, 1], state: [29, 1], seen: [30, 2] },
};
const SNAT_KEY: Layout = { name: 'sy_np_snat_key', size: 24, fields: { backend: [0, 16], backend_port: [16, 2], nat_port: [18, 2], proto: [20, 1], _pad: [21, 3] } };
const SNAT: Layout = {
  name: 'sy_np_snat',
  size: 48,
  fields: { client: [0, 16], frontend: [16, 16], client_port: [32, 2], frontend_port: [34, 2], service_id: [36, 4], backend_closed: [40, 2], _pad: [42, 6] },
};
const REVNAT_KEY: Layout = {
  name: 'sy_np_revnat_key',
  size: 40,
  fields: { backend: [0, 16], client: [16, 16], backend_port: [32, 2], client_port: [34, 2], proto: [36, 1], _pad: [37, 3] },
};
const REVNAT: Layout = { name: 'sy_np_revnat', size: 24, fields: { frontend: [0, 16], frontend_port: [16, 2], _pad: [18, 2], service_id: [20, 4] } };
const AFFINITY_KEY: Layout = { name: 'sy_np_affinity_key', size: 24, fields: { client: [0, 16], service_id: [16, 4], _pad: [20, 4] } };
const NP_CONFIG: Layout = { name: 'sy_np_config', size: 24, fields: { snat_addr: [0, 16], snat_port_min: [16, 2], snat_port_max: [18, 2], snat_closed_grace_s: [20, 2], snat_time_wait_s: [22, 2] } };
export const NP_COUNTERS: Layout = {
  name: 'sy_np_counters',
  size: 48,
  fields: { local: [0, 8], snat: [8, 8], dsr: [16, 8], no_backend: [24, 8], replies_rewritten: [32, 8], icmp_too_big: [40, 8] },
};

export const NODEPORT_LAYOUTS = [FLOW_KEY, FLOW, SNAT_KEY, SNAT, REVNAT_KEY, REVNAT, AFFINITY_KEY, NP_CONFIG, NP_COUNTERS];

/**
 * How a node frontend reaches a backend on another node:
 *   snat    the source becomes this node (kube-proxy's way); replies come back through it
 *   dsr     the Service address rides in an IP option; replies go from the backend's node direct
 *   hybrid  dsr for TCP, snat for UDP (no per-datagram option, so no MTU cost for UDP)
 */
export type NodePortMode = 'snat' | 'dsr' | 'hybrid';
export const NODEPORT_MODES: readonly NodePortMode[] = ['snat', 'dsr', 'hybrid'];

const NP_FLAG_DSR = 2;
const NP_FLAG_DSR_UDP = 4;
const NP_FLAG_LOCAL = 8;

export interface NodeFrontendValue {
  serviceId: number;
  backendCount: number;
  affinityTimeoutSeconds: number;
  mode: NodePortMode;
  /** externalTrafficPolicy: Local. */
  local: boolean;
}

export function encodeNodeFrontend(v: NodeFrontendValue): Buffer {
  const b = Buffer.alloc(LB_FRONTEND.size);
  const flags =
    (v.affinityTimeoutSeconds > 0 ? LB_FLAG_AFFINITY : 0) |
    (v.mode !== 'snat' ? NP_FLAG_DSR : 0) |
    (v.mode === 'dsr' ? NP_FLAG_DSR_UDP : 0) |
    (v.local ? NP_FLAG_LOCAL : 0);
  b.writeUInt32LE(v.serviceId, 0);
  b.writeUInt16LE(v.backendCount, 4);
  b.writeUInt8(flags, 6);
  b.writeUInt32LE(v.affinityTimeoutSeconds, 8);
  return b;
}

export function decodeNodeFrontend(b: Buffer): NodeFrontendValue {
  const flags = b.readUInt8(6);
  return {
    serviceId: b.readUInt32LE(0),
    backendCount: b.readUInt16LE(4),
    affinityTimeoutSeconds: flags & LB_FLAG_AFFINITY ? b.readUInt32LE(8) : 0,
    mode: flags & NP_FLAG_DSR_UDP ? 'dsr' : flags & NP_FLAG_DSR ? 'hybrid' : 'snat',
    local: (flags & NP_FLAG_LOCAL) !== 0,
  };
}

export interface NodePortConfig {
  /** This node's IPv4 address for snat; unset turns snat off (flows to remote backends are then dropped unless dsr). */
  snatAddress?: string;
  snatPortMin: number;
  snatPortMax: number;
  /** How long a snat port waits after its TCP flow closed with FINs before another flow may take it (default 10). */
  snatClosedGraceSeconds?: number;
  /** How long a snat port waits after its backend closed first: the backend's TIME_WAIT (default 60, Linux's). */
  snatTimeWaitSeconds?: number;
}

/** Cilium's close timeout: long enough for the last ACKs (bpf/README.md, "snat ports"). */
export const DEFAULT_SNAT_CLOSED_GRACE_S = 10;
/** Linux's TCP_TIMEWAIT_LEN: how long a backend that closed first refuses most new SYNs on the same tuple. */
export const DEFAULT_SNAT_TIME_WAIT_S = 60;

/**
 * sy_np_snat entries of ABI 4 and 5 were 8 bytes shorter: no backend_closed
 * (0: not known to be in TIME_WAIT, as before). migrate.ts applies it.
 */
export function upgradeSnatEntry(key: Buffer, value: Buffer): [Buffer, Buffer] {
  const v = Buffer.alloc(SNAT.size);
  value.copy(v, 0, 0, Math.min(value.length, 40));
  return [key, v];
}

export function encodeNodePortConfig(c: NodePortConfig): Buffer {
  const b = Buffer.alloc(NP_CONFIG.size);
  if (c.snatAddress) encodeAddr(c.snatAddress).copy(b, 0);
  b.writeUInt16LE(c.snatPortMin, 16);
  b.writeUInt16LE(c.snatPortMax, 18);
  b.writeUInt16LE(c.snatClosedGraceSeconds ?? DEFAULT_SNAT_CLOSED_GRACE_S, 20);
  b.writeUInt16LE(c.snatTimeWaitSeconds ?? DEFAULT_SNAT_TIME_WAIT_S, 22);
  return b;
}

export type NodePortCounters = Record<keyof typeof NP_COUNTERS.fields, bigint>;

/** Sums a per-CPU sy_np_counters value. */
export function decodeNodePortCounters(b: Buffer): NodePortCounters {
  const out = Object.fromEntries(Object.keys(NP_COUNTERS.fields).map((k) => [k, 0n])) as NodePortCounters;
  for (let cpu = 0; cpu + NP_COUNTERS.size <= b.length; cpu += NP_COUNTERS.size) {
    for (const [k, [o]] of Object.entries(NP_COUNTERS.fields)) out[k as keyof NodePortCounters] += b.readBigUInt64LE(cpu + o);
  }
  return out;
}
