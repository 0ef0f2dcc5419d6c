/**
 * A throw-away network of "nodes" and "pods" on the real kernel:
 *
 *   node   = a network namespace with a bridge (br0, <subnet>.1/24 and
 *            <subnet6>::1/64), forwarding on
 *   pod    = a network namespace with eth0 (veth to its node's bridge,
 *            <subnet>.N/24 and <subnet6>::N/64) plus a cgroup2 directory
 *            under the lab's own cgroup
 *   link   = a veth between two nodes, with routes to each other's pod subnet
 *
 * Every name carries the lab's random id; cleanup() removes processes (by
 * pid), namespaces, cgroups and BPF pins, and runs even after a failure.
 * Nothing here touches the host's interfaces, routes or root cgroup.
 */
import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Proc } from './proc';
import { findCgroup2Mount } from '../../interceptor/src/dataplane/host';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { projectRoot } from '../../native';
import { readablePath } from './readable';
import { LAB_PREFIX } from './names';

export { LAB_PREFIX, LAB_RUN_ROOT } from './names';

export interface NodeNs {
  name: string;
  netns: string;
  subnet: string; // '10.77.0'
  subnet6: string; // 'fd00:0:0:1' (a /64)
  nextHost: number;
}

export interface Pod {
  name: string;
  netns: string;
  netnsPath: string;
  ip: string;
  ip6: string;
  cgroup: string;
  node: NodeNs;
}

export interface SpawnOptions {
  /** run as this uid (and gid); default root */
  uid?: number;
  /** join this cgroup before exec; default the pod's cgroup */
  cgroup?: string | null;
  label?: string;
  /** added to this process's environment */
  env?: NodeJS.ProcessEnv;
}

const DIST = path.join(projectRoot(), 'dist');

/** Absolute path of a compiled script under dist/ (tests spawn compiled JS, not ts). */
export function distScript(rel: string): string {
  const hit = path.join(DIST, rel);
  if (!fs.existsSync(hit)) throw new Error(`compiled script ${rel} not found under ${DIST}: run 'npx tsc' (the test command does)`);
  return hit;
}

/**
 * argv behind a shell that first moves itself into $SY_CGROUP (when set),
 * then execs: the program's very first socket is already in the cgroup's
 * scope, and its pid is the shell's, for signals.
 */
export function inCgroup(argv: string[]): string[] {
  return ['sh', '-c', '[ -z "$SY_CGROUP" ] || echo $$ > "$SY_CGROUP/cgroup.procs" || exit 97; exec "$@"', 'sh', ...argv];
}

export function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

export class NetLab {
  /** <owner pid>p<random>: a sweep leaves the labs of live processes alone. */
  readonly id = `${process.pid}p${randomBytes(2).toString('hex')}`;
  readonly cgroupMount = findCgroup2Mount();
  readonly cgroupRoot: string;
  readonly pinRoot: string;
  readonly nodes: NodeNs[] = [];
  readonly pods: Pod[] = [];
  private readonly procs: Proc[] = [];
  private readonly namespaces: string[] = [];
  private readonly cgroups: string[] = [];
  private links = 0;

  private readonly extraPinRoots: string[] = [];

  /** Another pin root, for a second dataplane in the same lab; removed by cleanup. */
  addPinRoot(suffix: string): string {
    const root = `${this.pinRoot}-${suffix}`;
    this.extraPinRoots.push(root);
    return root;
  }

  /** Labs of this process that have not been cleaned up yet. */
  static readonly live = new Set<NetLab>();

  constructor() {
    this.cgroupRoot = path.join(this.cgroupMount, `${LAB_PREFIX}-${this.id}`);
    this.pinRoot = `/sys/fs/bpf/${LAB_PREFIX}-${this.id}`;
    this.mkCgroup(this.cgroupRoot);
    NetLab.live.add(this);
  }

