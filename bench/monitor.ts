/**
 * What the decision monitor costs (bpf/headers/monitor.h): connect4 ns per
 * run, and short-connection req/s, with the monitor compiled out, compiled
 * in but off (how every node runs), and on with a reader draining the ring.
 *
 *   node (bridge 10.91.0.0/24)
 *   ├── srv  lean http :8080 (not intercepted)
 *   ├── p0   out: build/bench/bpf-nomonitor (-DSY_MONITOR_COMPILED_OUT) → lean proxy :15001
 *   ├── p1   off: build/bpf, sy_monitor.enabled = 0                     → lean proxy :15001
 *   └── p2   on: build/bpf, enabled, the ring read every 100 ms          → lean proxy :15001
 *
 * Each pod has its own dataplane on its own cgroup subtree. Rounds run the
 * three back to back in a rotating order (wrk, 16 short connections), with
 * kernel.bpf_stats_enabled on; connect4's run_time_ns / run_cnt is read per
 * round. Target (issue 17): off − out ≤ 10 ns per connect4 run.
 *
 *   node dist/bench/monitor.js [--rounds 7] [--seconds 3]
 */
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_INTERCEPTION } from '../api/interception';
import { Dataplane } from '../interceptor/src/dataplane/dataplane';
import { native, projectRoot } from '../native';
import { NetLab, sh } from '../lab/src/netlab';
import { Proc } from '../lab/src/proc';
import { median } from './stats';

const LEAN = path.join(projectRoot(), 'build', 'bench', 'lean');
const NOMONITOR = path.join(projectRoot(), 'build', 'bench', 'bpf-nomonitor');
const VARIANTS = ['out', 'off', 'on'] as const;
type Variant = (typeof VARIANTS)[number];

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 7);
  const seconds = arg('seconds', 3);
  for (const f of [LEAN, path.join(NOMONITOR, 'sy_connect.bpf.o')]) if (!fs.existsSync(f)) throw new Error(`${f} is missing: run 'make bench-tools'`);
  const lab = new NetLab();
  const dps: Dataplane[] = [];
  const procs: Proc[] = [];
  const statsWas = fs.readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const restore = () => fs.writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
  NetLab.cleanupOnSignals(restore);
  let drain: NodeJS.Timeout | undefined;
  try {
    const node = lab.addNode('node', '10.91.0');
    const srv = lab.addPod(node, 'srv');
    const pods = VARIANTS.map((v) => lab.addPod(node, `p-${v}`));
    const cgroups = VARIANTS.map((v) => lab.addCgroupAt(`scope-${v}`, 'pod'));
    const pinRoots = VARIANTS.map((v) => lab.addPinRoot(v));
    for (const p of [srv, ...pods]) sh('ip', ['netns', 'exec', p.netns, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1']);
    VARIANTS.forEach((v, i) => {
      const dp = Dataplane.load({ cgroupPath: path.dirname(cgroups[i]), pinRoot: pinRoots[i], objectDir: v === 'out' ? NOMONITOR : undefined, sockmapAcceleration: false });
      dps.push(dp);
      dp.registerPod({ netnsPath: pods[i].netnsPath, cgroupPath: cgroups[i], ips: [pods[i].ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
    });
    dps[2].setMonitor(true);
    const ring = dps[2].openEvents();
    let events = 0;
    drain = setInterval(() => (events += ring.read().length), 100);

    const start = async (where: (typeof pods)[number], cgroup: string, argv: string[], uid: number, label: string) => {
      const p = lab.spawn(where, argv, { uid, cgroup, label });
      procs.push(p);
      await p.waitForLine((l) => l.includes('"event":"ready"'), 10_000);
    };
    await start(srv, srv.cgroup, [LEAN, 'http', '--listen', `${srv.ip}:8080`], 1000, 'http');
    for (let i = 0; i < VARIANTS.length; i++) await start(pods[i], cgroups[i], [LEAN, 'proxy', '--listen', '15001'], 1337, `proxy ${VARIANTS[i]}`);

    fs.writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
    const connect4 = (i: number) => native().progInfo(path.join(pinRoots[i], 'progs', 'sy_connect4'));
    const results: Record<Variant, { ns: number[]; rps: number[] }> = { out: { ns: [], rps: [] }, off: { ns: [], rps: [] }, on: { ns: [], rps: [] } };
    for (let r = 0; r < rounds; r++) {
      const order = VARIANTS.map((_, i) => (i + r) % VARIANTS.length);
      for (const i of order) {
        const before = connect4(i);
        const wrk = lab.spawn(pods[i], ['wrk', '-t1', '-c16', `-d${seconds}s`, '-H', 'Connection: close', `http://${srv.ip}:8080/`], { uid: 1000, cgroup: cgroups[i], label: 'wrk' });
        await wrk.wait();
        const after = connect4(i);
        const runs = Number(after.runCount - before.runCount);
        const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrk.lines.join('\n'))?.[1] ?? NaN);
        if (!runs || !rps) throw new Error(`round ${r} ${VARIANTS[i]}: no connects measured (wrk said: ${wrk.lines.join(' | ')})`);
        results[VARIANTS[i]].ns.push(Number(after.runTimeNs - before.runTimeNs) / runs);
        results[VARIANTS[i]].rps.push(rps);
      }
    }
    /** The median of each round's own difference to `out`: drift between rounds cancels. */
    const paired = (v: Variant) => median(results[v].ns.map((ns, r) => ns - results.out.ns[r]));
    const m = Object.fromEntries(VARIANTS.map((v) => [v, { ns: median(results[v].ns), rps: median(results[v].rps) }])) as Record<Variant, { ns: number; rps: number }>;
    const lines = [
      `# Decision monitor cost (${new Date().toISOString().slice(0, 10)}, ${rounds} interleaved rounds × ${seconds} s, wrk -c16 short connections)`,
      '',
      '| variant | connect4 ns/run (median) | req/s (median) | req/s vs out |',
      '|---|---|---|---|',
      ...VARIANTS.map((v) => `| ${v} | ${m[v].ns.toFixed(1)} | ${m[v].rps.toFixed(0)} | ${(m[v].rps / m.out.rps).toFixed(3)} |`),
      '',
      `off − out: ${(m.off.ns - m.out.ns).toFixed(1)} ns per connect4 run between the medians, ${paired('off').toFixed(1)} ns as the median of the rounds' own differences (target ≤ 10); on − out: ${(m.on.ns - m.out.ns).toFixed(1)} / ${paired('on').toFixed(1)} ns; ${events} events read while on, ${dps[2].monitorLost()} lost (the rate limit).`,
      `per round (ns/run): ${VARIANTS.map((v) => `${v} ${results[v].ns.map((x) => x.toFixed(0)).join('/')}`).join('; ')}`,
    ];
    const out = path.join(projectRoot(), 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-monitor.md`);
    fs.writeFileSync(out, lines.join('\n') + '\n');
    process.stdout.write(lines.join('\n') + `\n\nwrote ${out}\n`);
  } finally {
    clearInterval(drain);
    restore();
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    for (const dp of dps) dp.close();
    await lab.cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`bench monitor: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
