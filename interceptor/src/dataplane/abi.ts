/**
 * TypeScript view of bpf/headers/switchyard.h. Offsets are written once here;
 * test/abi.test.ts compares every field with the BTF that clang emitted for
 * the C structs, so the two cannot drift apart silently.
 */
import { ADDR_BYTES, Cidr, decodeAddr, encodeAddr } from '../../../api/addr';
import { MAX_POD_IPS } from '../../../api/interception';

/** Field name -> [offset, size] in bytes, as in the C struct. */
export type Layout = { name: string; size: number; fields: Record<string, readonly [number, number]> };

export const POD_CONFIG: Layout = {
  name: 'sy_pod_config',
  size: 376,
  fields: {
    ips: [0, 32],
    cgroup_id: [32, 8],
    cgroup_level: [40, 4],
    sidecar_uid: [44, 4],
    outbound_port: [48, 2],
    inbound_port: [50, 2],
    excluded_outbound_port_count: [52, 1],
    excluded_inbound_port_count: [53, 1],
    excluded_outbound_cidr_count: [54, 1],
    flags: [55, 1],
    excluded_outbound_ports: [56, 32],
    excluded_inbound_ports: [88, 32],
    excluded_outbound_cidrs: [120, 256],
  },
};

export const POD_REF: Layout = { name: 'sy_pod_ref', size: 8, fields: { netns_cookie: [0, 8] } };

export const TUPLE: Layout = {
  name: 'sy_tuple',
  size: 48,
  fields: { netns_cookie: [0, 8], client_ip: [8, 16], server_ip: [24, 16], client_port: [40, 2], server_port: [42, 2], _pad: [44, 4] },
};

export const ORIGDST: Layout = {
  name: 'sy_origdst',
  size: 32,
  fields: { addr: [0, 16], port: [16, 2], origin: [18, 1], _pad: [19, 1], _pad2: [20, 4], pod_netns_cookie: [24, 8] },
};

export const SOCK_KEY: Layout = {
  name: 'sy_sock_key',
  size: 48,
  fields: { netns_cookie: [0, 8], local_ip: [8, 16], remote_ip: [24, 16], local_port: [40, 2], remote_port: [42, 2], _pad: [44, 4] },
};

export const CIDR: Layout = { name: 'sy_cidr', size: 32, fields: { addr: [0, 16], mask: [16, 16] } };

export const POD_COUNTERS: Layout = {
  name: 'sy_pod_counters',
  size: 48,
  fields: { redirected_outbound: [0, 8], redirected_inbound: [8, 8], excluded: [16, 8], sidecar_passed: [24, 8], tc_inbound_new: [32, 8], dropped: [40, 8] },
};

export const LB_FRONTEND_KEY: Layout = { name: 'sy_lb_frontend_key', size: 20, fields: { addr: [0, 16], port: [16, 2], proto: [18, 1], _pad: [19, 1] } };
export const LB_FRONTEND: Layout = {
  name: 'sy_lb_frontend',
  size: 12,
  fields: { service_id: [0, 4], backend_count: [4, 2], flags: [6, 1], _pad: [7, 1], affinity_timeout_s: [8, 4] },
};
export const LB_BACKEND_KEY: Layout = { name: 'sy_lb_backend_key', size: 8, fields: { service_id: [0, 4], slot: [4, 4] } };
export const LB_BACKEND: Layout = { name: 'sy_lb_backend', size: 20, fields: { addr: [0, 16], port: [16, 2], flags: [18, 2] } };
export const LB_COUNTERS: Layout = { name: 'sy_lb_counters', size: 16, fields: { translations: [0, 8], no_backend: [8, 8] } };
export const LB_REVNAT_KEY: Layout = {
  name: 'sy_lb_revnat_key',
  size: 32,
  fields: { socket_cookie: [0, 8], backend: [8, 16], backend_port: [24, 2], _pad: [26, 2], _pad2: [28, 4] },
};
export const LB_AFFINITY: Layout = {
  name: 'sy_lb_affinity',
  size: 32,
  fields: { addr: [0, 16], port: [16, 2], _pad: [18, 2], slot: [20, 4], last_used_ns: [24, 8] },
};

