/**
 * NodePort from outside the cluster: what the ingress node pays per request.
 *
 *   outside 192.168.78.100 (wrk) ─┐             ┌─ n1 .1 (ingress node)
 *                                 └── lan0 ─────┤
 *                                               └─ n2 .2 ── br0: be1 be2 be3 (lean http, :8080-8082: one port per scenario)
 *
 * Three ways to N1's NodePort, interleaved in every round:
 *   iptables  kube-proxy's rules for a NodePort in N1's netns (KUBE-SERVICES →
 *             KUBE-NODEPORTS → KUBE-EXT (mark) → KUBE-SVC (statistic random) →
 *             KUBE-SEP DNAT, KUBE-POSTROUTING MASQUERADE, KUBE-FORWARD), with
 *             Switchyard's programs detached from N1 for the run
 *   snat      sy_nodeport on N1, snat mode: the same packet path, no conntrack
 *   dsr       sy_nodeport on N1 and N2: the SYN carries the Service address,
 *             replies leave N2 straight to the client
 *
 * CPU on N1: every veth on the path receives in a threaded NAPI kthread (GRO
 * on, TSO off so that veth uses NAPI for forwarded packets too,
 * /sys/class/net/<dev>/threaded = 1), so all of N1's packet work (tc,
 * netfilter, conntrack, routing, forwarding to the next veth) runs in the
 * thread of N1's ext0, and its /proc/<pid>/schedstat is N1's CPU. N2's thread
 * and the whole machine (/proc/stat) are reported beside it.
 *
 *   node dist/bench/nodeport.js [--rounds 5] [--seconds 3]   (writes results/<date>-nodeport.{json,md})
 */
import * as fs from 'fs';
import * as path from 'path';
import { Dataplane } from '../interceptor/src/dataplane/dataplane';
import { projectRoot } from '../native';
import { Lan, LanMember } from '../lab/src/lan';
import { NetLab, sh } from '../lab/src/netlab';
import { Proc } from '../lab/src/proc';
import { hostBusyUs, parseWrk } from './dataplane';
import { median } from './stats';

const LEAN = path.join(projectRoot(), 'build', 'bench', 'lean');
const N1 = '192.168.78.1';
const N2 = '192.168.78.2';
const PORT = { iptables: 30080, snat: 30081, dsr: 30082 } as const;
/**
 * Each scenario has its own backend port, so that no scenario meets another's
 * tuples in the backends' TIME_WAIT (kube-proxy's conntrack and our snat each
 * avoid only their own).
 */
const BACKEND_PORT = { iptables: 8080, snat: 8081, dsr: 8082 } as const;
const NODEPORT_SCENARIOS = ['iptables', 'snat', 'dsr'] as const;
type Scenario = (typeof NODEPORT_SCENARIOS)[number];
const WORKLOADS = [
  { id: 'short-c16', args: ['-c16', '-H', 'Connection: close'] },
  { id: 'keepalive-c16', args: ['-c16'] },
];

interface NodePortRun {
  scenario: Scenario;
  workload: string;
  round: number;
  reqPerSec: number;
  latP99Us: number;
  requests: number;
  /** CPU of N1's receive thread per request, µs: everything N1 did for it. */
  n1UsPerReq: number;
  n2UsPerReq: number;
  hostUsPerReq: number;
  /** Packets through N1's ext0 (in + out) per request. */
  n1PacketsPerReq: number;
  /** The client's SYN retransmits per 1000 requests: each one is a connection that waited a second or more. */
  synRetransPer1k: number;
  errors: string[];
}

/** Turns on GRO and threaded NAPI on a veth (TSO off) and returns its NAPI thread's pid. */
function threadedNapi(netns: string, dev: string): number {
  const napiThreads = () => new Set(fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && readComm(p).startsWith(`napi/${dev.slice(0, 9)}`)));
  const before = napiThreads();
  // veth hands a packet to the peer's NAPI only if the sender has no TSO (or the packet is a local socket's): off on both ends.
  sh('ip', ['netns', 'exec', netns, 'ethtool', '-K', dev, 'gro', 'on', 'tso', 'off']);
  sh('ip', ['netns', 'exec', netns, 'sh', '-c', `echo 1 > /sys/class/net/${dev}/threaded`]);
  const added = [...napiThreads()].filter((p) => !before.has(p));
  if (added.length !== 1) throw new Error(`threaded NAPI on ${dev} in ${netns}: expected one new napi/ thread, found ${added.length}`);
  return Number(added[0]);
}

