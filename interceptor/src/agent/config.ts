/** The agent's configuration (a file, usually mounted from a ConfigMap), validated in one pass. */
import { DEFAULT_AGENT_SOCKET } from '../../../api/agent-wire';
import * as fs from 'fs';
import { parse } from 'yaml';
import { ConfigError } from '../../../api/interception';
import { MapSizes, validateMapSizes } from '../dataplane/config';
import { DEFAULT_PIN_ROOT } from '../dataplane/dataplane';
import { DEFAULT_SNAT_CLOSED_GRACE_S, DEFAULT_SNAT_TIME_WAIT_S, NODEPORT_MODES, NodePortMode } from '../dataplane/abi-nodeport';
import { isIP } from 'net';

export type FailurePolicy = 'fail-closed' | 'fail-open';

export interface AgentConfig {
  /** This node's name (downward API: spec.nodeName). */
  nodeName: string;
  /** cgroup2 directory the socket programs attach to: the parent of all pod cgroups (kubepods). */
  cgroupPath: string;
  /** Where pod cgroups live (searched by pod UID); defaults to cgroupPath. */
  podCgroupRoot?: string;
  pinRoot: string;
  /** Root-only unix socket for the CNI plugin and the CLI. */
  socketPath: string;
  /** Plain-HTTP port for /healthz, /readyz and /metrics. */
  metricsPort: number;
  metricsHost: string;
  /** What ADD does when a mesh pod cannot be registered. */
  failurePolicy: FailurePolicy;
  /** How long ADD waits for a pod to appear in the API cache. */
  podWaitMs: number;
  /** Directory for the registration records that survive agent restarts. */
  stateDir: string;
  kubeconfig?: string;
  mapSizes: MapSizes;
  /** Attaching at the cgroup2 root must be asked for explicitly. */
  allowRootCgroup: boolean;
  /** Splice pod↔sidecar sockets through the sockmap (takes effect when the programs are loaded). */
  sockmapAcceleration: boolean;
  /** Connect-time ClusterIP load balancing from Services and EndpointSlices. */
  serviceLoadBalancing: boolean;
  /** The node's CNI configuration directory as the agent sees it (read-only), for `switchyard check`. */
  cniConfDir: string;
  /**
   * Node frontends: NodePort, externalIPs and LoadBalancer IPs served by tc
   * on these devices (bpf/sy_nodeport.c). Absent: off, as on nodes where
   * kube-proxy still serves NodePorts.
   */
  nodePort?: NodePortSettings;
}

export interface NodePortSettings {
  mode: NodePortMode;
  /** The node's devices that outside traffic arrives on (e.g. eth0). */
  devices: string[];
  /** Addresses NodePorts listen on; default: the devices' IPv4 addresses. The first is the snat source. */
  addresses?: string[];
  /** snat source ports, outside the node's ephemeral range (net.ipv4.ip_local_port_range). */
  snatPortMin: number;
  snatPortMax: number;
  /** Seconds a snat port rests after its TCP flow closed with FINs (the backend may hold TIME_WAIT). */
  snatClosedGraceSeconds: number;
  /** Seconds a snat port rests after its backend closed first: the backend's TIME_WAIT. */
  snatTimeWaitSeconds: number;
}

export const AGENT_DEFAULTS: Omit<AgentConfig, 'nodeName' | 'cgroupPath'> = {
  pinRoot: DEFAULT_PIN_ROOT,
  socketPath: DEFAULT_AGENT_SOCKET,
  metricsPort: 15090,
  metricsHost: '0.0.0.0',
  failurePolicy: 'fail-closed',
  podWaitMs: 5000,
  stateDir: '/run/switchyard/state',
  mapSizes: validateMapSizes({}),
  allowRootCgroup: false,
  sockmapAcceleration: true,
  serviceLoadBalancing: true,
  cniConfDir: '/host/etc/cni/net.d',
};