export const MONITOR_CONFIG: Layout = { name: 'sy_monitor_config', size: 8, fields: { enabled: [0, 4], events_per_sec: [4, 4] } };
export const MONITOR_BUDGET: Layout = { name: 'sy_monitor_budget', size: 24, fields: { window_start_ns: [0, 8], used: [8, 8], lost: [16, 8] } };
export const MONITOR_EVENT: Layout = {
  name: 'sy_monitor_event',
  size: 96,
  fields: {
    ts_ns: [0, 8],
    netns_cookie: [8, 8],
    pod_netns_cookie: [16, 8],
    src: [24, 16],
    dst: [40, 16],
    orig: [56, 16],
    src_port: [72, 2],
    dst_port: [74, 2],
    orig_port: [76, 2],
    hook: [78, 1],
    flags: [79, 1],
    reason: [80, 4],
    pid: [84, 4],
    uid: [88, 4],
    _pad: [92, 4],
  },
};

export const LAYOUTS = [
  POD_CONFIG,
  POD_REF,
  TUPLE,
  ORIGDST,
  SOCK_KEY,
  CIDR,
  POD_COUNTERS,
  LB_FRONTEND_KEY,
  LB_FRONTEND,
  LB_BACKEND_KEY,
  LB_BACKEND,
  LB_COUNTERS,
  LB_REVNAT_KEY,
  LB_AFFINITY,
  MONITOR_CONFIG,
  MONITOR_BUDGET,
  MONITOR_EVENT,
];

export const IPPROTO = { TCP: 6, UDP: 17 } as const;
export type LbProtocol = keyof typeof IPPROTO;
export const LB_FLAG_AFFINITY = 1;

export interface LbFrontend {
  ip: string;
  port: number;
  protocol: LbProtocol;
}

export interface LbFrontendValue {
  serviceId: number;
  backendCount: number;
  affinityTimeoutSeconds: number; // 0: no session affinity
}

export interface LbBackend {
  ip: string;
  port: number;
  /** The endpoint runs on this node (node frontends send to it without leaving the node). */
  local?: boolean;
}
export const LB_BACKEND_FLAG_LOCAL = 1;

export function encodeLbFrontendKey(f: LbFrontend): Buffer {
  const b = Buffer.alloc(LB_FRONTEND_KEY.size);
  encodeAddr(f.ip).copy(b, 0);
  b.writeUInt16LE(f.port, 16); // host order, as the programs compare it
  b.writeUInt8(IPPROTO[f.protocol], 18);
  return b;
}

export function decodeLbFrontendKey(b: Buffer): LbFrontend {
  const proto = b.readUInt8(18);
  return { ip: decodeAddr(b.subarray(0, 16)), port: b.readUInt16LE(16), protocol: proto === IPPROTO.UDP ? 'UDP' : 'TCP' };
}

export function encodeLbFrontend(v: LbFrontendValue): Buffer {
  const b = Buffer.alloc(LB_FRONTEND.size);
  b.writeUInt32LE(v.serviceId, 0);
  b.writeUInt16LE(v.backendCount, 4);
  b.writeUInt8(v.affinityTimeoutSeconds > 0 ? LB_FLAG_AFFINITY : 0, 6);
  b.writeUInt32LE(v.affinityTimeoutSeconds, 8);
  return b;
}

export function decodeLbFrontend(b: Buffer): LbFrontendValue {
  const affinity = (b.readUInt8(6) & LB_FLAG_AFFINITY) !== 0;
  return { serviceId: b.readUInt32LE(0), backendCount: b.readUInt16LE(4), affinityTimeoutSeconds: affinity ? b.readUInt32LE(8) : 0 };
}

