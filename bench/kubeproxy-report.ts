/**
 * The kube-proxy comparison (kubeproxy.ts) as a markdown section and a chart:
 * req/s and CPU per request against the number of Services, one line per peer.
 */
import { lineCharts } from './line-chart';
import type { benchKubeProxy } from './kubeproxy';


type Result = Awaited<ReturnType<typeof benchKubeProxy>>;

const f = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '–');
const spread = (r: { min: number; median: number; max: number }) => `${f(r.median, 2)} (${f(r.min, 2)}–${f(r.max, 2)})`;
const COLOURS = { iptables: '#e53935', nftables: '#fb8c00', socketlb: '#1e88e5' };

export function kubeProxyMarkdown(r: Result): string {
  const lines = [
    '## Service load balancing against the real kube-proxy',
    '',
    `kube-proxy v1.31.4 in iptables mode (${r.iptablesBackend} xtables) and nftables mode, and Switchyard's socket LB, each with its own client netns, all watching one real kube-apiserver; N Services of 10 endpoints; wrk (16 connections) to one Service's ClusterIP; rounds interleaved, peer order rotating. IPVS: ${r.ipvs}.`,
    ...r.failed.map((x) => `\n**Not measured at ${x.n.toLocaleString('en-US')} Services**: ${x.error}`),
    '',
    '| Services | workload | iptables req/s | nftables req/s | socket LB req/s | socketlb/iptables (min–max) | socketlb/nftables (min–max) | CPU µs/req ipt / nft / sLB | p99 µs ipt / nft / sLB |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const x of r.results) {
    for (const w of Object.keys(x.summary.table)) {
      const t = x.summary.table[w];
      lines.push(
        `| ${x.n.toLocaleString('en-US')} | ${w} | ${f(t.iptables.reqPerSec)} | ${f(t.nftables.reqPerSec)} | ${f(t.socketlb.reqPerSec)} | ${spread(x.summary.ratios[`socketlb/iptables ${w} req/s`])} | ${spread(x.summary.ratios[`socketlb/nftables ${w} req/s`])} | ${f(t.iptables.cpuUsPerReq, 1)} / ${f(t.nftables.cpuUsPerReq, 1)} / ${f(t.socketlb.cpuUsPerReq, 1)} | ${f(t.iptables.latP99Us)} / ${f(t.nftables.latP99Us)} / ${f(t.socketlb.latP99Us)} |`,
      );
    }
  }
  lines.push('', 'Programming N Services (catch-up after the last Service was created; kube-proxy CPU over creation and sync; its CPU while idle during the rounds, periodic resyncs included):', '');
  lines.push('| Services | iptables catch-up ms | iptables CPU ms | nftables catch-up ms | nftables CPU ms | socket LB catch-up ms | kube-proxy idle CPU % ipt / nft |', '|---|---|---|---|---|---|---|');
  for (const x of r.results) {
    const s = x.sync;
    lines.push(`| ${x.n.toLocaleString('en-US')} | ${f(s.iptables.catchUpMs)} | ${f(s.iptables.kubeProxyCpuMs ?? NaN)} | ${f(s.nftables.catchUpMs)} | ${f(s.nftables.kubeProxyCpuMs ?? NaN)} | ${f(s.socketlb.catchUpMs)} | ${f(x.kubeProxyIdleCpuPct.iptables, 1)} / ${f(x.kubeProxyIdleCpuPct.nftables, 1)} |`);
  }
  lines.push('', 'First connection after a change (an EndpointSlice patch moves the Service to a new backend; a probe per peer connects every millisecond), ms p50 / p99, from the PATCH request and from its answer:', '');
  lines.push('| Services | iptables | nftables | socket LB |', '|---|---|---|---|');
  for (const x of r.results) {
    const c = x.summary.change;
    const cell = (p: string) => `${f(c[p].fromRequest.p50, 1)} / ${f(c[p].fromRequest.p99, 1)} (answer: ${f(c[p].fromCommit.p50, 1)} / ${f(c[p].fromCommit.p99, 1)})`;
    lines.push(`| ${x.n.toLocaleString('en-US')} | ${cell('iptables')} | ${cell('nftables')} | ${cell('socketlb')} |`);
  }
  const invalid = r.results.reduce((a, x) => a + x.summary.invalid, 0);
  lines.push('', invalid ? `**${invalid} runs failed a validity check** (see the JSON).` : 'Every run passed its validity checks (rule counts, conntrack only where kube-proxy translates, socket LB translations only for its client, server request counts equal to wrk\'s).', '');
  return lines.join('\n');
}

export function kubeProxyChart(r: Result, title: string): string {
  const line = (w: string, k: 'reqPerSec' | 'cpuUsPerReq') =>
    Object.fromEntries(r.peers.map((p) => [p, r.results.map((x) => [x.n, x.summary.table[w][p][k]] as [number, number])]));
  return lineCharts(
    title,
    [
      { title: 'short connections: req/s (higher is better)', yLabel: 'req/s', lines: line('short-c16', 'reqPerSec') },
      { title: 'short connections: client CPU per request', yLabel: 'µs per request', lines: line('short-c16', 'cpuUsPerReq') },
      { title: 'keep-alive: req/s', yLabel: 'req/s', lines: line('keepalive-c16', 'reqPerSec') },
    ],
    COLOURS,
  );
}