function readComm(pid: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

const threadNs = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const conntrackCount = (netns: string) => Number(sh('ip', ['netns', 'exec', netns, 'cat', '/proc/sys/net/netfilter/nf_conntrack_count']).trim());

/** TcpExt TCPSynRetrans of a netns: SYNs sent again because the first got no SYN-ACK (a refused TIME_WAIT tuple, a drop). */
function synRetransmits(netns: string): number {
  const [names, values] = sh('ip', ['netns', 'exec', netns, 'cat', '/proc/net/netstat'])
    .split('\n')
    .filter((l) => l.startsWith('TcpExt:'))
    .map((l) => l.split(/\s+/));
  return Number(values[names.indexOf('TCPSynRetrans')]);
}

/** kube-proxy's iptables rules for one NodePort Service with these endpoints, in a node's netns. */
function kubeProxyNodePort(netns: string, nodePort: number, endpoints: string[]): void {
  const ipt = (table: string, ...a: string[]) => sh('ip', ['netns', 'exec', netns, 'iptables', '-w', '-t', table, ...a]);
  const seps = endpoints.map((_, i) => `KUBE-SEP-${i + 1}`);
  for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXT-WEB', 'KUBE-SVC-WEB', 'KUBE-MARK-MASQ', 'KUBE-POSTROUTING', ...seps]) ipt('nat', '-N', c);
  ipt('nat', '-A', 'PREROUTING', '-j', 'KUBE-SERVICES');
  ipt('nat', '-A', 'OUTPUT', '-j', 'KUBE-SERVICES');
  ipt('nat', '-A', 'POSTROUTING', '-j', 'KUBE-POSTROUTING');
  ipt('nat', '-A', 'KUBE-SERVICES', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'KUBE-NODEPORTS');
  ipt('nat', '-A', 'KUBE-NODEPORTS', '-p', 'tcp', '--dport', String(nodePort), '-j', 'KUBE-EXT-WEB');
  ipt('nat', '-A', 'KUBE-EXT-WEB', '-j', 'KUBE-MARK-MASQ');
  ipt('nat', '-A', 'KUBE-EXT-WEB', '-j', 'KUBE-SVC-WEB');
  ipt('nat', '-A', 'KUBE-MARK-MASQ', '-j', 'MARK', '--or-mark', '0x4000');
  seps.forEach((sep, i) => {
    const left = endpoints.length - i;
    ipt('nat', '-A', 'KUBE-SVC-WEB', ...(left > 1 ? ['-m', 'statistic', '--mode', 'random', '--probability', (1 / left).toFixed(11)] : []), '-j', sep);
    ipt('nat', '-A', sep, '-p', 'tcp', '-j', 'DNAT', '--to-destination', endpoints[i]);
  });
  ipt('nat', '-A', 'KUBE-POSTROUTING', '-m', 'mark', '!', '--mark', '0x4000/0x4000', '-j', 'RETURN');
  ipt('nat', '-A', 'KUBE-POSTROUTING', '-j', 'MARK', '--xor-mark', '0x4000');
  ipt('nat', '-A', 'KUBE-POSTROUTING', '-j', 'MASQUERADE', '--random-fully');
  ipt('filter', '-N', 'KUBE-FORWARD');
  ipt('filter', '-A', 'FORWARD', '-j', 'KUBE-FORWARD');
  ipt('filter', '-A', 'KUBE-FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP');
  ipt('filter', '-A', 'KUBE-FORWARD', '-m', 'mark', '--mark', '0x4000/0x4000', '-j', 'ACCEPT');
  ipt('filter', '-A', 'KUBE-FORWARD', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT');
}

export async function benchNodePort(o: { rounds: number; seconds: number; log?: (s: string) => void }) {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const lab = new NetLab();
  NetLab.cleanupOnSignals();
  const procs: Proc[] = [];
  const dps: Dataplane[] = [];
  try {
    const n1 = lab.addNode('n1', '10.83.1');
    const n2 = lab.addNode('n2', '10.83.2');
    const outside = { netns: lab.addNetns('outside'), cgroup: null };
    const lan = new Lan(lab, '192.168.78');
    const mc = lan.join(outside.netns, 100);
    const m1 = lan.join(n1.netns, 1);
    const m2 = lan.join(n2.netns, 2);
    lan.routePodSubnets([{ node: n1, member: m1 }, { node: n2, member: m2 }]);
    const bes = ['be1', 'be2', 'be3'].map((n) => lab.addPod(n2, n));
    for (const ns of [outside.netns, ...bes.map((b) => b.netns)]) sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000', 'net.ipv4.tcp_tw_reuse=1']);

    const napi = (m: LanMember) => threadedNapi(m.netns, m.ifname);
    const [n1Thread, n2Thread] = [napi(m1), napi(m2)];
    napi(mc);
    for (const port of lan.members.map((m) => m.port)) threadedNapi(lan.netns, port);
    for (const b of bes) {
      threadedNapi(b.netns, 'eth0');
      threadedNapi(n2.netns, `v${b.name}`);
    }

    const backends = (sc: Scenario) => bes.map((b) => ({ ip: b.ip, port: BACKEND_PORT[sc] }));
    const device1 = { netnsPath: `/var/run/netns/${n1.netns}`, ifname: 'ext0' };
    for (const [node, addr] of [[n1, N1], [n2, N2]] as const) {
      // sy_np_snat holds every snat port in use or in its backend's TIME_WAIT: 3 backends × the whole range (bpf/README.md).
      const mapSizes = { sy_np_snat: 131072 };
      const dp = Dataplane.load({ cgroupPath: lab.addCgroup(`${node.name}-scope`), pinRoot: lab.addPinRoot(node.name), mapSizes });
      dps.push(dp);
      dp.attachNodeDevice({ netnsPath: `/var/run/netns/${node.netns}`, ifname: 'ext0' });
      // N1 runs no clients of its own here, so its snat range is wide (the default 61000-65535 bounds new flows per backend: bpf/README.md).
      dp.setNodePortConfig({ snatAddress: addr, snatPortMin: 32768, snatPortMax: 65535 });
    }
    const [dp1] = dps;
    dp1.setNodeService(1, { ip: N1, port: PORT.snat, protocol: 'TCP' }, backends('snat'), { mode: 'snat', local: false, affinityTimeoutSeconds: 0 });
    dp1.setNodeService(2, { ip: N1, port: PORT.dsr, protocol: 'TCP' }, backends('dsr'), { mode: 'dsr', local: false, affinityTimeoutSeconds: 0 });
    kubeProxyNodePort(n1.netns, PORT.iptables, backends('iptables').map((b) => `${b.ip}:${b.port}`));

    for (const b of bes) {
      for (const port of Object.values(BACKEND_PORT)) {
        const p = lab.spawn(b, [LEAN, 'http', '--listen', `${b.ip}:${port}`], { uid: 1000, label: `http ${b.name}:${port}` });
        procs.push(p);
        await p.waitForLine((l) => l.includes('"event":"ready"'));
      }
    }

    const runs: NodePortRun[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      for (const w of WORKLOADS) {
        for (const sc of NODEPORT_SCENARIOS) {
          if (sc === 'iptables') dp1.detachNodeDevice(device1);
          const c0 = dp1.counters();
          const [t1, t2, host, link, ct, sr] = [threadNs(n1Thread), threadNs(n2Thread), hostBusyUs(), Lan.counters(m1), conntrackCount(n1.netns), synRetransmits(outside.netns)];
          const p = lab.spawn(outside, ['wrk', '-t1', ...w.args, `-d${o.seconds}s`, '--latency', `http://${N1}:${PORT[sc]}/`], { label: `wrk ${sc}` });
          const code = await p.wait();
          const [t1b, t2b, hostB, linkB, ctB, srB] = [threadNs(n1Thread), threadNs(n2Thread), hostBusyUs(), Lan.counters(m1), conntrackCount(n1.netns), synRetransmits(outside.netns)];
          const c1 = dp1.counters();
          if (sc === 'iptables') dp1.attachNodeDevice(device1);
          const r = parseWrk(p.lines.join('\n'));
          const grew = (k: 'SY_C_NP_SNAT' | 'SY_C_NP_DSR' | 'SY_C_NP_SNAT_PORTS_EXHAUSTED' | 'SY_C_NP_SNAT_TIME_WAIT_REUSED') => Number(c1[k] - c0[k]);
          const short = w.id.startsWith('short');
          const errors = [
            ...(code !== 0 ? [`wrk exited ${code}`] : []),
            ...(!r.requests ? ['no requests'] : []),
            ...(r.non2xx ? [`${r.non2xx} non-2xx`] : []),
            ...(r.socketErrors.connect || r.socketErrors.timeout ? [`socket errors ${JSON.stringify(r.socketErrors)}`] : []),
            ...(grew('SY_C_NP_SNAT_PORTS_EXHAUSTED') ? [`${grew('SY_C_NP_SNAT_PORTS_EXHAUSTED')} snat flows dropped: no free port`] : []),
            // Each scenario took its own path: conntrack on N1 only for iptables (older entries expire meanwhile, so
            // it grows by less than the connections), the counters only for their mode.
            ...(short && sc === 'iptables' && ctB - ct < r.requests / 10 ? [`N1's conntrack grew by ${ctB - ct} for ${r.requests} connections`] : []),
            ...(short && sc !== 'iptables' && ctB - ct > r.requests / 100 ? [`N1's conntrack grew by ${ctB - ct}: the traffic went through netfilter`] : []),
            ...(short && sc === 'snat' && grew('SY_C_NP_SNAT') < r.requests ? [`snat counted ${grew('SY_C_NP_SNAT')} flows for ${r.requests} requests`] : []),
            ...(short && sc === 'dsr' && grew('SY_C_NP_DSR') < r.requests ? [`dsr counted ${grew('SY_C_NP_DSR')} flows for ${r.requests} requests`] : []),
            ...(sc !== 'snat' && grew('SY_C_NP_SNAT') ? ['snat flows outside the snat run'] : []),
            ...(sc !== 'dsr' && grew('SY_C_NP_DSR') ? ['dsr flows outside the dsr run'] : []),
          ];
          const per = (x: number) => x / Math.max(1, r.requests);
          const run: NodePortRun = {
            scenario: sc,
            workload: w.id,
            round,
            reqPerSec: r.reqPerSec,
            latP99Us: r.latP99Us,
            requests: r.requests,
            n1UsPerReq: per((t1b - t1) / 1000),
            n2UsPerReq: per((t2b - t2) / 1000),
            hostUsPerReq: per(hostB - host),
            n1PacketsPerReq: per(linkB.rxPackets - link.rxPackets + linkB.txPackets - link.txPackets),
            synRetransPer1k: per(1000 * (srB - sr)),
            errors,
          };
          runs.push(run);
          log(
            `nodeport round ${round}/${o.rounds} ${w.id.padEnd(14)} ${sc.padEnd(8)} ${r.reqPerSec.toFixed(0)} req/s  p99 ${r.latP99Us.toFixed(0)} µs  ` +
              `N1 ${run.n1UsPerReq.toFixed(1)} µs/req  N2 ${run.n2UsPerReq.toFixed(1)}  host ${run.hostUsPerReq.toFixed(1)}  N1 pkts/req ${run.n1PacketsPerReq.toFixed(1)}  SYN retransmits/1k ${run.synRetransPer1k.toFixed(1)}` +
              (sc === 'snat' ? `  snat ports reused in TIME_WAIT ${grew('SY_C_NP_SNAT_TIME_WAIT_REUSED')}` : '') +
              (errors.length ? `  INVALID: ${errors.join('; ')}` : ''),
          );
        }
      }
    }
    return summariseNodePort(runs, o);
  } finally {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    for (const dp of dps) dp.close();
    await lab.cleanup();
  }
}

const METRICS = ['reqPerSec', 'latP99Us', 'n1UsPerReq', 'n2UsPerReq', 'hostUsPerReq', 'n1PacketsPerReq', 'synRetransPer1k'] as const;

function summariseNodePort(runs: NodePortRun[], o: { rounds: number; seconds: number }) {
  const table: Record<string, Record<string, Record<(typeof METRICS)[number], number>>> = {};
  for (const w of WORKLOADS) {
    table[w.id] = {};
    for (const sc of NODEPORT_SCENARIOS) {
      const rs = runs.filter((r) => r.workload === w.id && r.scenario === sc);
      table[w.id][sc] = Object.fromEntries(METRICS.map((m) => [m, median(rs.map((r) => r[m]))])) as Record<(typeof METRICS)[number], number>;
    }
  }
  /** a/b of one metric: of the medians, and round by round (min, median, max). */
  const ratio = (w: string, a: Scenario, b: Scenario, m: (typeof METRICS)[number]) => {
    const perRound = [...new Set(runs.map((r) => r.round))].map((round) => {
      const x = (sc: Scenario) => runs.find((r) => r.round === round && r.workload === w && r.scenario === sc)![m];
      return x(a) / x(b);
    });
    return { ofMedians: table[w][a][m] / table[w][b][m], rounds: { min: Math.min(...perRound), median: median(perRound), max: Math.max(...perRound) } };
  };
  const ratios = {
    'dsr/iptables N1 CPU per request, short connections (target <= 0.70)': ratio('short-c16', 'dsr', 'iptables', 'n1UsPerReq'),
    'dsr/iptables req/s, short connections (target >= 1.0)': ratio('short-c16', 'dsr', 'iptables', 'reqPerSec'),
    'dsr/iptables N1 CPU per request, keep-alive (target <= 0.70)': ratio('keepalive-c16', 'dsr', 'iptables', 'n1UsPerReq'),
    'dsr/iptables req/s, keep-alive (target >= 1.0)': ratio('keepalive-c16', 'dsr', 'iptables', 'reqPerSec'),
    'snat/iptables N1 CPU per request, short connections': ratio('short-c16', 'snat', 'iptables', 'n1UsPerReq'),
    'snat/iptables req/s, short connections': ratio('short-c16', 'snat', 'iptables', 'reqPerSec'),
    'dsr/iptables p99, short connections': ratio('short-c16', 'dsr', 'iptables', 'latP99Us'),
  };
  const invalid = runs.filter((r) => r.errors.length).map((r) => `${r.workload} ${r.scenario} round ${r.round}: ${r.errors.join('; ')}`);
  return { rounds: o.rounds, seconds: o.seconds, runs, table, ratios, invalid };
}

function nodePortMarkdown(r: ReturnType<typeof summariseNodePort>): string[] {
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const lines = [
    '## NodePort from outside the cluster (wrk, 16 connections, to N1; 3 backends on N2)',
    '',
    '| workload | scenario | req/s | p99 µs | N1 µs/req | N2 µs/req | machine µs/req | N1 packets/req | SYN retransmits per 1k req |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [w, row] of Object.entries(r.table)) {
    for (const [sc, m] of Object.entries(row)) lines.push(`| ${w} | ${sc} | ${f(m.reqPerSec, 0)} | ${f(m.latP99Us, 0)} | ${f(m.n1UsPerReq)} | ${f(m.n2UsPerReq)} | ${f(m.hostUsPerReq)} | ${f(m.n1PacketsPerReq, 1)} | ${f(m.synRetransPer1k, 1)} |`);
  }
  lines.push('', '| comparison | ratio of medians | per round min / median / max |', '|---|---|---|');
  for (const [k, v] of Object.entries(r.ratios)) lines.push(`| ${k} | ${f(v.ofMedians, 3)} | ${f(v.rounds.min, 3)} / ${f(v.rounds.median, 3)} / ${f(v.rounds.max, 3)} |`);
  if (r.invalid.length) lines.push('', `**Invalid runs:** ${r.invalid.join('; ')}`);
  return lines;
}

if (require.main === module) {
  const arg = (k: string, d: number) => {
    const i = process.argv.indexOf(`--${k}`);
    return i >= 0 ? Number(process.argv[i + 1]) : d;
  };
  benchNodePort({ rounds: arg('rounds', 5), seconds: arg('seconds', 3) }).then(
    (r) => {
      const dir = path.join(projectRoot(), 'bench', 'results');
      const date = new Date().toISOString().slice(0, 10);
      fs.writeFileSync(path.join(dir, `${date}-nodeport.json`), JSON.stringify(r, null, 2) + '\n');
      fs.writeFileSync(path.join(dir, `${date}-nodeport.md`), [`# NodePort bench, ${date}`, '', ...nodePortMarkdown(r), ''].join('\n'));
      process.stdout.write(nodePortMarkdown(r).join('\n') + '\n');
      process.exitCode = r.invalid.length ? 1 : 0;
    },
    (e: Error) => {
      process.stderr.write(`nodeport bench failed: ${e.stack ?? e.message}\n`);
      process.exitCode = 1;
    },
  );
}
