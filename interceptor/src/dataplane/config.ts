/**
 * Validation of the dataplane's own settings (map sizes). Pure: no I/O. All
 * problems are collected and reported together in one error, before
 * anything is loaded.
 */
import { ConfigError } from '../../../api/interception';

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
  /** NodePort, external and LoadBalancer frontends at the node (sy_nodeport.c). */
  sy_lb_external: number;
  /** Flows through them (LRU), and what their replies need. */
  sy_np_flows: number;
  sy_np_snat: number;
  sy_np_revnat: number;
  sy_np_affinity: number;
  sy_np_counters: number;
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
  sy_lb_external: 16384,
  sy_np_flows: 65536,
  sy_np_snat: 65536,
  sy_np_revnat: 65536,
  sy_np_affinity: 65536,
  sy_np_counters: 16384,
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
