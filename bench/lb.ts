/**
 * Service load-balancing benchmark: short-connection and keep-alive req/s and
 * p99 to a ClusterIP, three ways, interleaved:
 *
 *   direct     client → one backend pod IP (no Service at all)
 *   iptables   client → ClusterIP, kube-proxy-style nat rules (statistic
 *              random → DNAT) inside the client's netns, conntrack per packet
 *   socketlb   client → ClusterIP, translated once at connect() by Switchyard
 *
 * and how fast Services reach the maps: 1000 Services × 10 endpoints through
 * the controller (list → maps), then single updates (event → maps), p50/p99.
 */
import * as path from 'path';
import { Dataplane } from '../interceptor/src/dataplane/dataplane';
import { KubeClient } from '../lib/kube/client';
import { kubeconfigForServer } from '../lib/kube/config';
import { ServiceLoadBalancer } from '../interceptor/src/lb/controller';
import { projectRoot } from '../native';
import { FakeCluster } from '../lab/src/fake-apiserver';
import { NetLab, Pod, sh } from '../lab/src/netlab';
import { Proc } from '../lab/src/proc';
import { parseWrk } from './dataplane';
import { median, percentile } from './stats';

const LEAN = path.join(projectRoot(), 'build', 'bench', 'lean');
const CLUSTER_IP = '10.96.0.20';
export const LB_SCENARIOS = ['direct', 'iptables', 'socketlb'] as const;

