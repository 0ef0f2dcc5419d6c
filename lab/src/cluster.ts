/**
 * The lab cluster: one node, every component a real process on this machine.
 *
 *   etcd ── kube-apiserver ──┬── kube-controller-manager, kube-scheduler
 *                            ├── switchyard-webhook   (clientConfig.url https://127.0.0.1:<port>/mutate,
 *                            │                          the ServiceAccount's token from manifests/ RBAC)
 *                            ├── switchyard-interceptor (BPF attached to the lab's cgroup, the node's
 *                            │                          pods and Services; its ServiceAccount's token)
 *                            └── lab node (./node.ts): Node object, sandboxes, CNI chain, containers
 *
 * The manifests' API objects are applied with kubectl, except the ones a
 * container runtime would run (the webhook Deployment, the interceptor
 * DaemonSet): the lab runs those two programs as processes, with the applied
 * switchyard-config ConfigMap as their settings, and runs install-cni with the
 * DaemonSet's own arguments. The webhook's certificate and registration
 * (by URL) are generated for the lab.
 *
 * Everything lives under /run/switchyard-lab/sylab-<pid>p<id>/ (logs, certs,
 * kubeconfigs, agent state), in netns and cgroups named after the lab, and
 * in the control plane's own directory; stop() removes all of it.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { run as cli } from '../../cli/main';
import { projectRoot } from '../../native';
import { AGENT_NODE_FLAGS } from '../../interceptor/src/agent/config';
import { NetLab } from './netlab';
import { Proc } from './proc';
import { ControlPlane, freePort } from './controlplane';
import { LabNode } from './node';
import { formatLine, Logger } from '../../lib/log';

export const LAB_RUN_ROOT = '/run/switchyard-lab';
export const LAB_NODE_NAME = 'switchyard-lab-node';
export const LAB_POD_CIDR = '10.244.0.0/24';
const OWN_NAMESPACE = 'switchyard-system';

/** Kinds that need a container runtime: the lab runs these programs itself. */
const RUN_BY_THE_LAB = new Set(['Deployment', 'DaemonSet']);

export interface LabTimings {
  controlPlaneMs: number;
  manifestsMs: number;
  switchyardMs: number;
  nodeMs: number;
}

export class LabCluster {
  readonly netlab = new NetLab();
  readonly cp = new ControlPlane();
  readonly dir = path.join(LAB_RUN_ROOT, `sylab-${this.netlab.id}`);
  node!: LabNode;
  webhook?: Proc;
  agent?: Proc;
  readonly agentSocket = this.file('agent.sock');
  agentMetricsPort = 0;
  webhookPort = 0;
  readonly cniConfDir = this.file('node', 'net.d');
  readonly cniBinDir = this.file('node', 'cni-bin');
  /** What install-cni said. */
  cniInstall = '';
  /** The manifests' workloads, which the lab runs itself. */
  private readonly runByLab: any[] = [];
  readonly applied: string[] = [];
  readonly skipped: string[] = [];
  readonly timings: LabTimings = { controlPlaneMs: 0, manifestsMs: 0, switchyardMs: 0, nodeMs: 0 };

  /** The lab node's decisions, one logfmt line each, to node.log (and to onNodeLog, if given). */
  private readonly log: Logger;

  constructor(onNodeLog?: (line: string) => void) {
    fs.mkdirSync(this.dir, { recursive: true });
    this.log = (level, msg, fields = {}) => {
      const line = formatLine({ time: new Date().toISOString(), level, msg, ...fields });
      fs.appendFileSync(this.file('node.log'), line + '\n');
      onNodeLog?.(line);
    };
  }

  private file(...p: string[]): string {
    return path.join(this.dir, ...p);
  }

