/**
 * One node for agent tests, driven the way a container runtime drives it: a
 * node netns with Debian's bridge + host-local, then switchyard-cni, the
 * agent as a real process (restartable), a kubepods cgroup, and an
 * in-process list/watch API server for pods. Pods are sandboxes (API object,
 * pod cgroup, netns) that tests ADD and DEL through the CNI chain.
 */
import { randomUUID } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { projectRoot } from '../../native';
import { DEFAULT_CONFIG } from '../../webhook/src/config';
import { interceptionAnnotations } from '../../api/annotations';
import { podSettings } from '../../webhook/src/annotations';
import { MANAGED_LABEL } from '../../api/contract';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { AGENT_NODE_FLAGS } from '../../interceptor/src/agent/config';
import { CniRuntime, Invocation } from '../../lab/src/cni-runtime';
import { NetLab, NodeNs } from '../../lab/src/netlab';
import { Proc } from '../../lab/src/proc';
import { FakeApiServer } from '../../lab/src/fake-apiserver';

export const CNI_BIN = ['/usr/lib/cni', '/opt/cni/bin', path.join(projectRoot(), 'build', 'cni')];

export interface TestPod {
  name: string;
  uid: string;
  netns: string;
  netnsPath: string;
  cgroup: string;
  inv: Invocation;
  result?: { ips: { address: string }[] };
  ip?: string;
}

export interface AgentNodeOptions {
  /** The node's own /24, e.g. '10.70.0'. */
  nodeSubnet: string;
  /** The pods' host-local range, e.g. '10.71.0.0/16'. */
  podSubnet: string;
  nodeName?: string;
}

export class AgentNode {
  lab!: NetLab;
  node!: NodeNs;
  api!: FakeApiServer;
  tmp!: string;
  agent!: Proc;
  runtime!: CniRuntime;
  /** The node's primary network alone (bridge + host-local), for pods that another agent registers. */
  plainRuntime!: CniRuntime;
  socket!: string;
  configFile!: string;
  metricsPort = 0;
  dp!: Dataplane;
  readonly nodeName: string;
  private readonly defaults = interceptionAnnotations(podSettings({}, DEFAULT_CONFIG).interception);

  constructor(private readonly opts: AgentNodeOptions) {
    this.nodeName = opts.nodeName ?? 'node-a';
  }

