/**
 * Validation of everything that reaches the BPF maps. Pure: no I/O. All
 * problems are collected and reported together in one error, before anything
 * is loaded or written.
 */
import { Cidr, parseCidr } from './addr';
import { MAX_EXCLUDED_CIDRS, MAX_EXCLUDED_PORTS, MAX_POD_IPS } from './abi';
import { isIP } from 'net';

export const DEFAULT_OUTBOUND_PORT = 15001;
export const DEFAULT_INBOUND_PORT = 15003;
export const DEFAULT_SIDECAR_UID = 1337;

/** A pod's interception settings, as the webhook's annotations carry them. */
export interface Interception {
  outboundPort: number;
  inboundPort: number;
  sidecarUid: number;
  excludeOutboundPorts: number[];
  excludeInboundPorts: number[];
  excludeOutboundCidrs: string[];
  /**
   * false keeps the pod's app <-> sidecar sockets off the sockmap (loopback
   * TCP instead), for proxies or apps that read with splice(2). Absent: true.
   */
  sockmap?: boolean;
}

export const DEFAULT_INTERCEPTION: Interception = {
  outboundPort: DEFAULT_OUTBOUND_PORT,
  inboundPort: DEFAULT_INBOUND_PORT,
  sidecarUid: DEFAULT_SIDECAR_UID,
  excludeOutboundPorts: [],
  excludeInboundPorts: [],
  excludeOutboundCidrs: [],
};

export class ConfigError extends Error {
  constructor(
    readonly subject: string,
    readonly problems: string[],
  ) {
    super(`invalid ${subject}: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

function checkPort(problems: string[], what: string, v: unknown): void {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) {
    problems.push(`${what} must be an integer from 1 to 65535, got ${JSON.stringify(v)}`);
  }
}

function checkPortList(problems: string[], what: string, v: unknown): void {
  if (!Array.isArray(v)) {
    problems.push(`${what} must be a list of ports`);
    return;
  }
  if (v.length > MAX_EXCLUDED_PORTS) problems.push(`${what} has ${v.length} ports; at most ${MAX_EXCLUDED_PORTS} are supported`);
  v.forEach((p, i) => checkPort(problems, `${what}[${i}]`, p));
}

/** Validated interception settings plus their parsed CIDRs. */
export interface ValidInterception extends Interception {
  cidrs: Cidr[];
}

export function validateInterception(x: Interception): ValidInterception {
  const problems: string[] = [];
  checkPort(problems, 'outbound port', x.outboundPort);
  checkPort(problems, 'inbound port', x.inboundPort);
  if (x.outboundPort === x.inboundPort) problems.push(`outbound and inbound port are both ${x.inboundPort}; they must differ`);
  if (!Number.isInteger(x.sidecarUid) || x.sidecarUid < 1 || x.sidecarUid > 0xfffffffe) {
    problems.push(
      `sidecar uid must be an integer from 1 to 4294967294, got ${JSON.stringify(x.sidecarUid)}` +
        (x.sidecarUid === 0 ? ' (uid 0 would exempt every root process in the pod from interception)' : ''),
    );
  }
  checkPortList(problems, 'excluded outbound ports', x.excludeOutboundPorts);
  checkPortList(problems, 'excluded inbound ports', x.excludeInboundPorts);
  const cidrs: Cidr[] = [];
  if (!Array.isArray(x.excludeOutboundCidrs)) {
    problems.push('excluded outbound CIDRs must be a list');
  } else {
    if (x.excludeOutboundCidrs.length > MAX_EXCLUDED_CIDRS) {
      problems.push(`excluded outbound CIDRs has ${x.excludeOutboundCidrs.length} entries; at most ${MAX_EXCLUDED_CIDRS} are supported`);
    }
    for (const c of x.excludeOutboundCidrs) {
      try {
        cidrs.push(parseCidr(String(c)));
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
  }
  if (problems.length) throw new ConfigError('interception settings', problems);
  return { ...x, cidrs };
}

export function validatePodIps(ips: string[]): void {
  const problems: string[] = [];
  if (ips.length === 0) problems.push('a pod needs at least one IP');
  if (ips.length > MAX_POD_IPS) problems.push(`a pod has at most ${MAX_POD_IPS} IPs (one per family), got ${ips.length}`);
  for (const ip of ips) if (!isIP(ip)) problems.push(`'${ip}' is not an IP address`);
  if (problems.length) throw new ConfigError('pod IPs', problems);
}

/** Map sizes the agent may set; names are the C map names. */
export interface MapSizes {
  sy_pods: number;
  sy_pod_counters: number;
  sy_pod_by_ip: number;
  /** Only with the socket-cookie hand-off (older kernels; bpf/headers/handoff.h). */
  sy_origdst_by_cookie: number;
  sy_origdst: number;
  /** tc-origin entries of half-open and just-closed inbound connections (LRU: a SYN flood evicts here). */
  sy_origdst_transient: number;
  sy_sock_hash: number;
  /** Addresses of the sockhash's sockets, for sk_msg backpressure: size it like sy_sock_hash. */
  sy_sock_addr: number;
  sy_lb_frontends: number;
  sy_lb_backends: number;
  sy_lb_affinity: number;
  sy_lb_revnat: number;
  sy_lb_counters: number;
}

export const DEFAULT_MAP_SIZES: MapSizes = {
  sy_pods: 4096,
  sy_pod_counters: 4096,
  sy_pod_by_ip: 8192,
  sy_origdst_by_cookie: 65536,
  sy_origdst: 65536,
  sy_origdst_transient: 16384,
  sy_sock_hash: 65536,
  sy_sock_addr: 65536,
  sy_lb_frontends: 16384,
  sy_lb_backends: 131072,
  sy_lb_affinity: 65536,
  sy_lb_revnat: 131072,
  sy_lb_counters: 16384,
};

export function validateMapSizes(sizes: Partial<MapSizes>): MapSizes {
  if (typeof sizes !== 'object' || sizes === null || Array.isArray(sizes)) {
    throw new ConfigError('map sizes', [`mapSizes must be a mapping of map names to entry counts, got ${JSON.stringify(sizes)}`]);
  }
  const problems: string[] = [];
  const out = { ...DEFAULT_MAP_SIZES };
  for (const [name, value] of Object.entries(sizes)) {
    if (!(name in DEFAULT_MAP_SIZES)) {
      problems.push(`unknown map '${name}' (known: ${Object.keys(DEFAULT_MAP_SIZES).join(', ')})`);
      continue;
    }
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 1 << 24) {
      problems.push(`size of ${name} must be an integer from 1 to ${1 << 24}, got ${JSON.stringify(value)}`);
      continue;
    }
    out[name as keyof MapSizes] = value as number;
  }
  // Every pod has a counters entry: the counters map is never smaller than the pod map.
  if (sizes.sy_pod_counters === undefined) out.sy_pod_counters = out.sy_pods;
  if (problems.length) throw new ConfigError('map sizes', problems);
  return out;
}
