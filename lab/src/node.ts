/**
 * The lab node: plays the kubelet (and its container runtime) for one Node
 * object, on this machine's kernel.
 *
 *   Node object ── registered Ready, with capacity, so the real scheduler binds pods here
 *   watch pods with spec.nodeName=<node>
 *     new pod   → sandbox: cgroup2 dir <lab>/kubepods/pod<uid> + netns
 *               → CNI ADD: loopback, then the active config in the node's net.d
 *                 (bridge + host-local, with switchyard-cni chained by install-cni)
 *               → init containers in order (native sidecars: started, startupProbe passed)
 *               → containers in order: processes in the netns and cgroup, as the container's uid,
 *                 stdout+stderr → <logs>/<ns>_<pod>_<uid>/<container>/<restarts>.log;
 *                 a postStart hook runs to completion before the next container starts
 *                 (classic sidecar mode relies on it)
 *               → status via the status subresource: podIP(s), phase, container statuses,
 *                 conditions; startup, readiness and liveness probes (HTTP and TCP from the
 *                 node's netns, exec in the sandbox)
 *     exited    → restarted per restartPolicy, with back-off; so is a failed liveness probe
 *     deleting  → preStop hook, SIGTERM (app containers, then sidecars), SIGKILL after the
 *                 grace period → CNI DEL, netns and cgroup removed, pod object deleted (grace 0)
 *
 * Images are not pulled (./images.ts). Not done: volumes, resource limits, image pull
 * secrets, ephemeral containers, node heartbeats (the lab's controller-manager runs no
 * node-lifecycle controller).
 */
import { ChildProcess, StdioOptions, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { KubeClient, kubeconfigConnection } from '../../interceptor/src/kube/client';
import { Reflector } from '../../interceptor/src/kube/reflector';
import { CniRuntime, Invocation, NetworkList } from './cni-runtime';
import { NetLab, distScript, inCgroup, sh } from './netlab';
import { ControlPlane, K8S_VERSION } from './controlplane';
import { ImageNotAvailable, containerArgv, inImage } from './images';
import { activeConfig } from '../../interceptor/src/agent/cni-install';
import type { Logger } from '../../lib/log';

export interface LabNodeOptions {
  name: string;
  cp: ControlPlane;
  lab: NetLab;
  /** Where CNI plugins are looked up, in order (CNI_PATH). */
  cniBinDirs: string[];
  /**
   * The node's CNI configuration directory (/etc/cni/net.d): the lexically
   * first config is the pod network, read at each ADD as runtimes do;
   * loopback is set up separately first.
   */
  cniConfDir: string;
  /** The node's pod subnet, e.g. 10.244.0.0/24; the bridge takes its first address. */
  podCidr: string;
  /** Node state: IPAM, container logs, the CNI log. */
  dir: string;
  log: Logger;
}

type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; signal?: number; reason: string; startedAt?: string; finishedAt: string } };

/** What a probe or a lifecycle hook does. */
interface Action {
  httpGet?: { path?: string; port: number | string; host?: string };
  tcpSocket?: { port: number | string };
  exec?: { command: string[] };
  /** Lifecycle hooks only (Kubernetes ≥ 1.30). */
  sleep?: { seconds: number };
}

interface Probe extends Action {
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
  terminationGracePeriodSeconds?: number;
}

interface ContainerSpec {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  workingDir?: string;
  ports?: { name?: string; containerPort: number }[];
  restartPolicy?: string;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { postStart?: Action; preStop?: Action };
  securityContext?: { runAsUser?: number; runAsGroup?: number; allowPrivilegeEscalation?: boolean };
}

interface Container {
  spec: ContainerSpec;
  init: boolean;
  /** A native sidecar: an init container with restartPolicy Always. */
  sidecar: boolean;
  proc?: ChildProcess;
  state: ContainerState;
  lastState?: ContainerState;
  restartCount: number;
  ready: boolean;
  started: boolean;
  exited?: Promise<void>;
  /** Settles when the postStart hook of the current run has finished (at once without one). */
  postStarted?: Promise<void>;
  probeTimer?: NodeJS.Timeout;
  livenessTimer?: NodeJS.Timeout;
  /** Exec probes and hooks running in the container: they die with it, as in a runtime. */
  execs: Set<ChildProcess>;
}

interface Sandbox {
  uid: string;
  namespace: string;
  name: string;
  pod: any;
  netns: string;
  netnsPath: string;
  cgroup: string;
  inv: Invocation;
  network?: CniRuntime;
  cniResult?: any;
  ips: string[];
  logDir: string;
  containers: Container[];
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  initialized: boolean;
  startTime: string;
  stopping: boolean;
  /** Resolves when stopping becomes true (stop()). */
  stopped: Promise<void>;
  stop: () => void;
  /** Start and teardown of one pod never overlap. */
  queue: Promise<void>;
  statusTimer?: NodeJS.Timeout;
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const RESTART_BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000];
/** The kubelet bounds no exec hook; the lab does, so a hung hook cannot hang a test. */
const HOOK_TIMEOUT_MS = 120_000;