  /** Sets the node up; with agent: false, the test starts the agent itself (startAgent). */
  async start(opts: { agent?: boolean } = {}): Promise<void> {
    this.lab = new NetLab();
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sylab-agent-'));
    this.node = this.lab.addNode('node', this.opts.nodeSubnet);
    const kubepods = this.lab.addCgroupAt('kubepods');
    this.api = new FakeApiServer('/api/v1/pods', 'PodList');
    const url = await this.api.start();
    const kubeconfig = path.join(this.tmp, 'kubeconfig');
    fs.writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters: [{name: lab, cluster: {server: "${url}"}}]\nusers: [{name: agent, user: {}}]\ncontexts: [{name: lab, context: {cluster: lab, user: agent}}]\ncurrent-context: lab\n`);
    this.socket = path.join(this.tmp, 'agent.sock');
    this.configFile = path.join(this.tmp, 'agent.yaml');
    fs.writeFileSync(
      this.configFile,
      JSON.stringify({
        nodeName: this.nodeName,
        cgroupPath: this.lab.cgroupRoot,
        podCgroupRoot: kubepods,
        pinRoot: this.lab.pinRoot,
        socketPath: this.socket,
        metricsPort: 0,
        metricsHost: '127.0.0.1',
        stateDir: path.join(this.tmp, 'state'),
        kubeconfig,
        podWaitMs: 500,
        serviceLoadBalancing: false, // this API server serves pods only; test/kernel/lb.test.ts covers Services
        cniConfDir: path.join(this.tmp, 'net.d'),
      }),
    );
    const bridge = { type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', subnet: this.opts.podSubnet, dataDir: path.join(this.tmp, 'ipam'), routes: [{ dst: '0.0.0.0/0' }] } };
    const conflist = { cniVersion: '1.0.0', name: 'lab-net', plugins: [bridge, { type: 'switchyard-cni', agentSocket: this.socket, logFile: path.join(this.tmp, 'cni.log') }] };
    // The runtime reads it from memory; the file is what the agent's node report reads, as a node's would be.
    fs.mkdirSync(path.join(this.tmp, 'net.d'));
    fs.writeFileSync(path.join(this.tmp, 'net.d', '10-lab.conflist'), JSON.stringify(conflist));
    this.runtime = new CniRuntime(this.node.netns, CNI_BIN, conflist);
    this.plainRuntime = new CniRuntime(this.node.netns, CNI_BIN, { cniVersion: '1.0.0', name: 'lab-net', plugins: [bridge] });
    if (opts.agent === false) return;
    await this.startAgent();
    this.dp = Dataplane.adopt({ pinRoot: this.lab.pinRoot, cgroupPath: this.lab.cgroupRoot });
  }

  async stop(): Promise<void> {
    this.dp?.close();
    await this.agent?.stop('SIGTERM');
    await this.api?.stop();
    await this.lab?.cleanup();
    if (this.tmp) fs.rmSync(this.tmp, { recursive: true, force: true });
  }

  /** Starts the agent process and waits for its ready line. */
  async startAgent(env: NodeJS.ProcessEnv = {}): Promise<void> {
    this.spawnAgent(env);
    const ready = await this.agent.waitForJson((o) => o.event === 'ready', 30000);
    this.metricsPort = Number(ready.metricsPort);
  }

  /** Starts the agent process without waiting for it. */
  spawnAgent(env: NodeJS.ProcessEnv = {}): Proc {
    this.agent = this.lab.spawn({ netns: null, cgroup: null }, [process.execPath, ...AGENT_NODE_FLAGS, path.join(projectRoot(), 'dist/interceptor/src/agent/main.js'), 'run', '--config', this.configFile], { label: 'agent', env });
    return this.agent;
  }

  apiPod(name: string, uid: string, mesh: boolean, annotations: Record<string, string> = {}) {
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'apps', uid, labels: mesh ? { [MANAGED_LABEL]: 'true' } : {}, annotations: mesh ? { ...this.defaults, ...annotations } : annotations },
      spec: { nodeName: this.nodeName, containers: [{ name: 'app', image: 'app' }] },
    };
  }

  /** What the kubelet and runtime do before CNI ADD: API object, pod cgroup, sandbox netns. */
  sandbox(name: string, mesh: boolean, opts: { inApi?: boolean; annotations?: Record<string, string> } = {}): TestPod {
    const uid = randomUUID();
    if (opts.inApi !== false) this.api.upsert(this.apiPod(name, uid, mesh, opts.annotations));
    const cgroup = this.lab.addCgroupAt('kubepods', `pod${uid}`);
    const netns = this.lab.addNetns(name);
    const netnsPath = `/var/run/netns/${netns}`;
    const containerId = uid.replace(/-/g, '');
    return {
      name,
      uid,
      netns,
      netnsPath,
      cgroup,
      inv: { containerId, netnsPath, ifname: 'eth0', args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'apps', K8S_POD_NAME: name, K8S_POD_UID: uid, K8S_POD_INFRA_CONTAINER_ID: containerId } },
    };
  }

  /** CNI ADD through the whole chain; the pod gets its IP from the result. */
  async add(p: TestPod) {
    const runs = await this.runtime.add(p.inv);
    p.result = runs[runs.length - 1].output as TestPod['result'];
    p.ip = p.result!.ips[0].address.split('/')[0];
    return runs;
  }

  agentGet(urlPath: string): Promise<any> {
    return new Promise((resolve, reject) =>
      http.get({ socketPath: this.socket, path: urlPath, agent: false }, (res) => {
        let d = '';
        res.on('data', (c) => (d += c)).on('end', () => resolve(JSON.parse(d)));
      }).on('error', reject),
    );
  }

  /** One request to the agent's CNI API, as switchyard-cni makes it (a string body is sent as it is). */
  agentPost(urlPath: string, body: unknown): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.socket, path: urlPath, method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        let d = '';
        res.on('data', (c) => (d += c)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(d) }));
      });
      req.on('error', (e) => reject(new Error(`POST ${urlPath}: ${e.message}; agent exit ${this.agent.exitCode} ${this.agent.stderr.slice(-1500)}`)));
      req.end(typeof body === 'string' ? body : JSON.stringify(body));
    });
  }

  addBody(p: TestPod, ips: string[], ifname = 'eth0') {
    return { containerId: p.inv.containerId, netns: p.netnsPath, ifname, podNamespace: 'apps', podName: p.name, podUid: p.uid, ips };
  }
}