/** Key of sy_lb_counters: the service id. */
export function encodeServiceId(serviceId: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(serviceId);
  return b;
}

export function encodeLbBackendKey(serviceId: number, slot: number): Buffer {
  const b = Buffer.alloc(LB_BACKEND_KEY.size);
  b.writeUInt32LE(serviceId, 0);
  b.writeUInt32LE(slot, 4);
  return b;
}

export function encodeLbBackend(be: LbBackend): Buffer {
  const b = Buffer.alloc(LB_BACKEND.size);
  encodeAddr(be.ip).copy(b, 0);
  b.writeUInt16LE(be.port, 16);
  b.writeUInt16LE(be.local ? LB_BACKEND_FLAG_LOCAL : 0, 18);
  return b;
}

export function decodeLbBackend(b: Buffer): LbBackend {
  const local = (b.readUInt16LE(18) & LB_BACKEND_FLAG_LOCAL) !== 0;
  return { ip: decodeAddr(b.subarray(0, 16)), port: b.readUInt16LE(16), ...(local ? { local } : {}) };
}

/** Sums a per-CPU sy_lb_counters value. */
export function decodeLbCounters(b: Buffer): { translations: bigint; noBackend: bigint } {
  let translations = 0n;
  let noBackend = 0n;
  for (let off = 0; off + LB_COUNTERS.size <= b.length; off += LB_COUNTERS.size) {
    translations += b.readBigUInt64LE(off);
    noBackend += b.readBigUInt64LE(off + 8);
  }
  return { translations, noBackend };
}

export type PodCounters = Record<'redirected_outbound' | 'redirected_inbound' | 'excluded' | 'sidecar_passed' | 'tc_inbound_new' | 'dropped', bigint>;

/** Sums a per-CPU sy_pod_counters value. */
export function decodePodCounters(b: Buffer): PodCounters {
  const out = Object.fromEntries(Object.keys(POD_COUNTERS.fields).map((k) => [k, 0n])) as PodCounters;
  for (let cpu = 0; cpu + POD_COUNTERS.size <= b.length; cpu += POD_COUNTERS.size) {
    for (const [k, [o]] of Object.entries(POD_COUNTERS.fields)) out[k as keyof PodCounters] += b.readBigUInt64LE(cpu + o);
  }
  return out;
}

/** enum sy_counter, in order. Append only, like the C enum. */
export const COUNTERS = [
  'SY_C_CONNECT_NOT_MESH',
  'SY_C_CONNECT_FOREIGN_CGROUP',
  'SY_C_CONNECT_EXCLUDED',
  'SY_C_CONNECT_REDIRECTED_OUTBOUND',
  'SY_C_CONNECT_REDIRECTED_INBOUND',
  'SY_C_CONNECT_SIDECAR_PASSED',
  'SY_C_CONNECT_REFUSED_MAP_FULL',
  'SY_C_SOCKOPS_ORIGDST_MOVED',
  'SY_C_SOCKOPS_ORIGDST_MAP_FULL',
  'SY_C_SOCKOPS_ORIGDST_CLEANED',
  'SY_C_SOCKMAP_INSERTED',
  'SY_C_SOCKMAP_FULL',
  'SY_C_SKMSG_REDIRECTED',
  'SY_C_SKMSG_PASSED',
  'SY_C_GETSOCKOPT_ANSWERED',
  'SY_C_GETSOCKOPT_MISS',
  'SY_C_TC_INBOUND_NEW',
  'SY_C_TC_INBOUND_PACKETS',
  'SY_C_TC_OUTBOUND_PACKETS',
  'SY_C_TC_EXCLUDED',
  'SY_C_TC_DROPPED_MAP_FULL',
  'SY_C_TC_DROPPED_COLLISION',
  'SY_C_LB_TRANSLATED',
  'SY_C_LB_NO_BACKEND',
  'SY_C_LB_MESH_DEFERRED',
  'SY_C_LB_REVERSED',
  'SY_C_SOCKMAP_SKIPPED',
  'SY_C_SKMSG_PASSED_BACKPRESSURE',
  'SY_C_NP_LOCAL',
  'SY_C_NP_SNAT',
  'SY_C_NP_DSR',
  'SY_C_NP_NO_BACKEND',
  'SY_C_NP_SNAT_PORTS_EXHAUSTED',
  'SY_C_NP_SNAT_REPLIES',
  'SY_C_NP_DSR_RECORDED',
  'SY_C_NP_REPLIES_REWRITTEN',
  'SY_C_NP_ICMP_TOO_BIG',
  'SY_C_NP_STACK_FORWARDED',
  'SY_C_NP_SNAT_TIME_WAIT_REUSED',
] as const;
export type CounterName = (typeof COUNTERS)[number];