export async function benchLb(o: { rounds: number; seconds: number; log?: (s: string) => void }) {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const lab = new NetLab();
  NetLab.cleanupOnSignals();
  const procs: Proc[] = [];
  let dp: Dataplane | undefined;
  try {
    const node = lab.addNode('node', '10.91.0');
    const [cd, ci, cs] = ['cd', 'ci', 'cs'].map((n) => lab.addPod(node, n));
    const bes = ['be1', 'be2', 'be3'].map((n) => lab.addPod(node, n));
    const scope = lab.addCgroupAt('scope-lb', 'pod');
    for (const p of [cd, ci, cs, ...bes]) sh('ip', ['netns', 'exec', p.netns, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1']);
    dp = Dataplane.load({ cgroupPath: path.dirname(scope), pinRoot: lab.pinRoot });
    dp.setService(1, { ip: CLUSTER_IP, port: 80, protocol: 'TCP' }, bes.map((b) => ({ ip: b.ip, port: 8080 })));

    // kube-proxy's shape: KUBE-SERVICES → KUBE-SVC (statistic random) → KUBE-SEP (DNAT).
    const ipt = (...a: string[]) => sh('ip', ['netns', 'exec', ci.netns, 'iptables', '-w', '-t', 'nat', ...a]);
    for (const c of ['KUBE-SERVICES', 'KUBE-SVC-WEB', 'KUBE-SEP-1', 'KUBE-SEP-2', 'KUBE-SEP-3']) ipt('-N', c);
    ipt('-A', 'OUTPUT', '-j', 'KUBE-SERVICES');
    ipt('-A', 'KUBE-SERVICES', '-d', `${CLUSTER_IP}/32`, '-p', 'tcp', '--dport', '80', '-j', 'KUBE-SVC-WEB');
    ipt('-A', 'KUBE-SVC-WEB', '-m', 'statistic', '--mode', 'random', '--probability', '0.33333333349', '-j', 'KUBE-SEP-1');
    ipt('-A', 'KUBE-SVC-WEB', '-m', 'statistic', '--mode', 'random', '--probability', '0.50000000000', '-j', 'KUBE-SEP-2');
    ipt('-A', 'KUBE-SVC-WEB', '-j', 'KUBE-SEP-3');
    bes.forEach((b, i) => ipt('-A', `KUBE-SEP-${i + 1}`, '-p', 'tcp', '-j', 'DNAT', '--to-destination', `${b.ip}:8080`));

    for (const b of bes) {
      const p = lab.spawn(b, [LEAN, 'http', '--listen', `${b.ip}:8080`], { uid: 1000, label: `http ${b.name}` });
      procs.push(p);
      await p.waitForLine((l) => l.includes('"event":"ready"'));
    }

    const where: Record<(typeof LB_SCENARIOS)[number], { pod: Pod; cgroup: string; url: string }> = {
      direct: { pod: cd, cgroup: cd.cgroup, url: `http://${bes[0].ip}:8080/` },
      iptables: { pod: ci, cgroup: ci.cgroup, url: `http://${CLUSTER_IP}/` },
      socketlb: { pod: cs, cgroup: scope, url: `http://${CLUSTER_IP}/` },
    };
    const workloads = [
      { id: 'short-c16', args: ['-c16', '-H', 'Connection: close'] },
      { id: 'keepalive-c16', args: ['-c16'] },
    ];
    const runs: { scenario: string; workload: string; round: number; reqPerSec: number; latP99Us: number; errors: string[] }[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      for (const w of workloads) {
        for (const sc of LB_SCENARIOS) {
          const s = where[sc];
          const p = lab.spawn(s.pod, ['wrk', '-t1', ...w.args, `-d${o.seconds}s`, '--latency', s.url], { uid: 1000, cgroup: s.cgroup, label: `wrk ${sc}` });
          const code = await p.wait();
          const r = parseWrk(p.lines.join('\n'));
          const errors = [
            ...(code !== 0 ? [`wrk exited ${code}`] : []),
            ...(r.non2xx ? [`${r.non2xx} non-2xx`] : []),
            ...(r.socketErrors.connect || r.socketErrors.timeout ? [`socket errors ${JSON.stringify(r.socketErrors)}`] : []),
          ];
          runs.push({ scenario: sc, workload: w.id, round, reqPerSec: r.reqPerSec, latP99Us: r.latP99Us, errors });
          log(`lb round ${round}/${o.rounds} ${w.id.padEnd(14)} ${sc.padEnd(9)} ${r.reqPerSec.toFixed(0)} req/s  p99 ${r.latP99Us.toFixed(0)} µs${errors.length ? `  INVALID: ${errors.join('; ')}` : ''}`);
        }
      }
    }
    const table: Record<string, Record<string, { reqPerSec: number; latP99Us: number }>> = {};
    for (const w of workloads) {
      table[w.id] = {};
      for (const sc of LB_SCENARIOS) {
        const rs = runs.filter((r) => r.workload === w.id && r.scenario === sc);
        table[w.id][sc] = { reqPerSec: median(rs.map((r) => r.reqPerSec)), latP99Us: median(rs.map((r) => r.latP99Us)) };
      }
    }
    const ratios = {
      'socketlb/iptables short-connection req/s (target >= 1.15)': table['short-c16'].socketlb.reqPerSec / table['short-c16'].iptables.reqPerSec,
      'socketlb/direct short-connection req/s (target >= 0.97)': table['short-c16'].socketlb.reqPerSec / table['short-c16'].direct.reqPerSec,
      'socketlb/iptables keep-alive req/s': table['keepalive-c16'].socketlb.reqPerSec / table['keepalive-c16'].iptables.reqPerSec,
      'socketlb/iptables short-connection p99': table['short-c16'].socketlb.latP99Us / table['short-c16'].iptables.latP99Us,
    };

    // Control plane: 1000 Services × 10 endpoints, through the controller.
    dp.deleteService(1, { ip: CLUSTER_IP, port: 80, protocol: 'TCP' });
    const cluster = new FakeCluster();
    const svcs = cluster.add('/api/v1/services', 'ServiceList');
    const slices = cluster.add('/apis/discovery.k8s.io/v1/endpointslices', 'EndpointSliceList');
    const svc = (i: number) => ({ metadata: { name: `s${i}`, namespace: 'bench' }, spec: { clusterIP: `10.97.${i >> 8}.${i & 255}`, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } });
    const slice = (i: number, gen = 0) => ({
      metadata: { name: `s${i}-x`, namespace: 'bench', labels: { 'kubernetes.io/service-name': `s${i}` } },
      addressType: 'IPv4',
      endpoints: Array.from({ length: 10 }, (_, k) => ({ addresses: [`10.98.${(i * 10 + k) >> 8 & 255}.${(i * 10 + k + gen) & 255}`], conditions: { ready: true } })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
    for (let i = 0; i < 1000; i++) {
      svcs.upsert(svc(i));
      slices.upsert(slice(i));
    }
    const client = new KubeClient(kubeconfigForServer(await cluster.start()));
    const lb = new ServiceLoadBalancer(client, dp, () => undefined, () => undefined);
    const t0 = process.hrtime.bigint();
    await lb.start();
    const fullSyncMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const frontends = dp.services().length;
    const updates: number[] = [];
    for (let n = 0; n < 100; n++) {
      const i = (n * 7) % 1000;
      const want = slice(i, n + 1).endpoints[0].addresses[0];
      const t = process.hrtime.bigint();
      slices.upsert(slice(i, n + 1));
      const ip = `10.97.${i >> 8}.${i & 255}`;
      for (;;) {
        if (dp.service({ ip, port: 80, protocol: 'TCP' })?.backends.some((b) => b.ip === want)) break;
        await new Promise((r) => setImmediate(r));
      }
      updates.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    lb.stop();
    client.close();
    await cluster.stop();
    const mapUpdate = { services: 1000, endpointsEach: 10, frontendsProgrammed: frontends, fullSyncMs, updateP50Ms: percentile(updates, 50), updateP99Ms: percentile(updates, 99) };
    log(`lb map update: 1000 Services × 10 endpoints programmed in ${fullSyncMs.toFixed(0)} ms; one EndpointSlice change → maps p50 ${mapUpdate.updateP50Ms.toFixed(2)} ms p99 ${mapUpdate.updateP99Ms.toFixed(2)} ms`);
    return { rounds: o.rounds, seconds: o.seconds, runs, table, ratios, mapUpdate };
  } finally {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    dp?.close();
    await lab.cleanup();
  }
}
