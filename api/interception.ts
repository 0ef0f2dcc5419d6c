/**
 * The interception settings every component agrees on: the one type the
 * webhook writes as annotations and the agent writes into sy_pods, its
 * defaults, the limits the BPF ABI sets, and its validation. Pure: no I/O.
 * All problems are collected and reported together in one error.
 */
import { isIP } from 'net';
import { Cidr, parseCidr } from './addr';

/** Limits of struct sy_pod_config (bpf/headers/switchyard.h); test/abi.test.ts checks them against BTF. */
export const MAX_POD_IPS = 2;
export const MAX_EXCLUDED_PORTS = 16;
export const MAX_EXCLUDED_CIDRS = 8;

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