/** 'SY_C_CONNECT_REDIRECTED_OUTBOUND' -> 'connect_redirected_outbound' (metric and CLI name). */
export function counterKey(name: CounterName): string {
  return name.slice('SY_C_'.length).toLowerCase();
}

export enum Origin {
  ConnectOutbound = 1,
  ConnectInbound = 2,
  TcInbound = 3,
}

/** What the BPF programs need to know about one mesh pod. */
export interface PodConfig {
  ips: string[];
  cgroupId: bigint;
  cgroupLevel: number;
  sidecarUid: number;
  outboundPort: number;
  inboundPort: number;
  excludeOutboundPorts: number[];
  excludeInboundPorts: number[];
  excludeOutboundCidrs: Cidr[];
  /** false keeps the pod's sockets out of the sockhash (SY_POD_F_NO_SOCKMAP); absent means true. */
  sockmap?: boolean;
}

/** enum sy_pod_flags */
export const POD_FLAG_NO_SOCKMAP = 1;

const off = (l: Layout, f: string) => l.fields[f][0];

// Numbers are written in host byte order: the programs read them as native integers.
export function encodePodConfig(p: PodConfig): Buffer {
  const L = POD_CONFIG;
  const b = Buffer.alloc(L.size);
  p.ips.slice(0, MAX_POD_IPS).forEach((ip, i) => encodeAddr(ip).copy(b, off(L, 'ips') + i * ADDR_BYTES));
  b.writeBigUInt64LE(p.cgroupId, off(L, 'cgroup_id'));
  b.writeUInt32LE(p.cgroupLevel, off(L, 'cgroup_level'));
  b.writeUInt32LE(p.sidecarUid, off(L, 'sidecar_uid'));
  b.writeUInt16LE(p.outboundPort, off(L, 'outbound_port'));
  b.writeUInt16LE(p.inboundPort, off(L, 'inbound_port'));
  b.writeUInt8(p.excludeOutboundPorts.length, off(L, 'excluded_outbound_port_count'));
  b.writeUInt8(p.excludeInboundPorts.length, off(L, 'excluded_inbound_port_count'));
  b.writeUInt8(p.excludeOutboundCidrs.length, off(L, 'excluded_outbound_cidr_count'));
  b.writeUInt8(p.sockmap === false ? POD_FLAG_NO_SOCKMAP : 0, off(L, 'flags'));
  p.excludeOutboundPorts.forEach((port, i) => b.writeUInt16LE(port, off(L, 'excluded_outbound_ports') + i * 2));
  p.excludeInboundPorts.forEach((port, i) => b.writeUInt16LE(port, off(L, 'excluded_inbound_ports') + i * 2));
  p.excludeOutboundCidrs.forEach((c, i) => {
    const at = off(L, 'excluded_outbound_cidrs') + i * CIDR.size;
    c.addr.copy(b, at + off(CIDR, 'addr'));
    c.mask.copy(b, at + off(CIDR, 'mask'));
  });
  return b;
}

