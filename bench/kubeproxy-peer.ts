/**
 * One real kube-proxy (built with the lab's control plane), run in a client
 * netns the way it runs on a node, and what it programmed there.
 *
 *   client netns ── sylab-relay 127.0.0.1:6443 ──▶ host kube-apiserver
 *                └─ kube-proxy --config (mode iptables | nftables), own cgroup
 *
 * The client's traffic meets its rules in nat OUTPUT (iptables) or the
 * kube-proxy table's output hook (nftables), where a pod's would meet them
 * in the node's PREROUTING: the same chains and maps either way.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ControlPlane, k8sBinDir } from '../lab/src/controlplane';
import { RELAY } from '../lab/src/kubenodes';
import { NetLab, Pod } from '../lab/src/netlab';
import { Proc } from '../lab/src/proc';
import { cgroupUs } from './dataplane';

export type ProxyMode = 'iptables' | 'nftables';
/** Which xtables the iptables mode drives: Debian's default `iptables` is the nf_tables-backed one. */
export type IptablesBackend = 'legacy' | 'nft';

export class KubeProxyPeer {
  readonly cgroup: string;
  private procs: Proc[] = [];
  private proc?: Proc;

  constructor(
    readonly mode: ProxyMode,
    readonly pod: Pod,
    private readonly lab: NetLab,
    private readonly dir: string,
    readonly backend: IptablesBackend = 'nft',
  ) {
    this.cgroup = lab.addCgroup(`kube-proxy-${mode}`);
  }

  /**
   * kube-proxy runs `iptables-restore` and friends from its PATH: for the
   * legacy backend, a directory where those names are the -legacy binaries
   * comes first (what kube-proxy's image does with iptables-wrapper).
   */
  private pathFor(): string {
    const sys = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
    if (this.mode !== 'iptables' || this.backend !== 'legacy') return sys;
    const shim = path.join(this.dir, 'iptables-legacy-bin');
    fs.mkdirSync(shim, { recursive: true });
    for (const fam of ['iptables', 'ip6tables']) {
      for (const suffix of ['', '-save', '-restore']) {
        const link = path.join(shim, `${fam}${suffix}`);
        if (!fs.existsSync(link)) fs.symlinkSync(`/usr/sbin/${fam}-legacy${suffix}`, link);
      }
    }
    return `${shim}:${sys}`;
  }

  get nodeName(): string {
    return `bench-${this.mode}`;
  }

  async start(cp: ControlPlane, clusterCidr: string): Promise<void> {
    const relay = Proc.start(`relay ${this.mode}`, [RELAY, 'tcp', `/run/netns/${this.pod.netns}`, '127.0.0.1:6443', '-', `127.0.0.1:${cp.apiPort}`]).tee(path.join(this.dir, `relay-${this.mode}.log`));
    this.procs.push(relay);
    await relay.waitForLine((l) => l.includes('ready'));
    const cred = cp.issue(`kube-proxy-${this.mode}`, '/CN=system:kube-proxy', 'extendedKeyUsage=clientAuth\n');
    const kubeconfig = path.join(this.dir, `kube-proxy-${this.mode}.kubeconfig`);
    cp.writeKubeconfig(kubeconfig, 'https://127.0.0.1:6443', cred);
    const config = path.join(this.dir, `kube-proxy-${this.mode}.yaml`);
    fs.writeFileSync(
      config,
      [
        'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
        'kind: KubeProxyConfiguration',
        `clientConnection: {kubeconfig: ${kubeconfig}}`,
        `mode: ${this.mode}`,
        `hostnameOverride: ${this.nodeName}`,
        // The bench's clients are "pods": their traffic to a ClusterIP is not masqueraded, as a pod's is not.
        `clusterCIDR: ${clusterCidr}`,
        'conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}',
        'healthzBindAddress: 127.0.0.1:10256',
        'metricsBindAddress: 127.0.0.1:10249',
        '',
      ].join('\n'),
    );
    const kp = this.lab.spawn({ netns: this.pod.netns, cgroup: this.cgroup }, [path.join(k8sBinDir(), 'kube-proxy'), `--config=${config}`, '--v=2'], {
      label: `kube-proxy ${this.mode}`,
      env: { PATH: this.pathFor() },
    });
    kp.tee(path.join(this.dir, `kube-proxy-${this.mode}.log`));
    this.procs.push(kp);
    this.proc = kp;
  }

  /**
   * When kube-proxy finished its first sync that held at least these many
   * Services and endpoints, from its own log (ms since the epoch): exact,
   * and free, where dumping 100,000 rules to look for one takes seconds.
   */
  syncedAt(services: number, endpoints: number): number | undefined {
    let covered = false;
    for (const l of (this.proc?.stderr ?? '').split('\n')) {
      const r = /"Reloading service \w+ data".* numServices=(\d+) numEndpoints=(\d+)/.exec(l);
      if (r) covered = Number(r[1]) >= services && Number(r[2]) >= endpoints;
      else if (covered && l.includes('"SyncProxyRules complete"')) return klogTime(l);
    }
    return undefined;
  }

  private exec(argv: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.pod.netns, ...argv], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** The NAT rules as text: iptables-save's nat table, or the kube-proxy nft tables. */
  rules(): string {
    try {
      if (this.mode === 'nftables') return this.exec(['nft', 'list', 'table', 'ip', 'kube-proxy']);
      return this.exec([this.backend === 'legacy' ? 'iptables-legacy-save' : 'iptables-nft-save', '-t', 'nat']);
    } catch {
      return ''; // kube-proxy has not made its table yet
    }
  }

  /** Does this ClusterIP have its rules yet? */
  has(clusterIp: string, rules = this.rules()): boolean {
    return this.mode === 'iptables' ? rules.includes(`-d ${clusterIp}/32`) : new RegExp(`\\b${clusterIp.replace(/\./g, '\\.')} \\. tcp \\. 80\\b`).test(rules);
  }

  /** Rules that translate to an endpoint: one per endpoint per Service port. */
  dnatRules(rules = this.rules()): number {
    return this.mode === 'iptables' ? (rules.match(/^-A KUBE-SEP-\S+ .*-j DNAT/gm) ?? []).length : (rules.match(/\bdnat to /g) ?? []).length;
  }

  /** CPU used by kube-proxy so far, µs (its cgroup). */
  cpuUs(): number {
    return cgroupUs(this.cgroup);
  }

  async stop(): Promise<void> {
    for (const p of this.procs.reverse()) await p.stop('SIGTERM');
  }
}

/** A klog line's time (`I1202 20:18:46.613877 …`, local time, no year) in ms since the epoch. */
export function klogTime(line: string): number | undefined {
  const m = /^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})/.exec(line);
  if (!m) return undefined;
  const [mo, d, h, mi, sec, us] = m.slice(1).map(Number);
  return new Date(new Date().getFullYear(), mo - 1, d, h, mi, sec).getTime() + us / 1000;
}

/** IPVS mode needs the kernel's IP_VS; say why it is not run when it is missing. */
export function ipvsMissing(): string | undefined {
  if (fs.existsSync('/proc/net/ip_vs')) return undefined;
  return 'this kernel has no IPVS (no /proc/net/ip_vs, CONFIG_IP_VS not built in, and it loads no modules), so kube-proxy --mode ipvs cannot run here';
}

export const netnsConntrack = (netns: string): number => {
  try {
    return Number(execFileSync('ip', ['netns', 'exec', netns, 'cat', '/proc/sys/net/netfilter/nf_conntrack_count'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    return 0;
  }
};
