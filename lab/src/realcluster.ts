/**
 * The lab as users run Switchyard: a real control plane, real nodes
 * (./kubenodes.ts), the images built here (images/), and the install done
 * with `switchyard certs` and `kubectl apply -k` exactly as
 * manifests/README.md tells users, through the lab's overlay
 * (lab/manifests/). Nothing of Switchyard runs as a host process.
 *
 *   build images (cached) → fabric + egress relay → control plane → nodes
 *   (images imported) → certs → kubectl apply -k → DaemonSet on every node,
 *   webhook Deployment available
 *
 * The manifests are copied into the lab's run directory with the overlay
 * beside them, so `generated/` (which holds a private key) never lands in
 * the checkout and two labs never share it. stop() stops the nodes (every
 * container goes with their cgroups), then the control plane, and removes
 * the netns, cgroups and run directory.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot } from '../../native';
import { run as cli } from '../../cli/main';
import { Built, buildImages } from '../../images/src/build';
import { ControlPlane, k8sBinDir } from './controlplane';
import { FABRIC_GATEWAY, KubeNodes, NodeInfo, RELAY } from './kubenodes';
import { LAB_RUN_ROOT, NetLab } from './netlab';
import { eventually } from './proc';


/** What is missing to run real nodes here, or undefined. */
export function realClusterMissing(): string | undefined {
  for (const b of ['kubelet', 'kube-proxy']) if (!fs.existsSync(path.join(k8sBinDir(), b))) return `${b} is not built: run scripts/lab-build.sh`;
  if (!fs.existsSync(RELAY)) return `${RELAY} is not built: run make lab-tools`;
  for (const [b, pkg] of [['containerd', 'containerd'], ['runc', 'runc'], ['ctr', 'containerd'], ['mmdebstrap', 'mmdebstrap'], ['nsenter', 'util-linux']]) {
    try {
      execFileSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' });
    } catch {
      return `${b} is not installed (apt-get install ${pkg}, or run scripts/setup.sh)`;
    }
  }
  if (!fs.existsSync('/usr/lib/cni/bridge')) return "Debian's CNI plugins are not installed (apt-get install containernetworking-plugins)";
  return undefined;
}

export interface RealClusterTimings {
  imagesMs: number;
  controlPlaneMs: number;
  nodesMs: number;
  installMs: number;
}

export class RealCluster {
  readonly netlab = new NetLab();
  readonly dir = path.join(LAB_RUN_ROOT, `sylab-${this.netlab.id}`);
  readonly nodes: KubeNodes;
  readonly cp: ControlPlane;
  readonly timings: RealClusterTimings = { imagesMs: 0, controlPlaneMs: 0, nodesMs: 0, installMs: 0 };
  images = '';
  built?: Built;

  constructor(private readonly nodeCount = 2) {
    fs.mkdirSync(this.dir, { recursive: true });
    this.nodes = new KubeNodes(this.netlab, this.dir);
    this.cp = new ControlPlane({ advertiseAddress: FABRIC_GATEWAY, egressSocket: this.nodes.egressSocket });
  }

  get nodeList(): NodeInfo[] {
    return this.nodes.nodes;
  }

  kubectl(args: string[], input?: string): string {
    const r = this.cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /**
   * Up to an empty cluster whose nodes are Ready (no Switchyard yet).
   * Layers built are reported to onProgress; onImages runs once the images are there.
   */
  async startCluster(onImages: () => void = () => undefined, onProgress: (line: string) => void = () => undefined): Promise<void> {
    let t = Date.now();
    this.built = buildImages({ onProgress });
    this.images = this.built.archive;
    this.timings.imagesMs = Date.now() - t;
    onImages();
    t = Date.now();
    await this.nodes.startEgress();
    await this.cp.start();
    await this.cp.startControllerManager();
    await this.cp.startScheduler();
    await this.nodes.startApiRelay(this.cp);
    this.timings.controlPlaneMs = Date.now() - t;
    t = Date.now();
    for (let i = 0; i < this.nodeCount; i++) await this.nodes.addNode(this.cp, this.images);
    this.timings.nodesMs = Date.now() - t;
  }

  /** The install directory: manifests/ and lab/manifests/ side by side, generated/ written by `switchyard certs`. */
  private async prepareInstall(onStep: (step: string, output: string) => void): Promise<string> {
    const install = path.join(this.dir, 'install');
    fs.rmSync(install, { recursive: true, force: true });
    fs.cpSync(path.join(projectRoot(), 'manifests'), path.join(install, 'manifests'), { recursive: true, filter: (src) => !src.includes(`${path.sep}generated`) });
    fs.cpSync(path.join(projectRoot(), 'lab', 'manifests'), path.join(install, 'lab', 'manifests'), { recursive: true });
    const out: string[] = [];
    const code = await cli(['certs', '--out', path.join(install, 'manifests', 'generated')], (s) => out.push(s), (s) => out.push(s));
    if (code !== 0) throw new Error(`switchyard certs failed: ${out.join('')}`);
    onStep('switchyard certs --out manifests/generated', out.join('').trim());
    return path.join(install, 'lab', 'manifests');
  }

  /** `kubectl apply -k`, then waits as a user would: the DaemonSet rolled out on every node, the webhook available. */
  async install(onStep: (step: string, output: string) => void = () => undefined): Promise<void> {
    const t = Date.now();
    const overlay = await this.prepareInstall(onStep);
    onStep('kubectl apply -k lab/manifests   (resources: ../../manifests)', this.kubectl(['apply', '-k', overlay]).trim());
    for (const w of ['daemonset/switchyard-interceptor', 'deployment/switchyard-webhook']) {
      onStep(`kubectl -n switchyard-system rollout status ${w}`, this.kubectl(['-n', 'switchyard-system', 'rollout', 'status', w, '--timeout=120s']).trim());
    }
    // Endpoints follow readiness: the apiserver calls the webhook at them.
    await eventually('the webhook Service has ready endpoints', async () => {
      const r = await this.cp.request('GET', '/api/v1/namespaces/switchyard-system/endpoints/switchyard-webhook');
      return r.body?.subsets?.some((s: any) => s.addresses?.length) ? true : undefined;
    });
    this.timings.installMs = Date.now() - t;
  }

  async start(): Promise<void> {
    await this.startCluster();
    await this.install();
  }

  /** Imports another image archive into every node's containerd, as a registry pull would make images available. */
  importImages(archive: string): void {
    for (const n of this.nodeList) this.nodes.importImages(n, archive);
  }

  /** The last lines of every node daemon's log, for a failure report (the logs go with the lab). */
  lastNodeLogLines(n = 8): string {
    const out: string[] = [];
    for (const node of this.nodeList) {
      for (const f of ['init.log', 'containerd.log', 'kubelet.log']) {
        const file = path.join(node.dir, 'log', f);
        if (fs.existsSync(file)) out.push(`--- ${node.name} ${f}\n${fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n')}`);
      }
    }
    return out.join('\n');
  }

  async stop(): Promise<void> {
    const errors: string[] = [];
    for (const step of [() => this.nodes.stop(), () => this.cp.stop(), () => this.netlab.cleanup()]) {
      try {
        await step();
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (errors.length) throw new Error(errors.join('\n'));
  }
}
