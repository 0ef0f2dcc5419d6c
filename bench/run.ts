/**
 * The benchmark command: dataplane (a a' b c d interleaved), Service load
 * balancing (also against the real kube-proxy at 1, 1,000 and 10,000
 * Services), webhook and registration, in one run. Writes
 * bench/results/<date>.json (raw, with the machine), <date>.md (medians and
 * ratios), <date>.svg and <date>-kubeproxy.svg, and copies the charts to
 * bench/results/latest.svg and latest-kubeproxy.svg, which README.md shows.
 *
 *   node dist/bench/run.js [--rounds 5] [--seconds 3] [--skip-control-plane] [--quick]
 *
 * --quick: one round of 1 s, kube-proxy at 1 and 1,000 Services, fewer
 * registration samples; for development (a few minutes), not for results:
 * it writes <date>-quick.* and leaves the latest charts alone.
 *
 * Exits 1 if a validity check failed (the results are still written, marked invalid).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { projectRoot } from '../native';
import { benchDataplane, RunResult, Scenario, SCENARIOS, WORKLOADS } from './dataplane';
import { benchKubeProxy } from './kubeproxy';
import { kubeProxyChart, kubeProxyMarkdown } from './kubeproxy-report';
import { benchLb } from './lb';
import { benchRegistration } from './registration';
import { median } from './stats';
import { benchWebhook } from './webhook';

const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};

function machine() {
  const version = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
    } catch (e) {
      return String((e as { stdout?: string }).stdout ?? '').split('\n')[0].trim() || 'unknown';
    }
  };
  return {
    kernel: os.release(),
    cpu: os.cpus()[0]?.model,
    cpus: os.cpus().length,
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    node: process.version,
    tools: { wrk: version('wrk', ['--version']), sockperf: version('sockperf', ['--version']), iperf3: version('iperf3', ['--version']) },
  };
}

/** The headline metric of each workload, and whether higher is better. */
function metric(w: string): { key: keyof RunResult; label: string; higherBetter: boolean } {
  if (w.startsWith('sockperf')) return { key: 'p50Us', label: 'p50 µs', higherBetter: false };
  if (w.startsWith('wrk')) return { key: 'reqPerSec', label: 'req/s', higherBetter: true };
  return { key: 'gbitPerSec', label: 'Gbit/s', higherBetter: true };
}

