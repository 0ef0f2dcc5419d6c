/**
 * Service load balancing against the real kube-proxy, at 1, 1,000 and
 * 10,000 Services of 10 endpoints each, all through a real kube-apiserver:
 *
 *   kube-apiserver + etcd ──watch──┬─▶ kube-proxy --mode iptables  (netns kpi)
 *   (lab/src/controlplane.ts)      ├─▶ kube-proxy --mode nftables  (netns kpn)
 *                                  └─▶ Switchyard's Service controller → socket LB maps
 *                                      (the agent's code, on the kps client's cgroup)
 *   each client netns ── node bridge ── kpsrv: 10 backend IPs, lean http :8080 ("ok"), :8081 ("new")
 *
 * Per N: the Services are created through the API, each peer's catch-up
 * time and kube-proxy's CPU for it are measured, then interleaved rounds
 * (the peer order rotates) of wrk short connections and keep-alive, 16
 * connections, to one Service's ClusterIP: req/s, p50/p99, CPU per request
 * in the client's cgroup. Then "first connection after a change": an
 * EndpointSlice patch moves the Service to the "new" backend, and a probe
 * per peer times the first connection that reaches it.
 *
 * Validity: rule counts (DNAT rules ≥ 10 per Service, frontends ≥ N), each
 * peer's traffic took its path (conntrack grows only in kube-proxy's
 * netns, socket LB translations only for its client), and the servers'
 * request counts match wrk's.
 *
 *   node dist/bench/kubeproxy.js [--rounds 3] [--seconds 2] [--services 1,1000,10000] [--changes 10]
 *                                [--iptables-backend legacy|nft] [--quick]
 *   (SWITCHYARD_BENCH_KEEP=1 keeps kube-proxy's logs and configuration; a failed run keeps them anyway)
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Dataplane } from '../interceptor/src/dataplane/dataplane';
import { ServiceLoadBalancer } from '../interceptor/src/lb/controller';
import { KubeClient } from '../lib/kube/client';
import { kubeconfigFromFile } from '../lib/kube/config';
import { projectRoot } from '../native';
import { ControlPlane, controlPlaneMissing, k8sBinDir } from '../lab/src/controlplane';
import { NetLab, Pod, sh } from '../lab/src/netlab';
import { Proc, waitUntil } from '../lab/src/proc';
import { cgroupUs, parseWrk } from './dataplane';
import { IptablesBackend, KubeProxyPeer, ipvsMissing, netnsConntrack } from './kubeproxy-peer';
import { median, percentile } from './stats';

const LEAN = path.join(projectRoot(), 'build', 'bench', 'lean');
export const PEERS = ['iptables', 'nftables', 'socketlb'] as const;
type Peer = (typeof PEERS)[number];
const SUBNET = '10.92.0';
const BACKENDS = Array.from({ length: 10 }, (_, i) => `${SUBNET}.${101 + i}`);
const WORKLOADS = [
  { id: 'short-c16', args: ['-c16', '-H', 'Connection: close'] },
  { id: 'keepalive-c16', args: ['-c16'] },
];
const now = () => process.hrtime.bigint();

export interface KubeProxyOptions {
  rounds: number;
  seconds: number;
  services: number[];
  changes: number;
  /** The iptables mode's xtables: legacy by default (see the README: nft's restore at 10,000 Services takes minutes). */
  iptablesBackend?: IptablesBackend;
  log?: (s: string) => void;
}

/** 10 addresses per Service that nothing answers on, distinct for every Service. */
const fakeEndpoints = (i: number) => Array.from({ length: 10 }, (_, j) => {
  const k = i * 10 + j;
  return `10.${100 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`;
});

async function pool<T>(items: T[], width: number, f: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await f(items[next++]);
  }));
}

