/**
 * `switchyard explain`: what a TCP connect() from a pod to a destination
 * becomes, and why, with the node counters the kernel moves for it. A model
 * of sy_connect_steer() in bpf/sy_connect.c, in its order: Service load
 * balancing first (a mesh app's connect to a frontend is left for its
 * sidecar to balance; anyone else's is translated to a backend, or refused
 * when there is none), then the caller (a process outside the pod's cgroup
 * is never steered), loopback, the sidecar's same-node inbound rule, and the
 * app's exclusions. test/helpers/explain-cases.ts is one table of cases that
 * the unit test and the kernel parity test (test/kernel/agent.test.ts) both run.
 */
import { isIP } from 'net';
import { Cidr, encodeAddr } from '../../../api/addr';
import { CounterName, PodConfig } from '../dataplane/abi';

export type Verdict = 'redirect-outbound' | 'redirect-inbound' | 'direct' | 'refused';

export interface Explanation {
  verdict: Verdict;
  /** Where the connection really goes. */
  target: string;
  reasons: string[];
  /** The node counters (enum sy_counter) this connect moves, in the order the kernel counts them. */
  counters: CounterName[];
}

export interface Caller {
  pod: PodConfig;
  uid: number;
  /** A process in the pod's netns but not in its cgroup (nsenter, a CNI plugin). */
  foreignCgroup?: boolean;
}

export interface ExplainEnv {
  /** The mesh pod on this node that owns an IP, if any. */
  localPodByIp(ip: string): { name: string; config: PodConfig } | undefined;
  /** The TCP Service frontend at ip:port as the kernel holds it, if any. */
  frontend(ip: string, port: number): { service: string; backends: { ip: string; port: number }[] } | null;
}

const inCidr = (c: Cidr, ip: Buffer) => c.addr.every((b, i) => (ip[i] & c.mask[i]) === b);
/** The kernel keys IPv4 as v4-mapped IPv6: ::ffff:a.b.c.d is a.b.c.d. */
const canonical = (ip: string) => /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
const isLoopback = (ip: string) => (isIP(ip) === 4 ? ip.startsWith('127.') : ip === '::1');
const hostPort = (ip: string, port: number) => (isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);

function outboundExclusion(pod: PodConfig, ip: string, port: number): string | null {
  if (pod.excludeOutboundPorts.includes(port)) return `port ${port} is in the pod's excluded outbound ports`;
  const cidr = pod.excludeOutboundCidrs.find((c) => inCidr(c, encodeAddr(ip)));
  return cidr ? `${ip} is in the excluded outbound CIDR ${cidr.text}` : null;
}

export function explain(caller: Caller, dst: { ip: string; port: number }, env: ExplainEnv): Explanation {
  const { pod, uid } = caller;
  const counters: CounterName[] = [];
  const reasons: string[] = [];
  const done = (verdict: Verdict, target: string, ...why: string[]): Explanation => ({ verdict, target, reasons: [...reasons, ...why], counters });
  const asked = { ip: canonical(dst.ip), port: dst.port };
  const inPod = !caller.foreignCgroup;
  const sidecar = inPod && uid === pod.sidecarUid;

  // 1. Service load balancing.
  let to = asked;
  let translated = false;
  const fe = env.frontend(asked.ip, asked.port);
  if (fe) {
    const at = hostPort(asked.ip, asked.port);
    const exclusion = outboundExclusion(pod, asked.ip, asked.port);
    if (inPod && !sidecar && !exclusion) {
      counters.push('SY_C_LB_MESH_DEFERRED');
      reasons.push(`${at} is the frontend of ${fe.service}: a mesh app's connect goes to its sidecar, which balances it and reads ${at} back with SO_ORIGINAL_DST`);
    } else if (fe.backends.length === 0) {
      counters.push('SY_C_LB_NO_BACKEND');
      return done('refused', at, `${at} is the frontend of ${fe.service}, which has no ready endpoint: connect() fails at once with ECONNREFUSED, as kube-proxy's REJECT rule does`);
    } else {
      counters.push('SY_C_LB_TRANSLATED');
      to = fe.backends[0];
      translated = true;
      const who = !inPod ? 'a process outside the pod' : sidecar ? `the sidecar (uid ${uid})` : `an app whose destination is excluded (${exclusion})`;
      const among = fe.backends.length > 1 ? ` one of ${fe.backends.length} backends (${fe.backends.map((b) => hostPort(b.ip, b.port)).join(', ')}; shown for the first)` : ` its backend ${hostPort(to.ip, to.port)}`;
      reasons.push(`${at} is the frontend of ${fe.service}: ${who} is balanced in the kernel, at connect, to${among}`);
    }
  }
  const at = hostPort(to.ip, to.port);

  // 2. Who is calling, and where to.
  if (!inPod) {
    counters.push('SY_C_CONNECT_FOREIGN_CGROUP');
    return done('direct', at, `the process is not in the pod's cgroup (nsenter, a CNI plugin): only the pod's own processes are intercepted`);
  }
  if (isLoopback(to.ip)) {
    counters.push('SY_C_CONNECT_EXCLUDED');
    return done('direct', at, `${to.ip} is loopback, which is never intercepted`);
  }
  if (sidecar) {
    const peer = env.localPodByIp(to.ip);
    if (!peer || pod.ips.includes(to.ip)) {
      counters.push('SY_C_CONNECT_SIDECAR_PASSED');
      return done('direct', at, `uid ${uid} is the sidecar's, and ${to.ip} is not another mesh pod on this node: the sidecar's own upstream is left alone`);
    }
    const c = peer.config;
    if (to.port === c.inboundPort || to.port === c.outboundPort || c.excludeInboundPorts.includes(to.port)) {
      counters.push('SY_C_CONNECT_SIDECAR_PASSED');
      return done('direct', at, `port ${to.port} is excluded from inbound interception on ${peer.name}`);
    }
    counters.push('SY_C_CONNECT_REDIRECTED_INBOUND');
    return done('redirect-inbound', hostPort(to.ip, c.inboundPort), `uid ${uid} is the sidecar's`, `${to.ip} is mesh pod ${peer.name} on this node: sent to its inbound port ${c.inboundPort} (same-node inbound)`);
  }

  // 3. The app's own connect.
  const exclusion = outboundExclusion(pod, asked.ip, asked.port);
  if (translated || exclusion) {
    counters.push('SY_C_CONNECT_EXCLUDED');
    return done('direct', at, exclusion ?? `the Service address it dialled is excluded, so the backend does not bring the sidecar back in`);
  }
  counters.push('SY_C_CONNECT_REDIRECTED_OUTBOUND');
  const sidecarAt = isIP(asked.ip) === 6 ? hostPort('::1', pod.outboundPort) : hostPort('127.0.0.1', pod.outboundPort);
  const dialled = hostPort(asked.ip, asked.port);
  return done(
    'redirect-outbound',
    sidecarAt,
    `uid ${uid} is not the sidecar's (${pod.sidecarUid})`,
    `${dialled} is not loopback, not an excluded port${pod.excludeOutboundPorts.length ? ` (${pod.excludeOutboundPorts.join(',')})` : ''} and not in an excluded CIDR`,
    `sent to the sidecar's outbound port; the sidecar reads ${dialled} back with SO_ORIGINAL_DST`,
  );
}