export function summarise(runs: RunResult[]) {
  const table: Record<string, Record<string, Record<string, number>>> = {};
  for (const w of WORKLOADS.map((x) => x.id)) {
    const forW = runs.filter((r) => r.workload === w);
    if (!forW.length) continue;
    table[w] = {};
    for (const sc of SCENARIOS) {
      const rs = forW.filter((r) => r.scenario === sc);
      const m = (k: keyof RunResult) => median(rs.map((r) => Number(r[k])));
      table[w][sc] = {
        p50Us: m('p50Us'),
        p99Us: m('p99Us'),
        p999Us: m('p999Us'),
        reqPerSec: m('reqPerSec'),
        latP99Us: m('latP99Us'),
        gbitPerSec: m('gbitPerSec'),
        bufferedAtEndMB: m('bufferedAtEndBytes') / 1e6,
        cpuUsPerUnit: median(rs.map((r) => r.cgroupCpuUs / r.units)),
        hostCpuUsPerUnit: median(rs.map((r) => r.hostCpuUs / r.units)),
      };
    }
  }
  const ratio = (w: string, k: string, x: Scenario, y: Scenario) => table[w]?.[x]?.[k] / table[w]?.[y]?.[k];
  /** Each round's x against the same round's y: min / median / max, the spread every ratio is reported with. */
  const value = (r: RunResult | undefined, k: string) =>
    !r ? NaN : k === 'bufferedAtEndMB' ? (r.bufferedAtEndBytes ?? NaN) : k === 'cpuUsPerUnit' ? r.cgroupCpuUs / r.units : Number(r[k as keyof RunResult]);
  const perRound = (w: string, k: string, x: Scenario, y: Scenario) => {
    const rounds = [...new Set(runs.filter((r) => r.workload === w).map((r) => r.round))];
    const at = (n: number, sc: Scenario) => runs.find((r) => r.workload === w && r.round === n && r.scenario === sc);
    const xs = rounds
      .map((n) => value(at(n, x), k) / value(at(n, y), k))
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    return { min: xs[0], median: median(xs), max: xs[xs.length - 1] };
  };
  const comparisons: [label: string, w: string, k: string, x: Scenario, y: Scenario][] = [
    ['c/b short-connection req/s (target >= 1.10)', 'wrk-short-c16', 'reqPerSec', 'c', 'b'],
    ['c/b keep-alive c16 p99 (target <= 1.0)', 'wrk-keepalive-c16', 'latP99Us', 'c', 'b'],
    ['c/b keep-alive c64 p99 (target <= 1.0)', 'wrk-keepalive-c64', 'latP99Us', 'c', 'b'],
    ["c/a' keep-alive c16 req/s (target within 3%)", 'wrk-keepalive-c16', 'reqPerSec', 'c', "a'"],
    ["c/a' short-connection req/s (target within 3%)", 'wrk-short-c16', 'reqPerSec', 'c', "a'"],
    ["c/a' sockperf 1KB p50 (target within 3%)", 'sockperf-1KB', 'p50Us', 'c', "a'"],
    ['d/c sockperf 64B p50 (reported)', 'sockperf-64B', 'p50Us', 'd', 'c'],
    ['d/c sockperf 1KB p50 (target <= 0.6)', 'sockperf-1KB', 'p50Us', 'd', 'c'],
    ['d/c sockperf 16KB p50 (target <= 0.6)', 'sockperf-16KB', 'p50Us', 'd', 'c'],
    ['d/c iperf3 Gbit/s', 'iperf3-128K', 'gbitPerSec', 'd', 'c'],
    ['d/c iperf3 written but not received at the deadline (target <= 2)', 'iperf3-128K', 'bufferedAtEndMB', 'd', 'c'],
    ["c/a' short-connection CPU per request (target within 5%)", 'wrk-short-c16', 'cpuUsPerUnit', 'c', "a'"],
    ['d/b short-connection req/s (target >= 1.25)', 'wrk-short-c16', 'reqPerSec', 'd', 'b'],
    ['b/a short-connection req/s', 'wrk-short-c16', 'reqPerSec', 'b', 'a'],
    ['c/a short-connection req/s', 'wrk-short-c16', 'reqPerSec', 'c', 'a'],
  ];
  const ratios = Object.fromEntries(comparisons.map(([label, w, k, x, y]) => [label, ratio(w, k, x, y)]));
  const spreads = Object.fromEntries(comparisons.map(([label, w, k, x, y]) => [label, perRound(w, k, x, y)]));
  return { table, ratios, spreads };
}