export function validateAgentConfig(raw: unknown): AgentConfig {
  const problems: string[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError('agent configuration', ['it must be a mapping of settings']);
  const r = raw as Record<string, unknown>;
  const known = new Set([...Object.keys(AGENT_DEFAULTS), 'nodeName', 'cgroupPath', 'podCgroupRoot', 'kubeconfig', 'nodePort']);
  for (const k of Object.keys(r)) if (!known.has(k)) problems.push(`unknown setting '${k}'`);
  const str = (k: string, required: boolean) => {
    const v = r[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v === '') problems.push(`${k} must be a non-empty string${k === 'nodeName' ? ' (set NODE_NAME from the downward API)' : ''}`);
    return v as string;
  };
  const cfg: AgentConfig = {
    ...AGENT_DEFAULTS,
    nodeName: str('nodeName', true)!,
    cgroupPath: str('cgroupPath', true)!,
    podCgroupRoot: str('podCgroupRoot', false),
    pinRoot: str('pinRoot', false) ?? AGENT_DEFAULTS.pinRoot,
    socketPath: str('socketPath', false) ?? AGENT_DEFAULTS.socketPath,
    stateDir: str('stateDir', false) ?? AGENT_DEFAULTS.stateDir,
    kubeconfig: str('kubeconfig', false),
    metricsHost: str('metricsHost', false) ?? AGENT_DEFAULTS.metricsHost,
    cniConfDir: str('cniConfDir', false) ?? AGENT_DEFAULTS.cniConfDir,
  };
  if (r.metricsPort !== undefined) {
    if (!Number.isInteger(r.metricsPort) || (r.metricsPort as number) < 0 || (r.metricsPort as number) > 65535) problems.push('metricsPort must be a port from 0 to 65535');
    else cfg.metricsPort = r.metricsPort as number;
  }
  if (r.failurePolicy !== undefined) {
    if (r.failurePolicy !== 'fail-closed' && r.failurePolicy !== 'fail-open') problems.push(`failurePolicy must be "fail-closed" or "fail-open", got ${JSON.stringify(r.failurePolicy)}`);
    else cfg.failurePolicy = r.failurePolicy;
  }
  if (r.podWaitMs !== undefined) {
    if (!Number.isInteger(r.podWaitMs) || (r.podWaitMs as number) < 0 || (r.podWaitMs as number) > 60000) problems.push('podWaitMs must be an integer from 0 to 60000');
    else cfg.podWaitMs = r.podWaitMs as number;
  }
  for (const k of ['allowRootCgroup', 'sockmapAcceleration', 'serviceLoadBalancing'] as const) {
    if (r[k] === undefined) continue;
    if (typeof r[k] !== 'boolean') problems.push(`${k} must be true or false, got ${JSON.stringify(r[k])}`);
    else cfg[k] = r[k] as boolean;
  }
  if (r.mapSizes !== undefined) {
    try {
      cfg.mapSizes = validateMapSizes(r.mapSizes as Partial<MapSizes>);
    } catch (e) {
      if (e instanceof ConfigError) problems.push(...e.problems);
      else throw e;
    }
  }
  if (r.nodePort !== undefined) cfg.nodePort = validateNodePort(r.nodePort, problems);
  if (cfg.nodePort && !cfg.serviceLoadBalancing) problems.push('nodePort needs serviceLoadBalancing: true (node frontends come from the same Service controller)');
  if (problems.length) throw new ConfigError('agent configuration', problems);
  return cfg;
}

function validateNodePort(raw: unknown, problems: string[]): NodePortSettings | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push('nodePort must be a mapping: {mode, devices, addresses?, snatPorts?, snatClosedGraceSeconds?, snatTimeWaitSeconds?}');
    return undefined;
  }
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!['mode', 'devices', 'addresses', 'snatPorts', 'snatClosedGraceSeconds', 'snatTimeWaitSeconds'].includes(k)) problems.push(`unknown setting 'nodePort.${k}'`);
  const mode = r.mode as NodePortMode;
  if (!NODEPORT_MODES.includes(mode)) problems.push(`nodePort.mode must be one of ${NODEPORT_MODES.join(', ')}, got ${JSON.stringify(r.mode)}`);
  const devices = r.devices as string[];
  if (!Array.isArray(devices) || !devices.length || devices.some((d) => typeof d !== 'string' || !/^[\w.:@-]{1,15}$/.test(d))) problems.push(`nodePort.devices must list the node's interface names (e.g. [eth0]), got ${JSON.stringify(r.devices)}`);
  const addresses = r.addresses as string[] | undefined;
  if (addresses !== undefined && (!Array.isArray(addresses) || !addresses.length || addresses.some((a) => isIP(a) !== 4))) problems.push(`nodePort.addresses must list IPv4 addresses (node frontends are IPv4 only), got ${JSON.stringify(r.addresses)}`);
  const ports = /^(\d+)-(\d+)$/.exec(String(r.snatPorts ?? '61000-65535'));
  const [min, max] = ports ? [Number(ports[1]), Number(ports[2])] : [0, 0];
  if (!ports || min < 1024 || max > 65535 || min > max) problems.push(`nodePort.snatPorts must be a range like "61000-65535" above 1023, got ${JSON.stringify(r.snatPorts)}`);
  const grace = r.snatClosedGraceSeconds ?? DEFAULT_SNAT_CLOSED_GRACE_S;
  if (!Number.isInteger(grace) || (grace as number) < 0 || (grace as number) > 3600) problems.push(`nodePort.snatClosedGraceSeconds must be whole seconds from 0 to 3600, got ${JSON.stringify(r.snatClosedGraceSeconds)}`);
  const tw = r.snatTimeWaitSeconds ?? DEFAULT_SNAT_TIME_WAIT_S;
  if (!Number.isInteger(tw) || (tw as number) < 0 || (tw as number) > 600) problems.push(`nodePort.snatTimeWaitSeconds must be whole seconds from 0 to 600 (the backends' TIME_WAIT), got ${JSON.stringify(r.snatTimeWaitSeconds)}`);
  return { mode, devices, ...(addresses ? { addresses } : {}), snatPortMin: min, snatPortMax: max, snatClosedGraceSeconds: grace as number, snatTimeWaitSeconds: tw as number };
}

/** Reads YAML or JSON; environment variables NODE_NAME and KUBECONFIG fill the gaps. */
export function loadAgentConfig(file: string): AgentConfig {
  let raw: unknown;
  try {
    raw = parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError('agent configuration', [`cannot read ${file}: ${(e as Error).message}`]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return validateAgentConfig(raw);
  const r = { ...(raw as Record<string, unknown>) };
  if (r.nodeName === undefined && process.env.NODE_NAME) r.nodeName = process.env.NODE_NAME;
  if (r.kubeconfig === undefined && process.env.KUBECONFIG) r.kubeconfig = process.env.KUBECONFIG;
  return validateAgentConfig(r);
}

/**
 * How node runs the agent (DaemonSet command, lab, tests). --optimize-for-size
 * keeps V8's heap compact: the agent's RSS at 1000 pods is about 75 MB with
 * it and about 105 MB without, at no measurable cost to registration latency.
 */
export const AGENT_NODE_FLAGS = ['--optimize-for-size'];
