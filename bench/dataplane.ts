/**
 * Dataplane benchmark: five scenarios side by side, interleaved, on the real
 * kernel (method: ../shared/BENCH.md, summarised in bench/README.md).
 *
 *   node (bridge 10.90.0.0/24)
 *   ├── srv  sockperf server :11111, lean http :8080, iperf3 :5201 (not intercepted)
 *   ├── ca   a: direct to srv; a': to lean proxy on 127.0.0.1 with fixed upstreams
 *   ├── cb   b: istio-init-style iptables REDIRECT → lean proxy :15001 (SO_ORIGINAL_DST via conntrack)
 *   ├── cc   c: Switchyard connect redirect → lean proxy :15001 (SO_ORIGINAL_DST via BPF getsockopt)
 *   └── cd   d: c + sockmap splicing (sock_ops + sk_msg)
 *
 * Every scenario uses the same proxy binary (bench/tools/lean.c) as uid
 * 1337, and the same clients (Debian's sockperf, wrk, iperf3) as uid 1000.
 * c and d have their own dataplane on their own cgroup subtree, so each
 * scenario's state is untouched by the others.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { counterKey, CounterName } from '../interceptor/src/dataplane/abi';
import { DEFAULT_INTERCEPTION } from '../api/interception';
import { Dataplane, PROGRAMS } from '../interceptor/src/dataplane/dataplane';
import { projectRoot } from '../native';
import { NetLab, Pod, distScript, sh } from '../lab/src/netlab';
import { Proc } from '../lab/src/proc';

export const SCENARIOS = ['a', "a'", 'b', 'c', 'd'] as const;
export type Scenario = (typeof SCENARIOS)[number];

const LEAN = path.join(projectRoot(), 'build', 'bench', 'lean');
const APP_UID = 1000;
const SIDECAR_UID = 1337;
const PORTS = { sockperf: 11111, http: 8080, iperf: 5201, sink: 9000 };
const EXPLICIT = { sockperf: 21111, http: 28080, iperf: 25201, sink: 29000 }; // a': the proxy's fixed listeners
const SINK_BYTES = 64 * 1024 * 1024;

export interface Workload {
  id: string;
  kind: 'sockperf' | 'wrk' | 'iperf3';
  size?: number;
  connections?: number;
  close?: boolean;
}

export const WORKLOADS: Workload[] = [
  { id: 'sockperf-64B', kind: 'sockperf', size: 64 },
  { id: 'sockperf-1KB', kind: 'sockperf', size: 1024 },
  { id: 'sockperf-16KB', kind: 'sockperf', size: 16384 },
  { id: 'wrk-keepalive-c1', kind: 'wrk', connections: 1 },
  { id: 'wrk-keepalive-c16', kind: 'wrk', connections: 16 },
  { id: 'wrk-keepalive-c64', kind: 'wrk', connections: 64 },
  { id: 'wrk-short-c16', kind: 'wrk', connections: 16, close: true },
  { id: 'iperf3-128K', kind: 'iperf3', size: 131072 },
];

export interface RunResult {
  scenario: Scenario;
  workload: string;
  round: number;
  // sockperf: one-way latency in µs (sockperf's RTT/2)
  p50Us?: number;
  p99Us?: number;
  p999Us?: number;
  messages?: number;
  // wrk
  reqPerSec?: number;
  requests?: number;
  latP50Us?: number;
  latP99Us?: number;
  // iperf3
  gbitPerSec?: number;
  bytes?: number;
  /** iperf3 stops counting at the deadline: what the client wrote that was still in the proxy's buffers. */
  bufferedAtEndBytes?: number;
  // cost
  cgroupCpuUs: number;
  hostCpuUs: number;
  units: number; // messages, requests or MB: what cpu is divided by
  conntrackGrowth: number;
  skMsgRedirected: number;
  violations: string[];
}

function usecs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 1 : m[2] === 'ms' ? 1000 : 1e6);
}