/** Grouped bars: each workload's headline metric relative to a' (the proxy without interception). */
export function chart(table: Record<string, Record<string, Record<string, number>>>, title: string): string {
  const colours: Record<Scenario, string> = { a: '#9e9e9e', "a'": '#616161', b: '#e53935', c: '#1e88e5', d: '#43a047' };
  const ws = Object.keys(table);
  const W = 900;
  const H = 440;
  const left = 60;
  const bottom = 130;
  const top = 50;
  const groupW = (W - left - 20) / ws.length;
  const barW = (groupW - 12) / SCENARIOS.length;
  const values = ws.map((w) => {
    const m = metric(w);
    const base = table[w]["a'"][m.key as string];
    // Normalised so that taller is always better: throughput / a', or a' / latency.
    return SCENARIOS.map((sc) => (m.higherBetter ? table[w][sc][m.key as string] / base : base / table[w][sc][m.key as string]));
  });
  const max = Math.max(1.2, ...values.flat().filter(Number.isFinite));
  const y = (v: number) => top + (H - top - bottom) * (1 - v / max);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${title}</text>`,
    `<text x="${W / 2}" y="34" text-anchor="middle" fill="#555">relative to a' (same proxy, no interception); taller is better: throughput ratio, or inverse latency ratio</text>`,
  ];
  for (const t of [0, 0.5, 1, 1.5, 2].filter((t) => t <= max)) {
    out.push(`<line x1="${left}" x2="${W - 20}" y1="${y(t)}" y2="${y(t)}" stroke="${t === 1 ? '#000' : '#ddd'}"/>`, `<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end">${t.toFixed(1)}×</text>`);
  }
  ws.forEach((w, i) => {
    const gx = left + i * groupW + 6;
    SCENARIOS.forEach((sc, j) => {
      const v = values[i][j];
      if (!Number.isFinite(v)) return;
      out.push(`<rect x="${(gx + j * barW).toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${colours[sc]}"><title>${w} ${sc}: ${v.toFixed(2)}×</title></rect>`);
    });
    out.push(`<text transform="translate(${gx + groupW / 2 - 6},${H - bottom + 14}) rotate(30)" >${w} (${metric(w).label})</text>`);
  });
  SCENARIOS.forEach((sc, j) => {
    const lx = left + j * 150;
    const names: Record<Scenario, string> = { a: 'a direct', "a'": "a' explicit proxy", b: 'b iptables', c: 'c eBPF', d: 'd eBPF + sockmap' };
    out.push(`<rect x="${lx}" y="${H - 18}" width="12" height="12" fill="${colours[sc]}"/>`, `<text x="${lx + 16}" y="${H - 8}">${names[sc]}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function markdown(
  date: string,
  m: ReturnType<typeof machine>,
  dp: Awaited<ReturnType<typeof benchDataplane>>,
  s: ReturnType<typeof summarise>,
  webhook: unknown,
  registration: any,
  invalid: string[],
  lb: Awaited<ReturnType<typeof benchLb>> | undefined,
): string {
  const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '–');
  const lines = [
    `# Switchyard benchmark, ${date}`,
    '',
    `Machine: ${m.cpus} × ${m.cpu}, ${m.memoryGiB} GiB, Linux ${m.kernel}. ${dp.rounds} interleaved rounds of ${dp.seconds} s per run. Proxy in every scenario: ${dp.proxy}. Medians over rounds.`,
    invalid.length ? `\n**INVALID RUN**: ${invalid.join('; ')}\n` : '\nValidity checks held: conntrack grew only in b, sk_msg redirected only in d, and the server-side hash of a 64 MiB transfer matched in every scenario and round.\n',
    '## Ratios',
    '',
    'Ratio of the medians, and each round against the same round (min / median / max): a target is met only when that median meets it.',
    '',
    '| comparison | ratio | per round min / median / max |',
    '|---|---|---|',
    ...Object.entries(s.ratios).map(([k, v]) => `| ${k} | ${f(v, 3)} | ${f(s.spreads[k]?.min, 3)} / ${f(s.spreads[k]?.median, 3)} / ${f(s.spreads[k]?.max, 3)} |`),
    '',
    '## Medians',
    '',
    `| workload | metric | ${SCENARIOS.join(' | ')} |`,
    `|---|---|${SCENARIOS.map(() => '---').join('|')}|`,
  ];
  for (const [w, row] of Object.entries(s.table)) {
    if (w.startsWith('sockperf')) {
      lines.push(`| ${w} | p50 µs | ${SCENARIOS.map((sc) => f(row[sc].p50Us)).join(' | ')} |`, `| ${w} | p99 µs | ${SCENARIOS.map((sc) => f(row[sc].p99Us)).join(' | ')} |`, `| ${w} | p99.9 µs | ${SCENARIOS.map((sc) => f(row[sc].p999Us)).join(' | ')} |`);
    } else if (w.startsWith('wrk')) {
      lines.push(`| ${w} | req/s | ${SCENARIOS.map((sc) => f(row[sc].reqPerSec, 0)).join(' | ')} |`, `| ${w} | p99 µs | ${SCENARIOS.map((sc) => f(row[sc].latP99Us, 0)).join(' | ')} |`);
      lines.push(`| ${w} | CPU µs/req (pods' cgroups) | ${SCENARIOS.map((sc) => f(row[sc].cpuUsPerUnit)).join(' | ')} |`);
    } else {
      lines.push(
        `| ${w} | Gbit/s | ${SCENARIOS.map((sc) => f(row[sc].gbitPerSec, 2)).join(' | ')} |`,
        `| ${w} | CPU µs/MB | ${SCENARIOS.map((sc) => f(row[sc].cpuUsPerUnit)).join(' | ')} |`,
        `| ${w} | MB written, not received at the deadline | ${SCENARIOS.map((sc) => f(row[sc].bufferedAtEndMB, 1)).join(' | ')} |`,
      );
    }
  }
  lines.push('', '## BPF cost per program (kernel.bpf_stats_enabled, over the whole run)', '', '| program | c ns/run | d ns/run | d runs |', '|---|---|---|---|');
  for (const p of Object.keys(dp.bpf.d)) lines.push(`| ${p} | ${f(dp.bpf.c[p]?.nsPerRun ?? NaN, 0)} | ${f(dp.bpf.d[p].nsPerRun, 0)} | ${dp.bpf.d[p].runCnt} |`);
  if (lb) lines.push('', '## Service load balancing (wrk to a ClusterIP with 3 backends)', '', '| comparison | ratio |', '|---|---|', ...Object.entries(lb.ratios).map(([k, v]) => `| ${k} | ${f(v, 3)} |`), '');
  if (lb) lines.push('| workload | direct req/s | iptables req/s | socket LB req/s | direct p99 µs | iptables p99 µs | socket LB p99 µs |', '|---|---|---|---|---|---|---|');
  for (const [w, row] of Object.entries(lb?.table ?? {})) lines.push(`| ${w} | ${f(row.direct.reqPerSec, 0)} | ${f(row.iptables.reqPerSec, 0)} | ${f(row.socketlb.reqPerSec, 0)} | ${f(row.direct.latP99Us, 0)} | ${f(row.iptables.latP99Us, 0)} | ${f(row.socketlb.latP99Us, 0)} |`);
  if (lb) lines.push('', `Map updates: ${lb.mapUpdate.services} Services × ${lb.mapUpdate.endpointsEach} endpoints programmed through the controller in ${f(lb.mapUpdate.fullSyncMs, 0)} ms; one EndpointSlice change reaches the maps in p50 ${f(lb.mapUpdate.updateP50Ms, 2)} ms, p99 ${f(lb.mapUpdate.updateP99Ms, 2)} ms.`);
  if (registration) {
    const r = registration;
    lines.push('', '## Registration (CNI ADD → maps and tc ready → first redirected connection)', '', '| pods registered before | chain ADD p50/p99 ms | bridge p50/p99 ms | switchyard-cni p50/p99 ms | of which agent p50/p99 ms | first redirected connection p50/p99 ms | escapes |', '|---|---|---|---|---|---|---|');
    for (const [k, v] of [...Object.entries(r.registeredBefore), ['10 concurrent ADDs', r.concurrent10]] as [string, any][]) {
      lines.push(`| ${k} | ${f(v.add.p50)} / ${f(v.add.p99)} | ${f(v.bridge.p50)} / ${f(v.bridge.p99)} | ${f(v.switchyardCni.p50)} / ${f(v.switchyardCni.p99)} | ${f(v.agent.p50, 2)} / ${f(v.agent.p99, 2)} | ${f(v.firstRedirectedConnection.p50)} / ${f(v.firstRedirectedConnection.p99)} | ${v.escapes} |`);
    }
    lines.push('', `Plugin times: ${r.pluginTimer}.`);
    lines.push('', `At ${r.atThousandPods.registered} pods: agent RSS ${r.atThousandPods.agentRssMiB} MiB; BPF map memory (memlock) ${r.atThousandPods.bpfMapMemlockTotalMiB} MiB.`);
  }
  if (webhook) lines.push('', '## Webhook', '', '```json', JSON.stringify(webhook, null, 2), '```');
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rounds = arg('rounds', quick ? 1 : 5);
  const seconds = arg('seconds', quick ? 1 : 3);
  const controlPlane = !process.argv.includes('--skip-control-plane');
  // A quick run is a check that everything runs, not a result: it never replaces the results the README shows.
  const date = `${new Date().toISOString().slice(0, 10)}${quick ? '-quick' : ''}`;
  const dir = path.join(projectRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const m = machine();
  const log = (s: string) => process.stdout.write(s + '\n');

  log(`dataplane: ${rounds} rounds × ${WORKLOADS.length} workloads × ${SCENARIOS.length} scenarios, ${seconds} s each`);
  const dp = await benchDataplane({ rounds, seconds, log });
  const failed: string[] = [];
  /** A section that fails is reported and the rest still runs: one crash must not lose a 15-minute run. */
  const section = async <T>(name: string, f: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch (e) {
      log(`${name} FAILED: ${(e as Error).stack}`);
      failed.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
      return undefined;
    }
  };
  log('service load balancing: direct, iptables DNAT, socket LB');
  const lb = await section('lb', () => benchLb({ rounds, seconds, log }));
  const webhook = controlPlane ? (log('webhook: 200 req/s over HTTPS for 10 s'), await section('webhook', () => benchWebhook(200, 10))) : undefined;
  const registration = controlPlane ? (log('registration: 0, 100, 1000 pods registered; 10 concurrent ADDs'), await section('registration', () => benchRegistration(quick ? 10 : 40, quick ? 1 : 4))) : undefined;
  const kubeProxy = controlPlane
    ? (log('kube-proxy (iptables, nftables) against the socket LB at 1, 1,000 and 10,000 Services'),
      await section('kube-proxy', () => benchKubeProxy({ rounds: quick ? 1 : 3, seconds: quick ? 1 : 2, services: quick ? [1, 1000] : [1, 1000, 10000], changes: quick ? 4 : 10, log })))
    : undefined;

  const s = summarise(dp.runs);
  const invalid = [
    ...failed,
    ...dp.runs.flatMap((r) => r.violations.map((v) => `${r.scenario} ${r.workload} round ${r.round}: ${v}`)),
    ...dp.byteChecks.filter((b) => !b.ok).map((b) => `byte check failed in ${b.scenario} round ${b.round}`),
    ...(registration && registration.escapes ? [`${registration.escapes} connections escaped the sidecar during registration`] : []),
    ...(lb?.runs ?? []).flatMap((r) => r.errors.map((e) => `lb ${r.scenario} ${r.workload} round ${r.round}: ${e}`)),
    ...(kubeProxy?.failed ?? []).map((x) => `kube-proxy at ${x.n} Services: ${x.error}`),
    ...(kubeProxy?.results ?? []).flatMap((x) => x.runs.flatMap((r) => r.errors.map((e) => `kube-proxy N=${x.n} ${r.peer} ${r.workload} round ${r.round}: ${e}`))),
  ];
  const raw = { date, machine: m, quick, valid: invalid.length === 0, invalid, dataplane: dp, summary: s, lb, webhook, registration, kubeProxy };
  fs.writeFileSync(path.join(dir, `${date}.json`), JSON.stringify(raw, null, 2) + '\n');
  const svg = chart(s.table, `Switchyard dataplane, ${date}: ${m.cpus} × ${m.cpu}, Linux ${m.kernel}`);
  fs.writeFileSync(path.join(dir, `${date}.svg`), svg);
  if (!quick) fs.writeFileSync(path.join(dir, 'latest.svg'), svg);
  if (kubeProxy) {
    const kp = kubeProxyChart(kubeProxy, `Service load balancing against kube-proxy, ${date}: ${m.cpus} × ${m.cpu}, Linux ${m.kernel}`);
    fs.writeFileSync(path.join(dir, `${date}-kubeproxy.svg`), kp);
    if (!quick) fs.writeFileSync(path.join(dir, 'latest-kubeproxy.svg'), kp);
  }
  const md = markdown(date, m, dp, s, webhook, registration, invalid, lb) + (kubeProxy ? `\n${kubeProxyMarkdown(kubeProxy)}` : '');
  fs.writeFileSync(path.join(dir, `${date}.md`), md);
  log(`\n${md}`);
  log(`wrote bench/results/${date}.json, ${date}.md and the charts${quick ? ' (quick: latest*.svg left as they were)' : ', also as latest*.svg'}`);
  if (invalid.length) {
    log(`INVALID: ${invalid.length} validity checks failed`);
    process.exitCode = 1;
  }
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