export async function benchKubeProxy(o: KubeProxyOptions) {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const missing = controlPlaneMissing() ?? (fs.existsSync(path.join(k8sBinDir(), 'kube-proxy')) ? undefined : 'kube-proxy is not built: run scripts/lab-build.sh');
  if (missing) throw new Error(missing);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sybench-kp-'));
  const lab = new NetLab();
  NetLab.cleanupOnSignals();
  const cp = new ControlPlane();
  const procs: Proc[] = [];
  const peers: KubeProxyPeer[] = [];
  let dp: Dataplane | undefined;
  let lb: ServiceLoadBalancer | undefined;
  let admin: KubeClient | undefined;
  let lbClient: KubeClient | undefined;
  let keep = process.env.SWITCHYARD_BENCH_KEEP === '1';
  try {
    await cp.start();
    admin = new KubeClient(kubeconfigFromFile(cp.kubeconfig), 'switchyard-bench');
    const api = admin;
    const must = async (method: 'POST' | 'PATCH', p: string, body: unknown, type?: string) => {
      const r = await api.request(method, p, body, type);
      if (r.status >= 300) throw new Error(`${method} ${p}: HTTP ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
      return r.body;
    };

    const node = lab.addNode('kp', SUBNET);
    const srv = lab.addPod(node, 'kpsrv');
    for (const ip of BACKENDS) sh('ip', ['-n', srv.netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    const client: Record<Peer, Pod> = { iptables: lab.addPod(node, 'kpi'), nftables: lab.addPod(node, 'kpn'), socketlb: lab.addPod(node, 'kps') };
    for (const p of [srv, ...Object.values(client)]) sh('ip', ['netns', 'exec', p.netns, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1']);
    const scope = lab.addCgroupAt('scope-kp', 'pod');
    const cgroupOf: Record<Peer, string> = { iptables: client.iptables.cgroup, nftables: client.nftables.cgroup, socketlb: scope };
    const servers: Record<string, Proc> = {};
    for (const [port, body] of [['8080', 'ok'], ['8081', 'new']]) {
      const p = lab.spawn(srv, [LEAN, 'http', '--listen', `0.0.0.0:${port}`, '--body', body], { uid: 1000, label: `http :${port}` });
      procs.push(p);
      await p.waitForLine((l) => l.includes('"event":"ready"'));
      servers[port] = p;
    }

    for (const mode of ['iptables', 'nftables'] as const) {
      const peer = new KubeProxyPeer(mode, client[mode], lab, dir, o.iptablesBackend ?? 'legacy');
      // With no node address kube-proxy retries for 30 s before it starts; a kubelet would have set one.
      await must('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: peer.nodeName }, status: { addresses: [{ type: 'InternalIP', address: client[mode].ip }] } });
      await peer.start(cp, `${SUBNET}.0/24`);
      peers.push(peer);
    }
    dp = Dataplane.load({ cgroupPath: path.dirname(scope), pinRoot: lab.pinRoot });
    lbClient = new KubeClient(kubeconfigFromFile(cp.kubeconfig), 'switchyard-bench');
    lb = new ServiceLoadBalancer(lbClient, dp, () => undefined, (e) => log(`socket LB watch: ${e.message}`));
    await lb.start();

    // The Service every measurement aims at, with the 10 real backends.
    const NS = 'default';
    const service = (name: string) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } });
    const slice = (name: string, ips: string[], port: number) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-x`, namespace: NS, labels: { 'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': 'bench.switchyard.dev' } },
      addressType: 'IPv4',
      endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
      ports: [{ name: 'http', port, protocol: 'TCP' }],
    });
    const create = async (name: string, ips: string[]): Promise<string> => {
      const svc = await must('POST', `/api/v1/namespaces/${NS}/services`, service(name));
      await must('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, slice(name, ips, 8080));
      return svc.spec.clusterIP as string;
    };
    const tStart = now();
    const targetIp = await create('target', BACKENDS);
    let created = 1;
    for (const peer of peers) await waitUntil(() => peer.has(targetIp), `kube-proxy ${peer.mode} to program the first Service`, 120_000, 100);
    log(`kube-proxy bench: both kube-proxies programmed the first Service ${(Number(now() - tStart) / 1e6).toFixed(0)} ms after they started`);

    const peerOf = (p: Peer) => peers.find((x) => x.mode === p);
    const programmed = (p: Peer, ip: string): boolean => {
      if (p === 'socketlb') return dp!.service({ ip, port: 80, protocol: 'TCP' }) !== null; // one lookup, not a walk of every frontend
      return peerOf(p)!.has(ip);
    };
    const translations = () => Number(lb!.status().find((s) => s.frontend === `${targetIp}:80/TCP`)?.translations ?? 0);
    const served = async (port: string) => {
      const p = servers[port];
      const before = p.lines.length;
      p.child.kill('SIGUSR1');
      const fresh = () => p.lines.slice(before).find((l) => l.includes('"event":"stats"'));
      await p.readyWhen('its counters printed', () => fresh() !== undefined, 10_000, 5);
      return Number(JSON.parse(fresh()!).requests);
    };

    const results: {
      n: number;
      sync: Record<Peer, { catchUpMs: number; rules: number; kubeProxyCpuMs?: number }>;
      runs: { peer: Peer; workload: string; round: number; reqPerSec: number; latP50Us: number; latP99Us: number; cpuUsPerReq: number; errors: string[] }[];
      changes: Record<Peer, number[]>;
      committed: Record<Peer, number[]>;
      kubeProxyIdleCpuPct: Record<string, number>;
    }[] = [];

    const failed: { n: number; error: string }[] = [];
    for (const n of o.services) {
      // A step that fails (a peer that never catches up) ends the run but keeps the steps before it.
      try {
        // Services up to n, then each peer's catch-up from the last create.
        const names = Array.from({ length: Math.max(0, n - created) }, (_, k) => created + k);
        const cpuBefore = Object.fromEntries(peers.map((p) => [p.mode, p.cpuUs()]));
        const t0 = now();
        let lastIp = targetIp;
        await pool(names, 24, async (i) => {
          const ip = await create(`s${i}`, fakeEndpoints(i));
          if (i === names[names.length - 1]) lastIp = ip;
        });
        created = Math.max(created, n);
        const createdMs = Number(now() - t0) / 1e6;
        log(`kube-proxy bench: ${n} Services (${names.length} created in ${createdMs.toFixed(0)} ms); waiting for every peer`);
        const sync = {} as Record<Peer, { catchUpMs: number; rules: number; kubeProxyCpuMs?: number }>;
        const tCreated = now();
        const tCreatedWall = Date.now();
        await Promise.all(
          PEERS.map(async (p) => {
            const kp = peerOf(p);
            // kube-proxy: its own log says when a sync covering every Service finished (n + the apiserver's own).
            const synced = () => (kp ? kp.syncedAt(n + 1, 10 * n) !== undefined : programmed(p, lastIp) && programmed(p, targetIp));
            await waitUntil(synced, `${p} to program ${n} Services`, 900_000, kp ? 100 : 20);
            const catchUpMs = kp ? Math.max(0, kp.syncedAt(n + 1, 10 * n)! - tCreatedWall) : Number(now() - tCreated) / 1e6;
            const cpuMs = kp ? (kp.cpuUs() - cpuBefore[kp.mode]) / 1000 : undefined;
            // Validity: the rules are there (one dump: at 10,000 Services, nft takes seconds to list them).
            if (kp && !kp.has(lastIp)) throw new Error(`kube-proxy ${kp.mode} logged a full sync but has no rule for ${lastIp}`);
            const rules = kp ? kp.dnatRules() : dp!.services().length;
            sync[p] = { catchUpMs, rules, ...(cpuMs !== undefined ? { kubeProxyCpuMs: cpuMs } : {}) };
          }),
        );
        const sanity: string[] = [];
        for (const p of PEERS) {
          const want = p === 'socketlb' ? n : 10 * n;
          if (sync[p].rules < want) sanity.push(`${p}: ${sync[p].rules} rules, expected at least ${want}`);
        }
        if (sanity.length) throw new Error(`kube-proxy bench at ${n} Services is invalid: ${sanity.join('; ')}`);
        log(`  caught up: ${PEERS.map((p) => `${p} ${sync[p].catchUpMs.toFixed(0)} ms (${sync[p].rules} rules${sync[p].kubeProxyCpuMs !== undefined ? `, ${sync[p].kubeProxyCpuMs!.toFixed(0)} ms CPU` : ''})`).join(', ')}`);

        const runs: (typeof results)[number]['runs'] = [];
        const idleBefore = Object.fromEntries(peers.map((p) => [p.mode, p.cpuUs()]));
        const tRounds = now();
        for (let round = 1; round <= o.rounds; round++) {
          for (const w of WORKLOADS) {
            const order = PEERS.map((_, k) => PEERS[(k + round + n) % PEERS.length]);
            for (const peer of order) {
              const cg = cgroupOf[peer];
              const ct = Object.fromEntries(PEERS.map((p) => [p, netnsConntrack(client[p].netns)]));
              const [tr, srvBefore, cpu] = [translations(), await served('8080'), cgroupUs(cg)];
              const proc = lab.spawn(client[peer], ['wrk', '-t1', ...w.args, `-d${o.seconds}s`, '--latency', `http://${targetIp}/`], { uid: 1000, cgroup: cg, label: `wrk ${peer}` });
              const code = await proc.wait();
              const cpuUs = cgroupUs(cg) - cpu;
              const r = parseWrk(proc.lines.join('\n'));
              const [srvReqs, trDelta] = [(await served('8080')) - srvBefore, translations() - tr];
              const grew = (p: Peer) => netnsConntrack(client[p].netns) > ct[p];
              const errors = [
                ...(code !== 0 ? [`wrk exited ${code}`] : []),
                ...(r.non2xx ? [`${r.non2xx} non-2xx`] : []),
                ...(r.socketErrors.connect || r.socketErrors.timeout ? [`socket errors ${JSON.stringify(r.socketErrors)}`] : []),
                ...(Math.abs(srvReqs - r.requests) > 16 + r.requests * 0.01 ? [`servers counted ${srvReqs} requests, wrk ${r.requests}`] : []),
                ...(peer === 'socketlb' && trDelta < 16 ? [`socket LB translated ${trDelta} connections`] : []),
                ...(peer !== 'socketlb' && trDelta !== 0 ? [`socket LB translated ${trDelta} connections of ${peer}`] : []),
                ...(w.id.startsWith('short') && peer !== 'socketlb' && !grew(peer) ? [`no conntrack entries in ${peer}'s netns: its rules were not used`] : []),
                ...(grew('socketlb') ? ['conntrack grew in the socket LB netns'] : []),
              ];
              runs.push({ peer, workload: w.id, round, reqPerSec: r.reqPerSec, latP50Us: r.latP50Us, latP99Us: r.latP99Us, cpuUsPerReq: cpuUs / Math.max(1, r.requests), errors });
              log(`  N=${n} round ${round}/${o.rounds} ${w.id.padEnd(13)} ${peer.padEnd(8)} ${r.reqPerSec.toFixed(0).padStart(6)} req/s  p99 ${r.latP99Us.toFixed(0)} µs  ${(cpuUs / Math.max(1, r.requests)).toFixed(1)} µs CPU/req${errors.length ? `  INVALID: ${errors.join('; ')}` : ''}`);
            }
          }
        }
        const roundsS = Number(now() - tRounds) / 1e9;
        const kubeProxyIdleCpuPct = Object.fromEntries(peers.map((p) => [p.mode, ((p.cpuUs() - idleBefore[p.mode]) / 1e6 / roundsS) * 100]));

        // First connection after a change: one patch, every peer's probe times its own first "new" (or "ok") answer.
        const probes = {} as Record<Peer, Proc>;
        for (const p of PEERS) {
          probes[p] = lab.node({ netns: client[p].netns, cgroup: cgroupOf[p] }, 'bench/change-probe.js', ['--to', `${targetIp}:80`], { label: `probe ${p}` });
          procs.push(probes[p]);
          await probes[p].waitForJson((x) => x.event === 'body' && x.body === 'ok', 20_000);
        }
        // From the PATCH request, and from its answer (the change committed to etcd; a watch may deliver it before the answer).
        const changes = Object.fromEntries(PEERS.map((p) => [p, [] as number[]])) as Record<Peer, number[]>;
        const committed = Object.fromEntries(PEERS.map((p) => [p, [] as number[]])) as Record<Peer, number[]>;
        for (let k = 1; k <= o.changes; k++) {
          const toNew = k % 2 === 1;
          const body = toNew ? 'new' : 'ok';
          const marks = Object.fromEntries(PEERS.map((p) => [p, probes[p].lines.length]));
          const tPatch = now();
          const patched = must('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/target-x`, toNew ? { endpoints: slice('target', [BACKENDS[0]], 8081).endpoints, ports: [{ name: 'http', port: 8081, protocol: 'TCP' }] } : { endpoints: slice('target', BACKENDS, 8080).endpoints, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }, 'application/merge-patch+json');
          await patched;
          const tCommitted = now();
          for (const p of PEERS) {
            const seen = () => probes[p].lines.slice(marks[p]).map((l) => JSON.parse(l)).find((x) => x.event === 'body' && x.body === body);
            await probes[p].readyWhen(`answered "${body}" after the change`, () => seen() !== undefined, 30_000, 2);
            changes[p].push(Number(BigInt(seen().tNs as string) - tPatch) / 1e6);
            committed[p].push(Number(BigInt(seen().tNs as string) - tCommitted) / 1e6);
          }
        }
        for (const p of PEERS) await probes[p].stop('SIGTERM');
        log(`  first connection after a change (p50 ms): ${PEERS.map((p) => `${p} ${median(changes[p]).toFixed(1)}`).join(', ')}`);
        results.push({ n, sync, runs, changes, committed, kubeProxyIdleCpuPct });
      } catch (e) {
        failed.push({ n, error: (e as Error).message });
        log(`kube-proxy bench at ${n} Services FAILED: ${(e as Error).message}`);
        keep = true;
        break;
      }
    }
    return { peers: PEERS, iptablesBackend: o.iptablesBackend ?? 'legacy', ipvs: ipvsMissing() ?? 'available', failed, results: results.map((r) => ({ ...r, summary: summarise(r.runs, r.changes, r.committed) })) };
  } catch (e) {
    keep = true;
    throw e;
  } finally {
    lb?.stop();
    for (const p of procs.reverse()) await p.stop('SIGTERM');
    for (const p of peers) await p.stop();
    dp?.unload();
    admin?.close();
    lbClient?.close();
    await lab.cleanup();
    await cp.stop();
    if (keep) log(`kube-proxy bench: logs and configuration kept in ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Medians per peer and workload; ratios per round (socket LB against each kube-proxy mode in the same round) as min/median/max. */
export function summarise(
  runs: { peer: string; workload: string; round: number; reqPerSec: number; latP50Us: number; latP99Us: number; cpuUsPerReq: number; errors: string[] }[],
  changes: Record<string, number[]>,
  committed: Record<string, number[]>,
) {
  const table: Record<string, Record<string, { reqPerSec: number; latP50Us: number; latP99Us: number; cpuUsPerReq: number }>> = {};
  for (const w of WORKLOADS.map((x) => x.id)) {
    table[w] = {};
    for (const p of PEERS) {
      const rs = runs.filter((r) => r.workload === w && r.peer === p);
      table[w][p] = { reqPerSec: median(rs.map((r) => r.reqPerSec)), latP50Us: median(rs.map((r) => r.latP50Us)), latP99Us: median(rs.map((r) => r.latP99Us)), cpuUsPerReq: median(rs.map((r) => r.cpuUsPerReq)) };
    }
  }
  const spread = (w: string, a: string, b: string) => {
    const rounds = [...new Set(runs.map((r) => r.round))];
    const xs = rounds.map((k) => runs.find((r) => r.round === k && r.workload === w && r.peer === a)!.reqPerSec / runs.find((r) => r.round === k && r.workload === w && r.peer === b)!.reqPerSec).sort((x, y) => x - y);
    return { min: xs[0], median: median(xs), max: xs[xs.length - 1] };
  };
  const ratios: Record<string, { min: number; median: number; max: number }> = {};
  for (const w of WORKLOADS.map((x) => x.id)) for (const b of ['iptables', 'nftables']) ratios[`socketlb/${b} ${w} req/s`] = spread(w, 'socketlb', b);
  const pct = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), n: xs.length });
  const change = Object.fromEntries(Object.entries(changes).map(([p, xs]) => [p, { fromRequest: pct(xs), fromCommit: pct(committed[p]) }]));
  return { table, ratios, change, invalid: runs.filter((r) => r.errors.length).length };
}

if (require.main === module) {
  const arg = (name: string, d: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : d;
  };
  const quick = process.argv.includes('--quick');
  const backend = arg('iptables-backend', 'legacy');
  if (backend !== 'legacy' && backend !== 'nft') {
    process.stderr.write(`kubeproxy: --iptables-backend is legacy or nft, not '${backend}'\n`);
    process.exit(2);
  }
  benchKubeProxy({
    rounds: Number(arg('rounds', quick ? '1' : '3')),
    seconds: Number(arg('seconds', quick ? '1' : '2')),
    services: arg('services', quick ? '1,1000' : '1,1000,10000').split(',').map(Number),
    changes: Number(arg('changes', quick ? '4' : '10')),
    iptablesBackend: backend,
  }).then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      process.exitCode = r.failed.length || r.results.some((x) => x.summary.invalid) ? 1 : 0;
    },
    (e: Error) => {
      process.stderr.write(`kube-proxy bench failed: ${e.stack ?? e.message}\n`);
      process.exitCode = 1;
    },
  );
}