export function parseSockperf(out: string) {
  const pct = (p: string) => Number(new RegExp(`percentile ${p.replace('.', '\\.')} =\\s+([\\d.]+)`).exec(out)?.[1]);
  const m = /SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(out);
  return { p50Us: pct('50.000'), p99Us: pct('99.000'), p999Us: pct('99.900'), sent: Number(m?.[1]), received: Number(m?.[2]) };
}

export function parseWrk(out: string) {
  const lat = (p: string) => usecs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    reqPerSec: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    latP50Us: lat('50'),
    latP99Us: lat('99'),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    // A short-connection run ends with connections the server already closed: reads of 0 are normal there.
    socketErrors: errors ? { connect: +errors[1], read: +errors[2], write: +errors[3], timeout: +errors[4] } : { connect: 0, read: 0, write: 0, timeout: 0 },
  };
}

export function hostBusyUs(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return ((total - idle) * 1e6) / 100; // USER_HZ = 100 on Debian kernels
}

/** CPU used by a cgroup so far, µs (cgroup v2 cpu.stat). */
export const cgroupUs = (cg: string) => Number(/usage_usec (\d+)/.exec(fs.readFileSync(path.join(cg, 'cpu.stat'), 'utf8'))![1]);

/**
 * Conntrack entry ids in a netns. Entries a run created are still there when
 * it ends (TIME_WAIT lasts 120 s), so new ids = entries the run created, while
 * a plain count can stand still as older entries expire.
 */
function conntrackIds(netns: string): Set<string> {
  let out = '';
  try {
    out = execFileSync('ip', ['netns', 'exec', netns, 'conntrack', '-L', '-o', 'id'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 2 ** 20 });
  } catch {
    return new Set(); // no conntrack state in this netns
  }
  return new Set([...out.matchAll(/id=(\d+)/g)].map((m) => m[1]));
}

export interface DataplaneBenchOptions {
  rounds: number;
  seconds: number;
  workloads?: string[];
  /** perf record -a -g over each run of these scenarios, into dir/<scenario>-<workload>-r<round>.data (profile.ts). */
  profile?: { dir: string; scenarios: Scenario[] };
  log?: (s: string) => void;
}