  kubectl(args: string[], input?: string): string {
    const r = this.cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** Everything, in order. */
  async start(): Promise<void> {
    await this.startControlPlane();
    await this.applyManifests();
    await this.startSwitchyard();
  }

  async startControlPlane(): Promise<void> {
    const t = Date.now();
    await this.cp.start();
    await this.cp.startControllerManager();
    await this.cp.startScheduler();
    this.timings.controlPlaneMs = Date.now() - t;
  }

  /** The webhook and interceptor (which need the manifests' ServiceAccounts), then the node. */
  async startSwitchyard(): Promise<void> {
    let t = Date.now();
    await this.startWebhook();
    this.installCni();
    await this.startAgent();
    this.timings.switchyardMs = Date.now() - t;
    t = Date.now();
    this.node = new LabNode({
      name: LAB_NODE_NAME,
      cp: this.cp,
      lab: this.netlab,
      cniBinDirs: ['/usr/lib/cni', this.cniBinDir],
      cniConfDir: this.cniConfDir,
      podCidr: LAB_POD_CIDR,
      dir: this.file('node'),
      log: this.log,
    });
    await this.node.start();
    this.timings.nodeMs = Date.now() - t;
  }

  /**
   * A copy of manifests/ whose generated/ (the webhook's Secret and
   * MutatingWebhookConfiguration) comes from `switchyard certs` for the lab:
   * the serving certificate also names 127.0.0.1, and the registration is by
   * URL. `kubectl kustomize` of it, minus what a container runtime would run,
   * goes through `kubectl apply`.
   */
  async applyManifests(): Promise<void> {
    const t = Date.now();
    const copy = this.file('manifests');
    fs.cpSync(path.join(projectRoot(), 'manifests'), copy, { recursive: true, filter: (src) => !src.includes(`${path.sep}generated`) });
    this.webhookPort = await freePort();
    const quiet = () => undefined;
    const certs = path.join(copy, 'generated');
    if ((await cli(['certs', '--out', certs, '--ip', '127.0.0.1', '--url', `https://127.0.0.1:${this.webhookPort}/mutate`], quiet, quiet)) !== 0) throw new Error('switchyard certs failed');
    const docs = parseAllDocuments(this.kubectl(['kustomize', copy])).map((d) => d.toJSON());
    const keep = docs.filter((d) => d && !RUN_BY_THE_LAB.has(d.kind));
    for (const d of docs) {
      if (!d || !RUN_BY_THE_LAB.has(d.kind)) continue;
      this.skipped.push(`${d.kind}/${d.metadata.name}`);
      this.runByLab.push(d);
    }
    const out = this.kubectl(['apply', '-f', '-'], keep.map((d) => stringify(d)).join('---\n'));
    this.applied.push(...out.trim().split('\n'));
    this.timings.manifestsMs = Date.now() - t;
  }

  /** A kubeconfig holding a ServiceAccount's token: the program runs with exactly the RBAC manifests/ grants it. */
  private serviceAccountKubeconfig(sa: string): string {
    const token = this.kubectl(['create', 'token', sa, '-n', OWN_NAMESPACE, '--duration=24h']).trim();
    const file = this.file(`${sa}.kubeconfig`);
    fs.writeFileSync(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'lab',
        clusters: [{ name: 'lab', cluster: { server: this.cp.url, 'certificate-authority': path.join(this.cp.dir, 'ca.crt') } }],
        users: [{ name: sa, user: { token } }],
        contexts: [{ name: 'lab', context: { cluster: 'lab', user: sa, namespace: OWN_NAMESPACE } }],
      }),
      { mode: 0o600 },
    );
    return file;
  }

  private async startWebhook(): Promise<void> {
    this.webhook = await startWebhookProcess({
      certDir: this.file('manifests', 'generated'),
      port: this.webhookPort,
      kubeconfig: this.serviceAccountKubeconfig('switchyard-webhook'),
      config: this.meshSetting('injector.json'),
      logFile: this.file('webhook.log'),
    });
  }

  /**
   * The node's CNI setup: the cluster's main network (Debian's bridge +
   * host-local) in net.d, then what the DaemonSet's install-cni init
   * container does, with its own arguments from manifests/ (the agent socket
   * moved to the lab's).
   */
  private installCni(): void {
    fs.mkdirSync(this.cniConfDir, { recursive: true });
    fs.writeFileSync(
      path.join(this.cniConfDir, '10-switchyard-lab.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'switchyard-lab',
        plugins: [{ type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', subnet: LAB_POD_CIDR, dataDir: this.file('node', 'ipam'), routes: [{ dst: '0.0.0.0/0' }] } }],
      }, null, 2),
    );
    const ds = this.runByLab.find((d) => d.kind === 'DaemonSet' && d.metadata.name === 'switchyard-interceptor');
    const init = ds?.spec.template.spec.initContainers?.find((c: any) => c.name === 'install-cni');
    const args: string[] = init?.args ?? [];
    const i = args.indexOf('--settings');
    if (i < 0) throw new Error('the interceptor DaemonSet in manifests/ has no install-cni init container with --settings');
    const settings = { ...JSON.parse(args[i + 1]), agentSocket: this.agentSocket, logFile: this.file('node', 'switchyard-cni.log') };
    const r = spawnSync(process.execPath, [
      path.join(projectRoot(), 'dist/interceptor/src/agent/main.js'),
      'install-cni',
      '--bin-src', path.join(projectRoot(), 'build', 'cni', 'switchyard-cni'),
      '--bin-dir', this.cniBinDir,
      '--conf-dir', this.cniConfDir,
      '--settings', JSON.stringify(settings),
    ], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`install-cni failed: ${r.stderr.trim() || r.stdout.trim()}`);
    this.cniInstall = (r.stdout + r.stderr).trim();
  }

  /**
   * One file of the applied switchyard-config ConfigMap, read back from the
   * API and written where the program reads it (the Deployment and DaemonSet
   * mount it at /config).
   */
  private meshSetting(key: string): string {
    const cm = JSON.parse(this.kubectl(['get', 'configmap', 'switchyard-config', '-n', OWN_NAMESPACE, '-o', 'json']));
    const data = cm.data?.[key];
    if (typeof data !== 'string') throw new Error(`the switchyard-config ConfigMap has no ${key}`);
    const file = this.file(key);
    fs.writeFileSync(file, data);
    return file;
  }

  /**
   * Starts the interceptor with the ConfigMap's settings, its node-specific
   * paths pointed at the lab's own cgroup, pins and run directory. A restart
   * adopts the pinned dataplane and its registrations.
   */
  async startAgent(): Promise<void> {
    const config = this.file('interceptor-lab.yaml');
    if (!fs.existsSync(config)) {
      const kubepods = this.netlab.addCgroupAt('kubepods');
      fs.writeFileSync(
        config,
        stringify({
          ...parse(fs.readFileSync(this.meshSetting('interceptor.yaml'), 'utf8')),
          nodeName: LAB_NODE_NAME,
          cgroupPath: this.netlab.cgroupRoot,
          podCgroupRoot: kubepods,
          pinRoot: this.netlab.pinRoot,
          socketPath: this.agentSocket,
          metricsHost: '127.0.0.1',
          metricsPort: 0,
          stateDir: this.file('interceptor-state'),
          kubeconfig: this.serviceAccountKubeconfig('switchyard-interceptor'),
        }),
      );
    }
    this.agent = Proc.start('switchyard-interceptor', [process.execPath, ...AGENT_NODE_FLAGS, path.join(projectRoot(), 'dist/interceptor/src/agent/main.js'), 'run', '--config', config]).tee(this.file('interceptor.log'));
    const ready = await this.agent.waitForJson((o) => o.event === 'ready', 60_000);
    this.agentMetricsPort = Number(ready.metricsPort);
  }

  /** Stops the interceptor (SIGTERM); its BPF programs and maps stay pinned and keep working. */
  async stopAgent(): Promise<void> {
    await this.agent?.stop('SIGTERM');
  }

  /** Stops the node's pods first (CNI DEL reaches the agent), then the programs, then the control plane. Safe after a partial start. */
  async stop(): Promise<void> {
    const errors: string[] = [];
    const step = async (what: string, f: () => Promise<void> | void) => {
      try {
        await f();
      } catch (e) {
        errors.push(`${what}: ${(e as Error).message}`);
      }
    };
    await step('node', () => this.node?.stop());
    await step('interceptor', () => this.agent?.stop('SIGTERM'));
    await step('webhook', () => this.webhook?.stop('SIGTERM'));
    await step('control plane', () => this.cp.stop());
    await step('netns, cgroups and pins', () => this.netlab.cleanup());
    await step('lab directory', () => fs.rmSync(this.dir, { recursive: true, force: true }));
    if (errors.length) throw new Error(`lab teardown incomplete:\n${errors.join('\n')}`);
  }
}

/**
 * The switchyard-webhook program on a loopback port, serving tls.crt/tls.key
 * from certDir; resolves once its health port's /readyz answers 200 (its
 * namespace cache has synced).
 */
export async function startWebhookProcess(o: { certDir: string; port: number; kubeconfig: string; config?: string; logFile?: string }): Promise<Proc> {
  const healthPort = await freePort();
  const webhook = Proc.start('switchyard-webhook', [
    process.execPath,
    path.join(projectRoot(), 'dist/webhook/src/main.js'),
    '--tls-cert', path.join(o.certDir, 'tls.crt'),
    '--tls-key', path.join(o.certDir, 'tls.key'),
    '--port', String(o.port),
    '--health-port', String(healthPort),
    '--kubeconfig', o.kubeconfig,
    ...(o.config ? ['--config', o.config] : []),
  ]);
  if (o.logFile) webhook.tee(o.logFile);
  await webhook.readyWhen('ready (/readyz)', async () => (await httpStatus(`http://127.0.0.1:${healthPort}/readyz`)) === 200, 30_000);
  return webhook;
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => http.get(url, { agent: false }, (res) => resolve(res.resume().statusCode ?? 0)).on('error', () => resolve(0)));
}