export class LabNode {
  readonly name: string;
  readonly gateway: string;
  nodeNetns = '';
  readonly logRoot: string;
  private readonly sandboxes = new Map<string, Sandbox>();
  private pods?: Reflector<any>;
  private prober?: ChildProcess;
  private probeSeq = 0;
  private readonly probeWaiters = new Map<number, (r: { ok: boolean; detail: string }) => void>();
  private loopback!: CniRuntime;
  private stopped = false;
  /** The whole lab is going: no more Events. */
  private closing = false;

  constructor(private readonly o: LabNodeOptions) {
    this.name = o.name;
    const [net] = o.podCidr.split('/');
    const parts = net.split('.').map(Number);
    this.gateway = [...parts.slice(0, 3), parts[3] + 1].join('.');
    this.logRoot = path.join(o.dir, 'pods');
  }

  async start(): Promise<void> {
    const o = this.o;
    fs.mkdirSync(this.logRoot, { recursive: true });
    this.nodeNetns = o.lab.addNetns('node');
    sh('ip', ['netns', 'exec', this.nodeNetns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    this.loopback = new CniRuntime(this.nodeNetns, o.cniBinDirs, { cniVersion: '1.0.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }] });
    await this.startProber();
    await this.register();
    const client = new KubeClient(kubeconfigConnection(o.cp.kubeconfig));
    this.pods = new Reflector<any>({
      client,
      path: '/api/v1/pods',
      params: { fieldSelector: `spec.nodeName=${this.name}` },
      slim: (p) => p,
      key: (p) => p.metadata.uid,
      resourceVersion: (p) => p.metadata.resourceVersion,
      onError: (e) => o.log('warn', 'pod watch failed; retrying', { error: e.message }),
    });
    this.pods.on('upsert', (p) => this.onPod(p));
    this.pods.on('delete', (p) => this.onPodGone(p));
    await this.pods.start();
    o.log('info', 'node ready', { node: this.name, pod_cidr: o.podCidr, netns: this.nodeNetns });
  }

  /** The Node object, Ready, with room for pods; the scheduler needs nothing more. */
  private async register(): Promise<void> {
    const cp = this.o.cp;
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: this.name, labels: { 'kubernetes.io/hostname': this.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch } },
      spec: { podCIDR: this.o.podCidr, podCIDRs: [this.o.podCidr] },
    };
    const created = await cp.request('POST', '/api/v1/nodes', node);
    if (created.status !== 201 && created.status !== 409) throw new Error(`cannot register node ${this.name}: HTTP ${created.status}: ${created.body?.message}`);
    const t = now();
    const capacity = { cpu: '2', memory: '8Gi', pods: '110', 'ephemeral-storage': '20Gi' };
    const status = {
      status: {
        capacity,
        allocatable: capacity,
        addresses: [
          { type: 'InternalIP', address: this.gateway },
          { type: 'Hostname', address: this.name },
        ],
        conditions: [
          { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'switchyard lab node is posting ready status', lastHeartbeatTime: t, lastTransitionTime: t },
          ...['MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({ type, status: 'False', reason: `KubeletHas${type === 'PIDPressure' ? 'Sufficient' : 'No'}${type.replace('Pressure', '')}`, lastHeartbeatTime: t, lastTransitionTime: t })),
        ],
        nodeInfo: {
          kubeletVersion: `${K8S_VERSION}-switchyard-lab`,
          kubeProxyVersion: '',
          containerRuntimeVersion: 'switchyard-lab://0.1.0',
          operatingSystem: 'linux',
          architecture: process.arch === 'x64' ? 'amd64' : process.arch,
          osImage: 'switchyard lab',
          kernelVersion: fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
          machineID: '',
          systemUUID: '',
          bootID: '',
        },
      },
    };
    const r = await cp.request('PATCH', `/api/v1/nodes/${this.name}/status`, status, 'application/merge-patch+json');
    if (r.status !== 200) throw new Error(`cannot set node ${this.name} Ready: HTTP ${r.status}: ${r.body?.message}`);
    // Admission taints a new node not-ready; the node-lifecycle controller (not run in the lab) lifts it once the node is Ready.
    const lifted = await cp.request('PATCH', `/api/v1/nodes/${this.name}`, { spec: { taints: null } }, 'application/merge-patch+json');
    if (lifted.status !== 200) throw new Error(`cannot lift the not-ready taint of node ${this.name}: HTTP ${lifted.status}: ${lifted.body?.message}`);
  }

  private async startProber(): Promise<void> {
    const p = spawn('nsenter', [`--net=/var/run/netns/${this.nodeNetns}`, process.execPath, distScript('lab/src/prober.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.prober = p;
    const lines = readline.createInterface({ input: p.stdout! });
    await new Promise<void>((resolve, reject) => {
      p.once('exit', (code) => reject(new Error(`the lab prober exited ${code} before it was ready`)));
      lines.on('line', (l) => {
        const m = JSON.parse(l);
        if (m.event === 'ready') return resolve();
        this.probeWaiters.get(m.id)?.(m);
        this.probeWaiters.delete(m.id);
      });
    });
  }

  /** Sandboxes on this node, for the lab's exec and for tests. */
  sandbox(namespace: string, name: string): Sandbox | undefined {
    return [...this.sandboxes.values()].find((s) => s.namespace === namespace && s.name === name && !s.stopping);
  }

  // ───────────────────────── pod lifecycle ─────────────────────────

  private onPod(p: any): void {
    if (this.stopped) return;
    const uid = p.metadata.uid;
    let sb = this.sandboxes.get(uid);
    if (!sb) {
      if (p.metadata.deletionTimestamp) {
        // Never started here: nothing to tear down but the object.
        void this.finalize(p);
        return;
      }
      if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return;
      sb = this.newSandbox(p);
      this.sandboxes.set(uid, sb);
      const s = sb;
      s.queue = s.queue.then(() => this.runPod(s)).catch((e: Error) => this.o.log('error', 'pod start failed', { pod: `${s.namespace}/${s.name}`, error: e.message }));
      return;
    }
    sb.pod = p;
    if (p.metadata.deletionTimestamp && !sb.stopping) {
      sb.stop();
      const s = sb;
      const grace = Math.min(Number(p.metadata.deletionGracePeriodSeconds ?? 30), 30);
      s.queue = s.queue.then(() => this.killPod(s, grace, 'deleted')).then(() => this.finalize(p)).catch((e: Error) => this.o.log('error', 'pod teardown failed', { pod: `${s.namespace}/${s.name}`, error: e.message }));
    }
  }

  /** The object went away without a graceful delete (force delete): tear down what is left. */
  private onPodGone(p: any): void {
    const sb = this.sandboxes.get(p.metadata.uid);
    if (!sb || sb.stopping) return;
    sb.stop();
    sb.queue = sb.queue.then(() => this.killPod(sb, 0, 'force-deleted')).catch((e: Error) => this.o.log('error', 'pod teardown failed', { pod: `${sb.namespace}/${sb.name}`, error: e.message }));
  }

  private newSandbox(p: any): Sandbox {
    const uid: string = p.metadata.uid;
    const containerId = uid.replace(/-/g, '');
    const logDir = path.join(this.logRoot, `${p.metadata.namespace}_${p.metadata.name}_${uid}`);
    const containers: Container[] = [
      ...(p.spec.initContainers ?? []).map((spec: ContainerSpec) => ({ spec, init: true, sidecar: spec.restartPolicy === 'Always' })),
      ...p.spec.containers.map((spec: ContainerSpec) => ({ spec, init: false, sidecar: false })),
    ].map((c) => ({ ...c, state: { waiting: { reason: 'ContainerCreating' } }, restartCount: 0, ready: false, started: false, execs: new Set<ChildProcess>() }));
    return {
      uid,
      namespace: p.metadata.namespace,
      name: p.metadata.name,
      pod: p,
      netns: '',
      netnsPath: '',
      cgroup: '',
      inv: {
        containerId,
        netnsPath: '',
        ifname: 'eth0',
        args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: p.metadata.namespace, K8S_POD_NAME: p.metadata.name, K8S_POD_UID: uid, K8S_POD_INFRA_CONTAINER_ID: containerId },
      },
      ips: [],
      logDir,
      containers,
      phase: 'Pending',
      initialized: false,
      startTime: now(),
      stopping: false,
      ...stopSignal(),
      queue: Promise.resolve(),
    };
  }

  private async runPod(sb: Sandbox): Promise<void> {
    const pod = `${sb.namespace}/${sb.name}`;
    fs.mkdirSync(sb.logDir, { recursive: true });
    // What `switchyard logs` needs to pick a default container, as kubectl does.
    fs.writeFileSync(path.join(sb.logDir, 'pod.json'), JSON.stringify({ namespace: sb.namespace, name: sb.name, uid: sb.uid, containers: sb.containers.map((c) => ({ name: c.spec.name, init: c.init })) }));
    sb.cgroup = this.o.lab.addCgroupAt('kubepods', `pod${sb.uid}`);
    sb.netns = this.o.lab.addNetns(`pod-${sb.uid.slice(0, 8)}`);
    sb.netnsPath = `/var/run/netns/${sb.netns}`;
    sb.inv.netnsPath = sb.netnsPath;
    await this.writeStatus(sb);

    // The network, retried with back-off as the kubelet retries sandbox creation.
    for (let attempt = 0; !sb.stopping; attempt++) {
      const started = Date.now();
      try {
        await this.loopback.add(sb.inv);
        sb.network = this.podNetwork();
        const runs = await sb.network.add(sb.inv);
        sb.cniResult = runs[runs.length - 1].output;
        sb.ips = (sb.cniResult?.ips ?? []).map((i: { address: string }) => i.address.split('/')[0]);
        this.o.log('info', 'pod network ready', { pod, ips: sb.ips.join(','), plugins: runs.map((r) => `${r.plugin}:${Math.round(r.ms)}ms`).join(','), duration_ms: Date.now() - started });
        break;
      } catch (e) {
        const wait = RESTART_BACKOFF_MS[Math.min(attempt, RESTART_BACKOFF_MS.length - 1)];
        this.o.log('warn', 'pod network failed; CNI DEL, then retrying', { pod, attempt: attempt + 1, retry_in_ms: wait, error: (e as Error).message });
        for (const c of sb.containers) c.state = { waiting: { reason: 'CreatePodSandboxError', message: (e as Error).message } };
        this.event(sb, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${(e as Error).message}`);
        await this.writeStatus(sb);
        await sb.network?.del(sb.inv).catch(() => undefined);
        await this.sleepUnlessStopping(sb, wait);
      }
    }
    if (sb.stopping) return;

    for (const c of sb.containers.filter((x) => x.init)) {
      if (sb.stopping) return;
      if (c.sidecar) {
        this.startContainer(sb, c);
        await Promise.race([c.postStarted, sb.stopped]);
        await this.waitStarted(sb, c);
      } else {
        // A regular init container runs to completion; failures restart it (restartPolicy Never fails the pod).
        for (;;) {
          this.startContainer(sb, c);
          await c.exited;
          const t = c.state as { terminated?: { exitCode: number } };
          if (t.terminated?.exitCode === 0 || sb.stopping) break;
          if (sb.pod.spec.restartPolicy === 'Never') {
            sb.phase = 'Failed';
            await this.writeStatus(sb);
            return;
          }
          await this.sleepUnlessStopping(sb, RESTART_BACKOFF_MS[Math.min(c.restartCount, RESTART_BACKOFF_MS.length - 1)]);
          c.restartCount++;
        }
      }
    }
    sb.initialized = true;
    sb.phase = 'Running';
    for (const c of sb.containers.filter((x) => !x.init)) {
      if (sb.stopping) return;
      this.startContainer(sb, c);
      // As the kubelet: the next container starts once this one's postStart hook has returned
      // (or the pod is being deleted: teardown waits for this loop).
      await Promise.race([c.postStarted, sb.stopped]);
    }
    await this.writeStatus(sb);
  }

  /** The pod network: the active file in the conf dir, parsed (a single-plugin .conf becomes a one-plugin list). */
  private podNetwork(): CniRuntime {
    const file = activeConfig(this.o.cniConfDir);
    if (!file) throw new Error(`network plugin is not ready: no CNI configuration in ${this.o.cniConfDir}`);
    let conf: any;
    try {
      conf = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`network plugin is not ready: ${file} is not valid JSON (${(e as Error).message})`);
    }
    const { cniVersion, name } = conf;
    const list: NetworkList = Array.isArray(conf.plugins) ? conf : { cniVersion, name, plugins: [conf] };
    return new CniRuntime(this.nodeNetns, this.o.cniBinDirs, list);
  }

  /** Waits ms, or less if the pod starts stopping (the node's stop() stops every pod). */
  private sleepUnlessStopping(sb: Sandbox, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([new Promise<void>((r) => (timer = setTimeout(r, ms))), sb.stopped]).finally(() => clearTimeout(timer));
  }

  /** The environment the kubelet gives a container: its env (values, downward API, $(VAR) references), HOSTNAME. */
  private env(sb: Sandbox, c: ContainerSpec): Record<string, string> {
    const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOSTNAME: sb.name };
    const field = (fp: string): string | undefined => {
      const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fp);
      if (label) return sb.pod.metadata[label[1]]?.[label[2]];
      return (
        {
          'metadata.name': sb.name,
          'metadata.namespace': sb.namespace,
          'metadata.uid': sb.uid,
          'spec.nodeName': this.name,
          'spec.serviceAccountName': sb.pod.spec.serviceAccountName,
          'status.podIP': sb.ips[0],
          'status.hostIP': this.gateway,
        } as Record<string, string | undefined>
      )[fp];
    };
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (e.valueFrom?.fieldRef) {
        const v = field(e.valueFrom.fieldRef.fieldPath);
        if (v !== undefined) env[e.name] = v;
      }
    }
    return env;
  }

  private startContainer(sb: Sandbox, c: Container): void {
    const pod = `${sb.namespace}/${sb.name}`;
    let argv: string[];
    const env = this.env(sb, c.spec);
    try {
      argv = containerArgv(c.spec).map((a) => expand(a, env));
    } catch (e) {
      const reason = e instanceof ImageNotAvailable ? e.reason : 'CreateContainerError';
      c.state = { waiting: { reason, message: (e as Error).message } };
      c.exited = Promise.resolve();
      c.postStarted = Promise.resolve();
      this.o.log('warn', 'container cannot start', { pod, container: c.spec.name, reason, error: (e as Error).message });
      this.event(sb, 'Warning', 'Failed', `Error: ${reason}: ${(e as Error).message}`, c.spec.name);
      this.scheduleStatus(sb);
      return;
    }
    const dir = path.join(sb.logDir, c.spec.name);
    fs.mkdirSync(dir, { recursive: true });
    const out = fs.openSync(path.join(dir, `${c.restartCount}.log`), 'a');
    const { proc, uid } = this.spawnInPod(sb, c.spec, argv, env, ['ignore', out, out]);
    fs.closeSync(out);
    c.proc = proc;
    const startedAt = now();
    c.state = { running: { startedAt } };
    c.started = !c.spec.startupProbe;
    c.ready = false;
    this.o.log('info', 'container started', { pod, container: c.spec.name, pid: proc.pid, uid, restart: c.restartCount, argv: argv.join(' ').slice(0, 200) });
    this.event(sb, 'Normal', 'Started', `Started container ${c.spec.name}`, c.spec.name);
    c.exited = new Promise<void>((resolve) =>
      proc.on('exit', (code, signal) => {
        if (c.probeTimer) clearTimeout(c.probeTimer);
        if (c.livenessTimer) clearTimeout(c.livenessTimer);
        for (const x of c.execs) x.kill('SIGKILL');
        c.proc = undefined;
        c.ready = false;
        const exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
        c.state = { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt: now() } };
        this.o.log(exitCode === 0 || sb.stopping ? 'info' : 'warn', 'container exited', { pod, container: c.spec.name, exit_code: exitCode, signal: signal ?? undefined });
        resolve();
        if (!sb.stopping && !this.stopped) void this.afterExit(sb, c, exitCode);
        this.scheduleStatus(sb);
      }),
    );
    this.runProbes(sb, c);
    c.postStarted = this.postStart(sb, c, proc);
    this.scheduleStatus(sb);
  }

  /**
   * The postStart hook of this run of c. A failed hook kills the container,
   * which then restarts per restartPolicy, as with the kubelet.
   */
  private async postStart(sb: Sandbox, c: Container, proc: ChildProcess): Promise<void> {
    const hook = c.spec.lifecycle?.postStart;
    if (!hook) return;
    const pod = `${sb.namespace}/${sb.name}`;
    const t = Date.now();
    const r = await this.runAction(sb, c, hook, HOOK_TIMEOUT_MS);
    if (c.proc !== proc) return; // the container is gone; its exit is what is reported
    if (r.ok) {
      this.o.log('info', 'postStart hook done', { pod, container: c.spec.name, duration_ms: Date.now() - t });
      return;
    }
    this.o.log('warn', 'postStart hook failed; killing the container', { pod, container: c.spec.name, detail: r.detail });
    this.event(sb, 'Warning', 'FailedPostStartHook', `PostStartHook failed: ${r.detail}`, c.spec.name);
    proc.kill('SIGKILL');
  }

  /**
   * argv in the pod's netns and cgroup (see inCgroup) as the container's user (runAsUser/runAsGroup,
   * pod then container); nsenter and setpriv exec in turn, so the pid is the container's for signals.
   */
  private spawnInPod(sb: Sandbox, c: ContainerSpec, argv: string[], env: Record<string, string>, stdio: StdioOptions): { proc: ChildProcess; uid: number } {
    const sec = { ...(sb.pod.spec.securityContext ?? {}), ...(c.securityContext ?? {}) };
    const uid = Number(sec.runAsUser ?? 0);
    const gid = Number(sec.runAsGroup ?? uid);
    const user = ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...(sec.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []), '--'];
    const [cmd, ...args] = inCgroup(['nsenter', `--net=${sb.netnsPath}`, ...user, ...argv]);
    const proc = spawn(cmd, args, {
      env: { ...env, SY_CGROUP: sb.cgroup },
      stdio,
      cwd: c.workingDir && fs.existsSync(c.workingDir) ? c.workingDir : '/',
    });
    return { proc, uid };
  }

  /** restartPolicy: Always (and native sidecars) restart; OnFailure restarts non-zero exits; the pod's phase follows. */
  private async afterExit(sb: Sandbox, c: Container, exitCode: number): Promise<void> {
    if (c.init && !c.sidecar) return; // runPod drives init containers
    const policy = c.sidecar ? 'Always' : sb.pod.spec.restartPolicy ?? 'Always';
    if (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0)) {
      const wait = RESTART_BACKOFF_MS[Math.min(c.restartCount, RESTART_BACKOFF_MS.length - 1)];
      c.lastState = c.state;
      c.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${wait / 1000}s restarting failed container=${c.spec.name} pod=${sb.name}` } };
      this.event(sb, 'Warning', 'BackOff', `Back-off restarting failed container ${c.spec.name} in pod ${sb.name}`, c.spec.name);
      this.scheduleStatus(sb);
      await this.sleepUnlessStopping(sb, wait);
      if (sb.stopping || this.stopped) return;
      c.restartCount++;
      this.startContainer(sb, c);
      return;
    }
    const apps = sb.containers.filter((x) => !x.init);
    if (apps.every((x) => 'terminated' in x.state)) {
      sb.phase = apps.every((x) => 'terminated' in x.state && x.state.terminated.exitCode === 0) ? 'Succeeded' : 'Failed';
      // A finished pod's sidecars are stopped, as the kubelet does for native sidecars.
      await this.stopContainers(sb, sb.containers.filter((x) => x.sidecar), 5);
      this.scheduleStatus(sb);
    }
  }

  // ───────────────────────── probes ─────────────────────────

  private namedPort(c: ContainerSpec, port: number | string): number {
    if (typeof port === 'number') return port;
    const hit = c.ports?.find((p) => p.name === port);
    return hit ? hit.containerPort : Number(port);
  }

  /**
   * One probe or hook action against c: exec runs in the sandbox as the
   * container's user (argv[0] resolved in its image), HTTP and TCP go from the
   * node's netns to the pod IP, sleep waits.
   */
  private async runAction(sb: Sandbox, c: Container, a: Action, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
    if (a.exec) {
      const argv = inImage(c.spec.image, a.exec.command);
      const { proc } = this.spawnInPod(sb, c.spec, argv, this.env(sb, c.spec), ['ignore', 'pipe', 'pipe']);
      c.execs.add(proc);
      let output = '';
      const keep = (d: Buffer) => (output = (output + d.toString()).slice(-300));
      proc.stdout!.on('data', keep);
      proc.stderr!.on('data', keep);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        proc.kill('SIGKILL');
      }, timeoutMs);
      const code = await new Promise<number | null>((r) => proc.on('close', r));
      clearTimeout(timer);
      c.execs.delete(proc);
      const said = output.trim() ? `: ${output.trim().split('\n').slice(-2).join(' ')}` : '';
      return { ok: code === 0, detail: timedOut ? `command ${JSON.stringify(a.exec.command)} timed out after ${timeoutMs / 1000}s` : `command ${JSON.stringify(a.exec.command)} exited ${code}${said}` };
    }
    if (a.sleep) {
      const ms = Math.min(a.sleep.seconds * 1000, timeoutMs);
      await new Promise((r) => setTimeout(r, ms));
      return { ok: true, detail: `slept ${ms / 1000}s` };
    }
    const req = a.httpGet
      ? { type: 'http', host: a.httpGet.host ?? sb.ips[0], port: this.namedPort(c.spec, a.httpGet.port), path: a.httpGet.path ?? '/' }
      : a.tcpSocket
        ? { type: 'tcp', host: sb.ips[0], port: this.namedPort(c.spec, a.tcpSocket.port) }
        : undefined;
    if (!req || !this.prober?.stdin?.writable) return { ok: false, detail: 'unsupported action' };
    const id = ++this.probeSeq;
    return new Promise((resolve) => {
      this.probeWaiters.set(id, resolve);
      this.prober!.stdin!.write(JSON.stringify({ id, timeoutMs, ...req }) + '\n');
    });
  }

  /** Startup probe, then readiness: each on its own period, until the container exits. */
  private runProbes(sb: Sandbox, c: Container): void {
    const readiness = c.spec.readinessProbe;
    const startup = c.spec.startupProbe;
    let failures = 0;
    let lastDetail = '';
    const loop = async (): Promise<void> => {
      if (!c.proc || sb.stopping || this.stopped) return;
      const p = !c.started ? startup! : readiness;
      if (!p) return;
      const r = await this.runAction(sb, c, p, (p.timeoutSeconds ?? 1) * 1000);
      if (!c.proc) return;
      if (!c.started) {
        if (r.ok) {
          c.started = true;
          this.o.log('info', 'startup probe passed', { pod: `${sb.namespace}/${sb.name}`, container: c.spec.name });
          this.scheduleStatus(sb);
          this.runLiveness(sb, c);
          if (!readiness) c.ready = true;
        } else if (++failures >= (p.failureThreshold ?? 3)) {
          this.o.log('warn', 'startup probe failed; killing the container', { pod: `${sb.namespace}/${sb.name}`, container: c.spec.name, detail: r.detail });
          this.event(sb, 'Warning', 'Unhealthy', `Startup probe failed: ${r.detail}`, c.spec.name);
          c.proc.kill('SIGKILL');
          return;
        }
      } else if (r.ok !== c.ready) {
        c.ready = r.ok;
        if (!r.ok && r.detail !== lastDetail) {
          this.o.log('warn', 'readiness probe failed', { pod: `${sb.namespace}/${sb.name}`, container: c.spec.name, detail: r.detail });
          this.event(sb, 'Warning', 'Unhealthy', `Readiness probe failed: ${r.detail}`, c.spec.name);
        }
        lastDetail = r.ok ? '' : r.detail;
        this.scheduleStatus(sb);
      }
      c.probeTimer = setTimeout(() => void loop(), (p.periodSeconds ?? 10) * 1000);
    };
    if (!startup) this.runLiveness(sb, c);
    if (!startup && !readiness) {
      c.started = true;
      c.ready = true;
      return;
    }
    if (!startup) c.started = true;
    c.probeTimer = setTimeout(() => void loop(), ((startup ?? readiness)!.initialDelaySeconds ?? 0) * 1000);
  }

  /**
   * The liveness probe, from the moment the container has started: after
   * failureThreshold failures in a row the container is stopped (preStop,
   * SIGTERM, SIGKILL after its grace period) and restarted per restartPolicy.
   */
  private runLiveness(sb: Sandbox, c: Container): void {
    const p = c.spec.livenessProbe;
    const proc = c.proc;
    if (!p || !proc) return;
    const pod = `${sb.namespace}/${sb.name}`;
    let failures = 0;
    const loop = async (): Promise<void> => {
      if (c.proc !== proc || sb.stopping || this.stopped) return;
      const r = await this.runAction(sb, c, p, (p.timeoutSeconds ?? 1) * 1000);
      if (c.proc !== proc || sb.stopping || this.stopped) return;
      if (r.ok) failures = 0;
      else {
        failures++;
        this.event(sb, 'Warning', 'Unhealthy', `Liveness probe failed: ${r.detail}`, c.spec.name);
        if (failures >= (p.failureThreshold ?? 3)) {
          this.o.log('warn', 'liveness probe failed; restarting the container', { pod, container: c.spec.name, failures, detail: r.detail });
          this.event(sb, 'Normal', 'Killing', `Container ${c.spec.name} failed liveness probe, will be restarted`, c.spec.name);
          const grace = Math.min(p.terminationGracePeriodSeconds ?? sb.pod.spec.terminationGracePeriodSeconds ?? 30, 30);
          await this.stopContainer(sb, c, Date.now() + grace * 1000);
          return;
        }
      }
      c.livenessTimer = setTimeout(() => void loop(), (p.periodSeconds ?? 10) * 1000);
    };
    c.livenessTimer = setTimeout(() => void loop(), (p.initialDelaySeconds ?? 0) * 1000);
  }

  private async waitStarted(sb: Sandbox, c: Container): Promise<void> {
    while (!c.started && !sb.stopping && !this.stopped) {
      if (!c.proc) {
        // Exited before its startup probe passed: afterExit restarts it.
        await this.sleepUnlessStopping(sb, 100);
        continue;
      }
      await Promise.race([c.exited, this.sleepUnlessStopping(sb, 50)]);
    }
  }

  // ───────────────────────── status ─────────────────────────

  private containerStatus(c: Container): Record<string, unknown> {
    return {
      name: c.spec.name,
      image: c.spec.image ?? '',
      imageID: '',
      containerID: c.proc ? `switchyard-lab://${c.proc.pid}` : undefined,
      ready: c.ready,
      started: c.started && 'running' in c.state,
      restartCount: c.restartCount,
      state: c.state,
      ...(c.lastState ? { lastState: c.lastState } : {}),
    };
  }

  private podStatus(sb: Sandbox): Record<string, unknown> {
    const t = now();
    const apps = sb.containers.filter((c) => !c.init);
    const containersReady = apps.every((c) => c.ready) && sb.containers.filter((c) => c.sidecar).every((c) => c.ready);
    const cond = (type: string, ok: boolean, reason?: string) => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: t, lastProbeTime: null, ...(ok || !reason ? {} : { reason }) });
    return {
      phase: sb.phase,
      hostIP: this.gateway,
      hostIPs: [{ ip: this.gateway }],
      ...(sb.ips.length ? { podIP: sb.ips[0], podIPs: sb.ips.map((ip) => ({ ip })) } : {}),
      startTime: sb.startTime,
      conditions: [
        cond('PodReadyToStartContainers', sb.ips.length > 0),
        cond('Initialized', sb.initialized, 'ContainersNotInitialized'),
        cond('Ready', containersReady && sb.phase === 'Running', 'ContainersNotReady'),
        cond('ContainersReady', containersReady, 'ContainersNotReady'),
        cond('PodScheduled', true),
      ],
      initContainerStatuses: sb.containers.filter((c) => c.init).map((c) => this.containerStatus(c)),
      containerStatuses: apps.map((c) => this.containerStatus(c)),
    };
  }

  /** Status changes are batched: one write per pod per tick. */
  private scheduleStatus(sb: Sandbox): void {
    if (sb.statusTimer || this.stopped) return;
    sb.statusTimer = setTimeout(() => {
      sb.statusTimer = undefined;
      void this.writeStatus(sb);
    }, 20);
  }

  private async writeStatus(sb: Sandbox): Promise<void> {
    if (this.stopped) return;
    const r = await this.o.cp
      .request('PATCH', `/api/v1/namespaces/${sb.namespace}/pods/${sb.name}/status`, { metadata: { uid: sb.uid }, status: this.podStatus(sb) }, 'application/merge-patch+json')
      .catch((e: Error) => ({ status: 0, body: { message: e.message } }));
    if (r.status !== 200 && r.status !== 404 && r.status !== 409) this.o.log('warn', 'pod status update failed', { pod: `${sb.namespace}/${sb.name}`, status: r.status, error: r.body?.message });
  }

  /** A core/v1 Event about the pod, as the kubelet records them: `kubectl describe pod` and `kubectl get events` show the node's story. */
  private event(sb: Sandbox, type: 'Normal' | 'Warning', reason: string, message: string, container?: string): void {
    if (this.closing) return;
    const t = now();
    void this.o.cp
      .request('POST', `/api/v1/namespaces/${sb.namespace}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${sb.name}.` },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: sb.namespace, name: sb.name, uid: sb.uid, ...(container ? { fieldPath: `spec.containers{${container}}` } : {}) },
        type,
        reason,
        message,
        source: { component: 'kubelet', host: this.name },
        reportingComponent: 'switchyard-lab-node',
        reportingInstance: this.name,
        firstTimestamp: t,
        lastTimestamp: t,
        count: 1,
      })
      .catch(() => undefined);
  }

  // ───────────────────────── teardown ─────────────────────────

  private async stopContainers(sb: Sandbox, cs: Container[], graceSeconds: number): Promise<void> {
    const deadline = Date.now() + graceSeconds * 1000;
    await Promise.all(cs.map((c) => this.stopContainer(sb, c, deadline)));
  }

  /** preStop hook, then SIGTERM, then SIGKILL at the deadline: the grace period covers both, as with the kubelet. */
  private async stopContainer(sb: Sandbox, c: Container, deadline: number): Promise<void> {
    const proc = c.proc;
    if (!proc) return;
    const pod = `${sb.namespace}/${sb.name}`;
    let timer: NodeJS.Timeout | undefined;
    const until = (ms: number) => new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), Math.max(0, ms))));
    const hook = c.spec.lifecycle?.preStop;
    if (hook) {
      const t = Date.now();
      const r = await Promise.race([this.runAction(sb, c, hook, Math.max(1, deadline - Date.now())), c.exited!.then(() => ({ ok: true, detail: 'exited' }))]);
      clearTimeout(timer);
      if (c.proc === proc) {
        if (r.ok) this.o.log('info', 'preStop hook done', { pod, container: c.spec.name, duration_ms: Date.now() - t });
        else {
          this.o.log('warn', 'preStop hook failed', { pod, container: c.spec.name, detail: r.detail });
          this.event(sb, 'Warning', 'FailedPreStopHook', `PreStopHook failed: ${r.detail}`, c.spec.name);
        }
      }
    }
    if (c.proc !== proc) return;
    proc.kill('SIGTERM');
    const outcome = await Promise.race([c.exited!, until(deadline - Date.now())]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      proc.kill('SIGKILL');
      await c.exited;
    }
  }

  /** App containers first, then native sidecars in reverse order, then the network, netns and cgroup. */
  private async killPod(sb: Sandbox, graceSeconds: number, why: string): Promise<void> {
    const pod = `${sb.namespace}/${sb.name}`;
    const started = Date.now();
    for (const c of sb.containers.filter((x) => x.proc)) this.event(sb, 'Normal', 'Killing', `Stopping container ${c.spec.name}`, c.spec.name);
    await this.stopContainers(sb, sb.containers.filter((c) => !c.init), graceSeconds);
    for (const c of sb.containers.filter((x) => x.init).reverse()) await this.stopContainers(sb, [c], Math.max(1, graceSeconds));
    if (sb.netns) {
      // DEL with the configuration ADD used, as runtimes cache it: a later config change does not strand the pod.
      await sb.network?.del(sb.inv, sb.cniResult).catch((e: Error) => this.o.log('warn', 'CNI DEL failed', { pod, error: e.message }));
      await this.loopback.del(sb.inv).catch(() => undefined);
      this.o.lab.removeNetns(sb.netns);
    }
    if (sb.cgroup) await this.o.lab.removeCgroup(sb.cgroup);
    this.sandboxes.delete(sb.uid);
    this.o.log('info', 'pod stopped', { pod, why, duration_ms: Date.now() - started });
  }

  /** Graceful deletion ends with the kubelet deleting the object for good. */
  private async finalize(p: any): Promise<void> {
    const r = await this.o.cp.request('DELETE', `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`, {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      gracePeriodSeconds: 0,
      preconditions: { uid: p.metadata.uid },
    });
    if (r.status !== 200 && r.status !== 404 && r.status !== 409) this.o.log('warn', 'pod delete failed', { pod: `${p.metadata.namespace}/${p.metadata.name}`, status: r.status });
  }

  /**
   * Runs argv in a pod's network namespace and cgroup as a container's user,
   * like `kubectl exec`, and returns its output.
   */
  async exec(namespace: string, name: string, container: string, argv: string[]): Promise<{ code: number | null; output: string }> {
    const sb = this.sandbox(namespace, name);
    if (!sb) throw new Error(`pod ${namespace}/${name} is not running on ${this.name}`);
    const c = sb.containers.find((x) => x.spec.name === container);
    if (!c) throw new Error(`pod ${namespace}/${name} has no container ${container}`);
    const { proc } = this.spawnInPod(sb, c.spec, inImage(c.spec.image, argv), this.env(sb, c.spec), ['ignore', 'pipe', 'pipe']);
    let output = '';
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((r) => proc.on('close', r));
    return { code, output };
  }

  /** Stops every pod (containers, CNI DEL) and the watch. The lab's cleanup removes the rest. */
  async stop(): Promise<void> {
    this.pods?.stop();
    this.closing = true;
    const pending = [...this.sandboxes.values()];
    for (const sb of pending) sb.stop();
    await Promise.all(pending.map((sb) => sb.queue.then(() => (this.sandboxes.has(sb.uid) ? this.killPod(sb, 2, 'lab stopping') : undefined)).catch(() => undefined)));
    this.stopped = true;
    this.prober?.stdin?.end();
    this.prober?.kill('SIGTERM');
  }
}

/** A sandbox's stopping flag, with a promise that settles when it is raised. */
function stopSignal(): { stopped: Promise<void>; stop: (this: { stopping: boolean }) => void } {
  let raise!: () => void;
  const stopped = new Promise<void>((r) => (raise = r));
  return {
    stopped,
    stop(this: { stopping: boolean }) {
      this.stopping = true;
      raise();
    },
  };
}

/** Kubernetes $(VAR) expansion: defined variables are replaced, $$(VAR) escapes, unknown references stay as written. */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name) => (m === '$$' ? '$' : name in env ? env[name] : m));
}