  /** For commands a person runs (demo, bench): Ctrl-C or SIGTERM removes this process's labs, then exits. */
  static cleanupOnSignals(extra: () => void = () => undefined): void {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        process.stderr.write(`\n${sig}: removing the lab\n`);
        try {
          extra();
        } catch {
          /* best effort: the labs below still go */
        }
        void Promise.allSettled([...NetLab.live].map((l) => l.cleanup())).then(() => process.exit(130));
      });
    }
  }

  private name(s: string): string {
    return `${LAB_PREFIX}-${this.id}-${s}`;
  }

  private mkCgroup(dir: string): string {
    fs.mkdirSync(dir);
    this.cgroups.push(dir);
    return dir;
  }

  /** A bare network namespace (lo up), removed by cleanup. */
  addNetns(name: string): string {
    return this.addNetnsNamed(this.name(name));
  }

  /** A cgroup at a path below the lab root (parents created), removed by cleanup. */
  addCgroupAt(...segments: string[]): string {
    let dir = this.cgroupRoot;
    for (const s of segments) {
      dir = path.join(dir, s);
      if (!fs.existsSync(dir)) this.mkCgroup(dir);
    }
    return dir;
  }

  /** Deletes one of the lab's namespaces now (a pod going away). */
  removeNetns(name: string): void {
    sh('ip', ['netns', 'del', name]);
    this.namespaces.splice(this.namespaces.indexOf(name), 1);
  }

  /** Removes one of the lab's cgroups now (waits for its processes to be reaped). */
  async removeCgroup(dir: string): Promise<void> {
    await rmdirWhenEmpty(dir);
    this.cgroups.splice(this.cgroups.indexOf(dir), 1);
  }

  private addNetnsNamed(name: string): string {
    sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  addNode(name: string, subnet: string): NodeNs {
    const netns = this.addNetnsNamed(this.name(name));
    sh('ip', ['-n', netns, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', netns, 'addr', 'add', `${subnet}.1/24`, 'dev', 'br0']);
    sh('ip', ['-n', netns, 'link', 'set', 'br0', 'up']);
    const subnet6 = `fd00:0:0:${this.nodes.length + 1}`;
    sh('ip', ['-n', netns, 'addr', 'add', `${subnet6}::1/64`, 'dev', 'br0', 'nodad']);
    sh('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    const node = { name, netns, subnet, subnet6, nextHost: 10 };
    this.nodes.push(node);
    return node;
  }

  /** A pod on a node: netns, eth0 on the node bridge, default route, and a cgroup. */
  addPod(node: NodeNs, name: string): Pod {
    const netns = this.addNetnsNamed(this.name(name));
    const host = node.nextHost++;
    const ip = `${node.subnet}.${host}`;
    const ip6 = `${node.subnet6}::${host.toString(16)}`;
    const hostSide = `v${name}`.slice(0, 15);
    sh('ip', ['-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', hostSide, 'netns', node.netns]);
    sh('ip', ['-n', node.netns, 'link', 'set', hostSide, 'master', 'br0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
    sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', `${node.subnet}.1`]);
    sh('ip', ['-n', netns, '-6', 'route', 'add', 'default', 'via', `${node.subnet6}::1`]);
    const cgroup = this.mkCgroup(path.join(this.cgroupRoot, name));
    const pod = { name, netns, netnsPath: `/var/run/netns/${netns}`, ip, ip6, cgroup, node };
    this.pods.push(pod);
    return pod;
  }

  /** Joins two nodes with a veth and routes each node's pod subnet through it. */
  linkNodes(a: NodeNs, b: NodeNs): void {
    const n = ++this.links;
    const [ia, ib] = [`link${n}a`, `link${n}b`];
    const [aAddr, bAddr] = [`10.255.${n}.1`, `10.255.${n}.2`];
    sh('ip', ['-n', a.netns, 'link', 'add', ia, 'type', 'veth', 'peer', 'name', ib, 'netns', b.netns]);
    sh('ip', ['-n', a.netns, 'addr', 'add', `${aAddr}/30`, 'dev', ia]);
    sh('ip', ['-n', b.netns, 'addr', 'add', `${bAddr}/30`, 'dev', ib]);
    sh('ip', ['-n', a.netns, 'link', 'set', ia, 'up']);
    sh('ip', ['-n', b.netns, 'link', 'set', ib, 'up']);
    sh('ip', ['-n', a.netns, 'route', 'add', `${b.subnet}.0/24`, 'via', bAddr]);
    sh('ip', ['-n', b.netns, 'route', 'add', `${a.subnet}.0/24`, 'via', aAddr]);
    const [a6, b6] = [`fd00:ff:0:${n}::1`, `fd00:ff:0:${n}::2`];
    sh('ip', ['-n', a.netns, 'addr', 'add', `${a6}/64`, 'dev', ia, 'nodad']);
    sh('ip', ['-n', b.netns, 'addr', 'add', `${b6}/64`, 'dev', ib, 'nodad']);
    sh('ip', ['-n', a.netns, '-6', 'route', 'add', `${b.subnet6}::/64`, 'via', b6]);
    sh('ip', ['-n', b.netns, '-6', 'route', 'add', `${a.subnet6}::/64`, 'via', a6]);
  }

  /** An extra cgroup under the lab root (e.g. for host processes inside the attach scope). */
  addCgroup(name: string): string {
    return this.mkCgroup(path.join(this.cgroupRoot, name));
  }

  /** Starts argv inside a pod's netns and cgroup (see inCgroup). */
  spawn(where: Pod | { netns: string | null; cgroup: string | null }, argv: string[], opts: SpawnOptions = {}): Proc {
    const cgroup = opts.cgroup === undefined ? where.cgroup : opts.cgroup;
    const inner = [
      ...(where.netns ? ['ip', 'netns', 'exec', where.netns] : []),
      ...(opts.uid !== undefined ? ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups'] : []),
      ...argv,
    ];
    const proc = Proc.start(opts.label ?? argv.join(' '), inCgroup(inner), {
      ...process.env,
      ...opts.env,
      SY_CGROUP: cgroup ?? '',
    });
    this.procs.push(proc);
    return proc;
  }

  /** Starts a compiled Node script from dist/ in a pod; as another user, from where that user can read it (readable.ts). */
  node(where: Pod | { netns: string | null; cgroup: string | null }, script: string, args: string[], opts: SpawnOptions = {}): Proc {
    const file = opts.uid ? readablePath(path.relative(projectRoot(), distScript(script))) : distScript(script);
    return this.spawn(where, [process.execPath, file, ...args], { label: `${script} ${args.join(' ')}`, ...opts });
  }

  /** Runs a client to completion and returns its last JSON line. */
  async run(where: Pod | { netns: string | null; cgroup: string | null }, script: string, args: string[], opts: SpawnOptions = {}) {
    const p = this.node(where, script, args, opts);
    const code = await p.wait();
    const out = p.json().filter((o) => o.event === 'result').pop();
    if (!out) throw new Error(`${p.label} exited ${code} without a result.\nstdout: ${p.lines.join('\n')}\nstderr: ${p.stderr}`);
    return out;
  }

  /** Starts the reference sidecar in a pod as the sidecar uid and waits until it listens. */
  async sidecar(pod: Pod, uid = 1337): Promise<Proc> {
    const p = this.node(pod, 'sidecar/src/main.js', [], { uid, label: `sidecar(${pod.name})` });
    await p.waitForJson((o) => o.event === 'ready');
    return p;
  }

  async server(pod: Pod, ports: number[], mode: 'echo' | 'sink' = 'echo', uid = 1000): Promise<Proc> {
    const args = [...ports.flatMap((p) => ['--port', String(p)]), '--mode', mode, '--name', pod.name];
    const p = this.node(pod, 'test/fixtures/echo-server.js', args, { uid, label: `server(${pod.name})` });
    await p.waitForJson((o) => o.event === 'ready');
    return p;
  }

  /** Removes everything the lab made. Safe to call twice and after partial setup. */
  async cleanup(): Promise<void> {
    NetLab.live.delete(this);
    const errors: string[] = [];
    await Promise.all(this.procs.map((p) => p.stop('SIGKILL')));
    for (const root of [this.pinRoot, ...this.extraPinRoots]) {
      if (!fs.existsSync(root)) continue;
      try {
        Dataplane.removePins(root);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    // Anything still running in the lab's cgroup tree was started by the lab (a container whose
    // owner failed to stop it): cgroup.kill ends the whole subtree, and nothing outside it.
    try {
      if (fs.existsSync(path.join(this.cgroupRoot, 'cgroup.kill'))) fs.writeFileSync(path.join(this.cgroupRoot, 'cgroup.kill'), '1');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`cgroup.kill ${this.cgroupRoot}: ${(e as Error).message}`);
    }
    for (const cg of this.cgroups.splice(0).reverse()) {
      try {
        await rmdirWhenEmpty(cg);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`rmdir ${cg}: ${(e as Error).message}`);
      }
    }
    if (errors.length) throw new Error(`lab ${this.id} cleanup incomplete:\n${errors.join('\n')}`);
  }
}

/** Killed processes leave their cgroup a moment after they are reaped. */
async function rmdirWhenEmpty(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 200) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