export async function benchDataplane(o: DataplaneBenchOptions) {
  if (!fs.existsSync(LEAN)) throw new Error(`${LEAN} is missing: run 'make bench-tools'`);
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const lab = new NetLab();
  const procs: Proc[] = [];
  const dps: Dataplane[] = [];
  const pinRoots = [lab.addPinRoot('c'), lab.addPinRoot('d')];
  const statsWas = fs.readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const restoreStats = () => fs.writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
  NetLab.cleanupOnSignals(restoreStats);
  try {
    const node = lab.addNode('node', '10.90.0');
    const srv = lab.addPod(node, 'srv');
    const [ca, cb, cc, cd] = ['ca', 'cb', 'cc', 'cd'].map((n) => lab.addPod(node, n));
    // c and d: their own attach scope each, so the two dataplanes never see each other's pods.
    const cgC = lab.addCgroupAt('scope-c', 'pod');
    const cgD = lab.addCgroupAt('scope-d', 'pod');
    for (const p of [ca, cb, cc, cd, srv]) {
      sh('ip', ['netns', 'exec', p.netns, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1']);
    }
    const dpC = Dataplane.load({ cgroupPath: path.dirname(cgC), pinRoot: pinRoots[0], sockmapAcceleration: false });
    dps.push(dpC);
    const dpD = Dataplane.load({ cgroupPath: path.dirname(cgD), pinRoot: pinRoots[1] });
    dps.push(dpD);
    dpC.registerPod({ netnsPath: cc.netnsPath, cgroupPath: cgC, ips: [cc.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
    dpD.registerPod({ netnsPath: cd.netnsPath, cgroupPath: cgD, ips: [cd.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });

    // b: what istio-init writes for outbound traffic, inside cb's netns only.
    const ipt = (...args: string[]) => sh('ip', ['netns', 'exec', cb.netns, 'iptables', '-w', '-t', 'nat', ...args]);
    ipt('-N', 'SY_OUTPUT');
    ipt('-A', 'OUTPUT', '-p', 'tcp', '-j', 'SY_OUTPUT');
    ipt('-A', 'SY_OUTPUT', '-m', 'owner', '--uid-owner', String(SIDECAR_UID), '-j', 'RETURN');
    ipt('-A', 'SY_OUTPUT', '-d', '127.0.0.1/32', '-j', 'RETURN');
    ipt('-A', 'SY_OUTPUT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(DEFAULT_INTERCEPTION.outboundPort));

    const start = async (where: Pod, cgroup: string, argv: string[], uid: number, label: string, ready?: (l: string) => boolean) => {
      const p = lab.spawn(where, argv, { uid, cgroup, label });
      procs.push(p);
      if (ready) await p.waitForLine(ready, 10_000);
      return p;
    };
    const isReady = (l: string) => l.includes('"event":"ready"');
    /** sockperf and iperf3 buffer stdout into a pipe: readiness is their socket in LISTEN state. */
    const listening = async (pod: Pod, port: number, proc: Proc) => {
      await proc.readyWhen(`listening on ${port}`, () => !!sh('ip', ['netns', 'exec', pod.netns, 'ss', '-Hltn', `sport = :${port}`]).trim(), 10_000, 20);
    };
    const http = await start(srv, srv.cgroup, [LEAN, 'http', '--listen', `${srv.ip}:${PORTS.http}`], APP_UID, 'http', isReady);
    await start(srv, srv.cgroup, [process.execPath, distScript('test/fixtures/echo-server.js'), '--port', String(PORTS.sink), '--mode', 'sink', '--name', 'sink'], APP_UID, 'sink', isReady);
    const sockperfServer = await start(srv, srv.cgroup, ['sockperf', 'server', '--tcp', '-i', srv.ip, '-p', String(PORTS.sockperf)], APP_UID, 'sockperf-server');
    await listening(srv, PORTS.sockperf, sockperfServer);
    const iperfServer = async () => {
      const p = await start(srv, srv.cgroup, ['iperf3', '-s', '-1', '-B', srv.ip, '-p', String(PORTS.iperf)], APP_UID, 'iperf3-server');
      await listening(srv, PORTS.iperf, p);
    };
    const maps = Object.entries(PORTS).map(([k, port]) => ['--map', `${EXPLICIT[k as keyof typeof PORTS]}=${srv.ip}:${port}`]).flat();
    await start(ca, ca.cgroup, [LEAN, 'proxy', ...maps], SIDECAR_UID, "proxy a'", isReady);
    await start(cb, cb.cgroup, [LEAN, 'proxy', '--listen', '15001'], SIDECAR_UID, 'proxy b', isReady);
    await start(cc, cgC, [LEAN, 'proxy', '--listen', '15001'], SIDECAR_UID, 'proxy c', isReady);
    await start(cd, cgD, [LEAN, 'proxy', '--listen', '15001'], SIDECAR_UID, 'proxy d', isReady);

    const where: Record<Scenario, { pod: Pod; cgroup: string; target: (k: keyof typeof PORTS) => [string, number] }> = {
      a: { pod: ca, cgroup: ca.cgroup, target: (k) => [srv.ip, PORTS[k]] },
      "a'": { pod: ca, cgroup: ca.cgroup, target: (k) => ['127.0.0.1', EXPLICIT[k]] },
      b: { pod: cb, cgroup: cb.cgroup, target: (k) => [srv.ip, PORTS[k]] },
      c: { pod: cc, cgroup: cgC, target: (k) => [srv.ip, PORTS[k]] },
      d: { pod: cd, cgroup: cgD, target: (k) => [srv.ip, PORTS[k]] },
    };
    const skmsg = (s: Scenario) => (s === 'c' ? dpC : s === 'd' ? dpD : undefined)?.counters().SY_C_SKMSG_REDIRECTED ?? 0n;
    const serverRequests = async () => {
      const before = http.lines.length;
      http.child.kill('SIGUSR1');
      await http.waitForLine(() => http.lines.length > before);
      return Number(JSON.parse(http.lines[http.lines.length - 1]).requests);
    };

    fs.writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
    const runOne = async (scenario: Scenario, w: Workload, round: number): Promise<RunResult> => {
      const s = where[scenario];
      const client = (argv: string[]) => start(s.pod, s.cgroup, argv, APP_UID, `${scenario} ${w.id}`);
      const T = String(o.seconds);
      const ct0 = conntrackIds(s.pod.netns);
      const sk0 = skmsg(scenario);
      const req0 = w.kind === 'wrk' ? await serverRequests() : 0;
      if (w.kind === 'iperf3') await iperfServer();
      const perfData = o.profile?.scenarios.includes(scenario) ? path.join(o.profile.dir, `${scenario}-${w.id}-r${round}.data`) : undefined;
      const perf = perfData ? Proc.start(`perf ${scenario}`, ['perf', 'record', '-a', '-g', '-F', '499', '-o', perfData, '--', 'sleep', T]) : undefined;
      const cg0 = cgroupUs(lab.cgroupRoot);
      const host0 = hostBusyUs();
      let proc: Proc;
      if (w.kind === 'sockperf') {
        const [h, p] = s.target('sockperf');
        proc = await client(['sockperf', 'ping-pong', '--tcp', '-i', h, '-p', String(p), '-m', String(w.size), '-t', T]);
      } else if (w.kind === 'wrk') {
        const [h, p] = s.target('http');
        proc = await client(['wrk', '-t1', `-c${w.connections}`, `-d${T}s`, '--latency', ...(w.close ? ['-H', 'Connection: close'] : []), `http://${h}:${p}/`]);
      } else {
        const [h, p] = s.target('iperf');
        proc = await client(['iperf3', '-c', h, '-p', String(p), '-t', T, '-l', String(w.size), '-J']);
      }
      const code = await proc.wait();
      if (perf && (await perf.wait()) !== 0) throw new Error(`perf record failed: ${perf.stderr.slice(-300)}`);
      const cgroupCpuUs = cgroupUs(lab.cgroupRoot) - cg0;
      const hostCpuUs = hostBusyUs() - host0;
      const out = proc.lines.join('\n');
      const violations: string[] = [];
      if (code !== 0) violations.push(`${w.id} exited ${code}: ${proc.stderr.slice(-300)}`);
      const r: RunResult = { scenario, workload: w.id, round, cgroupCpuUs, hostCpuUs, units: 0, conntrackGrowth: [...conntrackIds(s.pod.netns)].filter((id) => !ct0.has(id)).length, skMsgRedirected: Number(skmsg(scenario) - sk0), violations };
      if (w.kind === 'sockperf') {
        const p = parseSockperf(out + proc.stderr);
        Object.assign(r, { p50Us: p.p50Us, p99Us: p.p99Us, p999Us: p.p999Us, messages: p.received, units: p.received });
        if (!(p.sent > 0) || Math.abs(p.sent - p.received) > 1) violations.push(`sockperf sent ${p.sent} messages but ${p.received} came back`);
      } else if (w.kind === 'wrk') {
        const p = parseWrk(out);
        const served = (await serverRequests()) - req0;
        Object.assign(r, { reqPerSec: p.reqPerSec, requests: p.requests, latP50Us: p.latP50Us, latP99Us: p.latP99Us, units: p.requests });
        if (!(p.requests > 0)) violations.push('wrk completed no request');
        if (p.non2xx) violations.push(`${p.non2xx} non-2xx responses`);
        if (p.socketErrors.connect || p.socketErrors.write || p.socketErrors.timeout) violations.push(`socket errors ${JSON.stringify(p.socketErrors)}`);
        // Every response wrk counted was served; at most one request per connection was in flight at the end.
        if (served < p.requests || served > p.requests + (w.connections ?? 1)) violations.push(`server answered ${served} requests, wrk counted ${p.requests}`);
      } else {
        const j = JSON.parse(out);
        const sent = Number(j.end?.sum_sent?.bytes);
        const received = Number(j.end?.sum_received?.bytes);
        Object.assign(r, { gbitPerSec: Number(j.end?.sum_received?.bits_per_second) / 1e9, bytes: received, units: received / 1e6 });
        r.bufferedAtEndBytes = sent - received;
        if (!(received > 0) || received > sent) violations.push(`iperf3 sent ${sent} bytes, the server received ${received}`);
      }
      if (scenario === 'b' ? r.conntrackGrowth <= 0 : r.conntrackGrowth !== 0) violations.push(`conntrack grew by ${r.conntrackGrowth} in ${scenario} (it must grow only in b)`);
      if (scenario === 'd' ? r.skMsgRedirected <= 0 : r.skMsgRedirected !== 0) violations.push(`sk_msg redirected ${r.skMsgRedirected} messages in ${scenario} (only d splices)`);
      return r;
    };

    /** The byte-count check: the server hashes everything it got until FIN and must match what the client sent. */
    const sinkCheck = async (scenario: Scenario): Promise<string[]> => {
      const [h, p] = where[scenario].target('sink');
      const r = await lab.run(where[scenario].pod, 'test/fixtures/client.js', ['--host', h, '--port', String(p), '--bytes', String(SINK_BYTES), '--mode', 'sink'], { uid: APP_UID, cgroup: where[scenario].cgroup });
      return r.intact === true ? [] : [`${scenario}: the server's hash of ${SINK_BYTES} bytes does not match what the client sent`];
    };
    const runs: RunResult[] = [];
    const byteChecks: { round: number; scenario: Scenario; ok: boolean }[] = [];
    const workloads = WORKLOADS.filter((w) => !o.workloads || o.workloads.includes(w.id));
    for (let round = 1; round <= o.rounds; round++) {
      for (const sc of SCENARIOS) {
        const bad = await sinkCheck(sc);
        byteChecks.push({ round, scenario: sc, ok: bad.length === 0 });
        if (bad.length) log(`round ${round}: INVALID: ${bad.join('; ')}`);
      }
      for (const w of workloads) {
        // Interleaved: each workload runs a a' b c d back to back, so drift hits every scenario alike.
        for (const sc of SCENARIOS) {
          const r = await runOne(sc, w, round);
          runs.push(r);
          log(`round ${round}/${o.rounds} ${w.id.padEnd(18)} ${sc.padEnd(2)} ${summaryOf(r)}${r.violations.length ? `  INVALID: ${r.violations.join('; ')}` : ''}`);
        }
      }
    }

    const bpf: Record<string, Record<string, { runCnt: number; runTimeNs: number; nsPerRun: number }>> = {};
    for (const [sc, root] of [['c', pinRoots[0]], ['d', pinRoots[1]]] as const) {
      bpf[sc] = {};
      for (const p of PROGRAMS) {
        const pin = path.join(root, 'progs', p.name);
        if (!fs.existsSync(pin)) continue;
        const info = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'pinned', pin], { encoding: 'utf8' })) as { run_cnt?: number; run_time_ns?: number };
        const runCnt = info.run_cnt ?? 0;
        const runTimeNs = info.run_time_ns ?? 0;
        bpf[sc][p.name] = { runCnt, runTimeNs, nsPerRun: runCnt ? runTimeNs / runCnt : 0 };
      }
    }
    const counters = Object.fromEntries(
      (['c', 'd'] as const).map((sc, i) => [sc, Object.fromEntries(Object.entries(dps[i].counters()).filter(([, v]) => v !== 0n).map(([k, v]) => [counterKey(k as CounterName), Number(v)]))]),
    );
    return { rounds: o.rounds, seconds: o.seconds, sinkBytes: SINK_BYTES, byteChecks, proxy: 'bench/tools/lean.c (thread per connection, poll + recv/send)', runs, bpf, counters };
  } finally {
    restoreStats();
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    for (const dp of dps) dp.close();
    await lab.cleanup();
  }
}

export function summaryOf(r: RunResult): string {
  if (r.p50Us !== undefined) return `p50 ${r.p50Us.toFixed(1)} µs  p99 ${r.p99Us?.toFixed(1)} µs`;
  if (r.reqPerSec !== undefined) return `${r.reqPerSec.toFixed(0)} req/s  p99 ${r.latP99Us?.toFixed(0)} µs`;
  return `${r.gbitPerSec?.toFixed(2)} Gbit/s`;
}
