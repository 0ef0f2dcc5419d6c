import { parseCidr } from '../../../api/addr';
import { DEFAULT_INTERCEPTION } from '../../../api/interception';
import { PodConfig } from '../dataplane/abi';
import { EXPLAIN_CASES, ExplainWorld } from '../../../test/helpers/explain-cases';
import { ExplainEnv, explain } from './explain';

const w: ExplainWorld = { pod: '10.1.0.2', peer: '10.1.0.3', plain: '10.1.0.4', excludedCidr: '10.1.255.7', svc: '10.96.0.10', svcToPeer: '10.96.0.11', svcExcluded: '10.96.0.12', svcEmpty: '10.96.0.13' };
const config = (ip: string, over: Partial<PodConfig> = {}): PodConfig => ({
  ips: [ip],
  cgroupId: 1n,
  cgroupLevel: 2,
  sidecarUid: DEFAULT_INTERCEPTION.sidecarUid,
  outboundPort: DEFAULT_INTERCEPTION.outboundPort,
  inboundPort: DEFAULT_INTERCEPTION.inboundPort,
  excludeOutboundPorts: [],
  excludeInboundPorts: [],
  excludeOutboundCidrs: [],
  ...over,
});
const pod = config(w.pod, { excludeOutboundPorts: [7070], excludeOutboundCidrs: [parseCidr('10.1.255.0/24')] });
const frontends: Record<string, { service: string; backends: { ip: string; port: number }[] }> = {
  [`${w.svc}:80`]: { service: 'apps/web', backends: [{ ip: w.plain, port: 8080 }] },
  [`${w.svcToPeer}:80`]: { service: 'apps/peer', backends: [{ ip: w.peer, port: 8080 }] },
  [`${w.svcExcluded}:7070`]: { service: 'apps/excluded', backends: [{ ip: w.plain, port: 8080 }] },
  [`${w.svcEmpty}:80`]: { service: 'apps/empty', backends: [] },
};
const env: ExplainEnv = {
  localPodByIp: (ip) => (ip === w.peer ? { name: 'apps/peer', config: config(w.peer) } : ip === w.pod ? { name: 'apps/me', config: pod } : undefined),
  frontend: (ip, port) => frontends[`${ip}:${port}`] ?? null,
};
const uid = { app: 1000, sidecar: DEFAULT_INTERCEPTION.sidecarUid, foreign: 1000 };

describe('explain: the connect decision, one table with the kernel parity test', () => {
  test.each(EXPLAIN_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const e = explain({ pod, uid: uid[c.from], foreignCgroup: c.from === 'foreign' }, c.dst(w), env);
    expect({ verdict: e.verdict, counters: e.counters }).toEqual({ verdict: c.verdict, counters: c.counters });
    expect(e.reasons.length).toBeGreaterThan(0);
  });

  test('a Service with several backends names them all and says which one the answer follows', () => {
    const many: ExplainEnv = { ...env, frontend: () => ({ service: 'apps/many', backends: [{ ip: w.plain, port: 8080 }, { ip: w.peer, port: 8080 }] }) };
    const e = explain({ pod, uid: uid.sidecar }, { ip: w.svc, port: 80 }, many);
    expect(e.target).toBe(`${w.plain}:8080`);
    expect(e.reasons[0]).toContain(`one of 2 backends (${w.plain}:8080, ${w.peer}:8080; shown for the first)`);
  });

  test('the redirect names the sidecar port and the address the sidecar reads back', () => {
    const e = explain({ pod, uid: uid.app }, { ip: w.svc, port: 80 }, env);
    expect(e.target).toBe(`127.0.0.1:${DEFAULT_INTERCEPTION.outboundPort}`);
    expect(e.reasons.join('\n')).toContain(`${w.svc}:80 is the frontend of apps/web`);
    expect(e.reasons.join('\n')).toContain(`the sidecar reads ${w.svc}:80 back with SO_ORIGINAL_DST`);
  });
});
