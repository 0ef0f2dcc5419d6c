/**
 * `switchyard explain`: what connect() from a pod to a destination would
 * become, and why. A TypeScript model of sy_decide() in bpf/sy_connect.c;
 * test/kernel/agent.test.ts holds it to what the kernel really does.
 */
import { isIP } from 'net';
import { Cidr, encodeAddr } from '../../../api/addr';
import { PodConfig } from '../dataplane/abi';

export interface Explanation {
  verdict: 'redirect-outbound' | 'redirect-inbound' | 'direct';
  /** Where the connection really goes. */
  target: string;
  reasons: string[];
}

const inCidr = (c: Cidr, ip: Buffer) => c.addr.every((b, i) => (ip[i] & c.mask[i]) === b);
const isLoopback = (ip: string) => (isIP(ip) === 4 ? ip.startsWith('127.') : ip === '::1');
const hostPort = (ip: string, port: number) => (isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);

export function explain(
  pod: PodConfig,
  dst: { ip: string; port: number },
  uid: number,
  /** Pod on this node that owns an IP, if any (same-node inbound). */
  localPodByIp: (ip: string) => { name: string; config: PodConfig } | undefined,
): Explanation {
  const at = hostPort(dst.ip, dst.port);
  if (isLoopback(dst.ip)) return { verdict: 'direct', target: at, reasons: [`${dst.ip} is loopback, which is never intercepted`] };
  if (uid === pod.sidecarUid) {
    const peer = localPodByIp(dst.ip);
    if (!peer || pod.ips.includes(dst.ip)) {
      return { verdict: 'direct', target: at, reasons: [`uid ${uid} is the sidecar's, and ${dst.ip} is not another mesh pod on this node: the sidecar's own upstream is left alone`] };
    }
    const c = peer.config;
    if (dst.port === c.inboundPort || dst.port === c.outboundPort || c.excludeInboundPorts.includes(dst.port)) {
      return { verdict: 'direct', target: at, reasons: [`port ${dst.port} is excluded from inbound interception on ${peer.name}`] };
    }
    return {
      verdict: 'redirect-inbound',
      target: hostPort(dst.ip, c.inboundPort),
      reasons: [`uid ${uid} is the sidecar's`, `${dst.ip} is mesh pod ${peer.name} on this node: sent to its inbound port ${c.inboundPort} (same-node inbound)`],
    };
  }
  if (pod.excludeOutboundPorts.includes(dst.port)) return { verdict: 'direct', target: at, reasons: [`port ${dst.port} is in the pod's excluded outbound ports`] };
  const cidr = pod.excludeOutboundCidrs.find((c) => inCidr(c, encodeAddr(dst.ip)));
  if (cidr) return { verdict: 'direct', target: at, reasons: [`${dst.ip} is in the excluded outbound CIDR ${cidr.text}`] };
  const sidecar = isIP(dst.ip) === 6 ? hostPort('::1', pod.outboundPort) : hostPort('127.0.0.1', pod.outboundPort);
  return {
    verdict: 'redirect-outbound',
    target: sidecar,
    reasons: [
      `uid ${uid} is not the sidecar's (${pod.sidecarUid})`,
      `${at} is not loopback, not an excluded port${pod.excludeOutboundPorts.length ? ` (${pod.excludeOutboundPorts.join(',')})` : ''} and not in an excluded CIDR`,
      `sent to the sidecar's outbound port; the sidecar reads ${at} back with SO_ORIGINAL_DST`,
    ],
  };
}
