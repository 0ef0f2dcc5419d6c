/**
 * Where the short-connection CPU goes: the dataplane bench's wrk short
 * connections (16) in scenarios a', c and d, each under `perf record -a -g`
 * (the whole machine: client, proxy, server, softirq), folded into flame
 * graphs and into CPU µs per request per function, c and d against a'.
 *
 *   node dist/bench/profile.js [--seconds 5] [--scenarios "a',c,d"] [--label NAME]
 *
 * Writes bench/results/<date>[-NAME]-flame-<scenario>.svg and <date>[-NAME]-profile.md.
 * BPF programs show by name (net.core.bpf_jit_kallsyms is set for the run).
 * Profiling costs CPU itself: these runs are for where, not how fast.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { projectRoot } from '../native';
import { benchDataplane, Scenario, SCENARIOS } from './dataplane';
import { Folded, flameGraphSvg, foldPerfScript, inclusive } from './flamegraph';

const WORKLOAD = 'wrk-short-c16';
const HZ = 499;

export async function profile(seconds: number, scenarios: Scenario[], log = (s: string) => process.stderr.write(s + '\n')) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sybench-profile-'));
  const kallsyms = '/proc/sys/net/core/bpf_jit_kallsyms';
  const was = fs.readFileSync(kallsyms, 'utf8').trim();
  fs.writeFileSync(kallsyms, '1');
  try {
    const r = await benchDataplane({ rounds: 1, seconds, workloads: [WORKLOAD], profile: { dir, scenarios }, log });
    const out: Record<string, { requests: number; samples: number; folded: Folded }> = {};
    for (const sc of scenarios) {
      const run = r.runs.find((x) => x.scenario === sc && x.workload === WORKLOAD)!;
      const text = execFileSync('perf', ['script', '-i', path.join(dir, `${sc}-${WORKLOAD}-r1.data`), '-F', 'comm,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
      const folded = foldPerfScript(text);
      out[sc] = { requests: Number(run.requests), samples: [...folded.values()].reduce((a, b) => a + b, 0), folded };
    }
    return out;
  } finally {
    fs.writeFileSync(kallsyms, was);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU µs per request for a number of samples (HZ per CPU, the whole machine sampled). */
const usPerReq = (samples: number, requests: number) => (samples * (1e6 / HZ)) / requests;

export function compare(p: Awaited<ReturnType<typeof profile>>, base: Scenario, other: Scenario, top = 25) {
  const [a, b] = [inclusive(p[base].folded), inclusive(p[other].folded)];
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names]
    .map((f) => ({ f, base: usPerReq(a.get(f) ?? 0, p[base].requests), other: usPerReq(b.get(f) ?? 0, p[other].requests) }))
    .map((x) => ({ ...x, delta: x.other - x.base }))
    .sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta))
    .slice(0, top);
}

if (require.main === module) {
  const arg = (k: string, d: string) => {
    const i = process.argv.indexOf(`--${k}`);
    return i >= 0 ? process.argv[i + 1] : d;
  };
  const scenarios = arg('scenarios', "a',c,d").split(',') as Scenario[];
  const label = arg('label', '');
  if (label && !/^[a-z0-9-]+$/.test(label)) {
    process.stderr.write(`profile: --label is part of a file name (a-z, 0-9, -), not '${label}'\n`);
    process.exit(2);
  }
  const bad = scenarios.filter((s) => !SCENARIOS.includes(s));
  if (bad.length || !scenarios.includes("a'")) {
    process.stderr.write(`profile: --scenarios takes a list of ${SCENARIOS.join(' ')} that includes a' (the baseline); got ${bad.join(', ') || 'no a\''}\n`);
    process.exit(2);
  }
  profile(Number(arg('seconds', '5')), scenarios).then(
    (p) => {
      const date = `${new Date().toISOString().slice(0, 10)}${label ? `-${label}` : ''}`;
      const dir = path.join(projectRoot(), 'bench', 'results');
      const lines = [`# Short-connection profile, ${date}`, '', `wrk ${WORKLOAD}, perf record -a -g at ${HZ} Hz over the whole machine (client, proxy, server, softirq); CPU µs per request = samples × ${(1e6 / HZ).toFixed(0)} µs / requests.`, ''];
      lines.push('| scenario | requests | samples | CPU µs per request (all) |', '|---|---|---|---|');
      for (const sc of scenarios) lines.push(`| ${sc} | ${p[sc].requests} | ${p[sc].samples} | ${usPerReq(p[sc].samples, p[sc].requests).toFixed(1)} |`);
      // Switchyard's own frames and what they pull in (BPF programs, the cgroup hooks that run them, the sockmap's tcp_bpf).
      const ours = /_\[bpf\]$|^__cgroup_bpf_run|^tcp_bpf_|psock/;
      const own = scenarios.map((sc) => inclusive(p[sc].folded));
      const frames = [...new Set(own.flatMap((m) => [...m.keys()].filter((f) => ours.test(f))))].sort();
      lines.push('', "## Switchyard's own frames (inclusive CPU µs per request)", '', `| function | ${scenarios.join(' | ')} |`, `|---|${scenarios.map(() => '---').join('|')}|`);
      for (const f of frames) lines.push(`| \`${f}\` | ${scenarios.map((sc, i) => usPerReq(own[i].get(f) ?? 0, p[sc].requests).toFixed(2)).join(' | ')} |`);
      for (const sc of scenarios.filter((s) => s !== "a'")) {
        lines.push('', `## ${sc} against a': the functions whose inclusive CPU per request differs most`, '', `| function | a' µs/req | ${sc} µs/req | Δ |`, '|---|---|---|---|');
        for (const x of compare(p, "a'", sc)) lines.push(`| \`${x.f}\` | ${x.base.toFixed(2)} | ${x.other.toFixed(2)} | ${x.delta >= 0 ? '+' : ''}${x.delta.toFixed(2)} |`);
      }
      for (const sc of scenarios) {
        const file = `${date}-flame-${sc === "a'" ? 'a-prime' : sc}.svg`;
        fs.writeFileSync(path.join(dir, file), flameGraphSvg(p[sc].folded, `${sc}: wrk short connections, whole machine`, `${p[sc].samples} samples, ${p[sc].requests} requests; orange kernel, red BPF, blue user space`));
        lines.push('', `![${sc}](${file})`);
      }
      fs.writeFileSync(path.join(dir, `${date}-profile.md`), lines.join('\n') + '\n');
      process.stdout.write(lines.join('\n') + '\n');
    },
    (e: Error) => {
      process.stderr.write(`profile failed: ${e.stack}\n`);
      process.exitCode = 1;
    },
  );
}