export function decodePodConfig(b: Buffer): PodConfig {
  const L = POD_CONFIG;
  const ips: string[] = [];
  for (let i = 0; i < MAX_POD_IPS; i++) {
    const a = b.subarray(off(L, 'ips') + i * ADDR_BYTES, off(L, 'ips') + (i + 1) * ADDR_BYTES);
    if (a.some((x) => x !== 0)) ips.push(decodeAddr(Buffer.from(a)));
  }
  const ports = (field: string, count: number) =>
    Array.from({ length: count }, (_, i) => b.readUInt16LE(off(L, field) + i * 2));
  const cidrCount = b.readUInt8(off(L, 'excluded_outbound_cidr_count'));
  const cidrs: Cidr[] = Array.from({ length: cidrCount }, (_, i) => {
    const at = off(L, 'excluded_outbound_cidrs') + i * CIDR.size;
    const addr = Buffer.from(b.subarray(at, at + ADDR_BYTES));
    const mask = Buffer.from(b.subarray(at + ADDR_BYTES, at + 2 * ADDR_BYTES));
    return { text: cidrText(addr, mask), addr, mask };
  });
  return {
    ips,
    cgroupId: b.readBigUInt64LE(off(L, 'cgroup_id')),
    cgroupLevel: b.readUInt32LE(off(L, 'cgroup_level')),
    sidecarUid: b.readUInt32LE(off(L, 'sidecar_uid')),
    outboundPort: b.readUInt16LE(off(L, 'outbound_port')),
    inboundPort: b.readUInt16LE(off(L, 'inbound_port')),
    excludeOutboundPorts: ports('excluded_outbound_ports', b.readUInt8(off(L, 'excluded_outbound_port_count'))),
    excludeInboundPorts: ports('excluded_inbound_ports', b.readUInt8(off(L, 'excluded_inbound_port_count'))),
    excludeOutboundCidrs: cidrs,
    sockmap: (b.readUInt8(off(L, 'flags')) & POD_FLAG_NO_SOCKMAP) === 0,
  };
}

function cidrText(addr: Buffer, mask: Buffer): string {
  let bits = 0;
  for (const byte of mask) for (let i = 7; i >= 0; i--) bits += (byte >> i) & 1;
  const text = decodeAddr(addr);
  return text.includes('.') ? `${text}/${bits - 96}` : `${text}/${bits}`;
}

export function encodeNetnsKey(cookie: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(cookie);
  return b;
}

export function encodePodRef(cookie: bigint): Buffer {
  return encodeNetnsKey(cookie);
}

export function decodePodRef(b: Buffer): bigint {
  return b.readBigUInt64LE(0);
}

export interface Tuple {
  netnsCookie: bigint;
  clientIp: string;
  clientPort: number;
  serverIp: string;
  serverPort: number;
}

export function decodeTuple(b: Buffer): Tuple {
  return {
    netnsCookie: b.readBigUInt64LE(off(TUPLE, 'netns_cookie')),
    clientIp: decodeAddr(Buffer.from(b.subarray(8, 24))),
    serverIp: decodeAddr(Buffer.from(b.subarray(24, 40))),
    clientPort: b.readUInt16LE(off(TUPLE, 'client_port')),
    serverPort: b.readUInt16LE(off(TUPLE, 'server_port')),
  };
}

export interface OrigDst {
  address: string;
  port: number;
  origin: Origin;
  podNetnsCookie: bigint;
}

export function decodeOrigDst(b: Buffer): OrigDst {
  return {
    address: decodeAddr(Buffer.from(b.subarray(0, 16))),
    port: b.readUInt16LE(off(ORIGDST, 'port')),
    origin: b.readUInt8(off(ORIGDST, 'origin')) as Origin,
    podNetnsCookie: b.readBigUInt64LE(off(ORIGDST, 'pod_netns_cookie')),
  };
}

/** Sums a per-CPU u64 array value (8 bytes per possible CPU). */
export function sumPerCpu(b: Buffer): bigint {
  let total = 0n;
  for (let i = 0; i + 8 <= b.length; i += 8) total += b.readBigUInt64LE(i);
  return total;
}
