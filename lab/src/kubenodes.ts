/**
 * Real Kubernetes nodes on this machine: Debian's containerd and runc and the
 * kubelet and kube-proxy built with the control plane, one set per node, each
 * node in a network namespace of its own joined to the others by a fabric
 * namespace. What each node needs of the machine is made its own by
 * lab/node/node-init.sh (cgroups, fixed paths, bpffs, host sysctls).
 *
 *   host: kube-apiserver 127.0.0.1:<port> ── egress "cluster" ──▶ sylab-relay connect (unix socket)
 *                 ▲                                                     │ dials in the fabric
 *   fabric netns  │ 10.250.0.1:<port> (sylab-relay tcp) ◀── nodes, pods ▼
 *     bridge fab0 10.250.0.1/24, routes 10.244.<i>.0/24 via node i
 *       ├── node0 netns eth0 10.250.0.10: containerd, kubelet, kube-proxy; pods 10.244.0.0/24 on cni0
 *       └── node1 netns eth0 10.250.0.11: …                                pods 10.244.1.0/24 on cni0
 *
 * Every name carries the NetLab's id; stop() ends every process (cgroup.kill
 * on the node's subtree), removes the cgroups in every hierarchy, and the
 * NetLab removes the namespaces.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot } from '../../native';
import { PAUSE_IMAGE } from '../../images/src/specs';
import { k8sBinDir, ControlPlane } from './controlplane';
import { NetLab, sh } from './netlab';
import { cgroupMounts, recordMadeMountPoint, removeCgroupTree, removeMadeMountPoints } from './sweep';
import { Proc, eventually } from './proc';

/** The outside host's address on the nodes' segment (addOutsideHost). */
export const OUTSIDE_HOST = '10.250.0.200';
export const FABRIC_GATEWAY = '10.250.0.1';
const NODE_INIT = path.join(projectRoot(), 'lab', 'node', 'node-init.sh');
export const RELAY = path.join(projectRoot(), 'build', 'lab', 'sylab-relay');

/** Paths node-init.sh binds over with the node's own directories. */
const NODE_PATHS = ['/var/lib/kubelet', '/var/lib/containerd', '/run/containerd', '/var/lib/cni', '/var/log/pods', '/var/log/containers', '/etc/cni/net.d', '/opt/cni/bin', '/run/netns', '/run/switchyard', '/etc/kubernetes'];

export interface NodeInfo {
  name: string;
  index: number;
  ip: string;
  podCidr: string;
  netns: string;
  dir: string;
  /** node-init.sh: its mount namespace is the node's (nsenter -t <pid> -m). */
  pid?: number;
}

export interface HttpAnswer {
  /** 0: no answer (error holds curl's reason). */
  status: number;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: string;
  error?: string;
}

export interface OutsideHost {
  netns: string;
  ip: string;
  /** An HTTP GET from this host (curl, 5 s). */
  get(url: string): HttpAnswer;
}

function outsideGet(netns: string, url: string): HttpAnswer {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'curl', '-sS', '-i', '-m', '5', url], { encoding: 'utf8' });
  if (r.status !== 0) return { status: 0, headers: {}, body: '', error: (r.stderr || r.stdout).trim() };
  const [head, ...body] = r.stdout.split('\r\n\r\n');
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: body.join('\r\n') };
}

export class KubeNodes {
  readonly fabric: string;
  readonly egressSocket: string;
  readonly nodes: NodeInfo[] = [];
  private readonly procs: Proc[] = [];
  private readonly cgroupDirs: string[] = [];
  private readonly cgroupRel: string;

  constructor(
    private readonly lab: NetLab,
    private readonly dir: string,
  ) {
    this.fabric = lab.addNetns('fabric');
    sh('ip', ['-n', this.fabric, 'link', 'add', 'fab0', 'type', 'bridge']);
    sh('ip', ['-n', this.fabric, 'addr', 'add', `${FABRIC_GATEWAY}/24`, 'dev', 'fab0']);
    sh('ip', ['-n', this.fabric, 'link', 'set', 'fab0', 'up']);
    sh('ip', ['netns', 'exec', this.fabric, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    this.egressSocket = path.join(dir, 'egress.sock');
    this.cgroupRel = `${path.basename(lab.cgroupRoot)}/nodes`;
  }

  /**
   * A host outside the cluster on the nodes' segment (no route to pods or
   * Services, only the segment): where NodePorts are dialled from, as from a
   * client in the same rack.
   */
  addOutsideHost(): OutsideHost {
    const netns = this.lab.addNetns('outside');
    sh('ip', ['-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'out0', 'netns', this.fabric]);
    sh('ip', ['-n', this.fabric, 'link', 'set', 'out0', 'master', 'fab0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${OUTSIDE_HOST}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    return { netns, ip: OUTSIDE_HOST, get: (url) => outsideGet(netns, url) };
  }

  /** The HTTP CONNECT proxy the apiserver's egress selector uses; start it before the apiserver. */
  async startEgress(): Promise<void> {
    const p = Proc.start('egress-relay', [RELAY, 'connect', this.egressSocket, `/run/netns/${this.fabric}`]).tee(path.join(this.dir, 'egress-relay.log'));
    this.procs.push(p);
    await p.waitForLine((l) => l === 'ready');
  }

  /**
   * The apiserver at FABRIC_GATEWAY on its own port, for nodes and pods:
   * that is the endpoint it publishes for the `kubernetes` Service.
   */
  async startApiRelay(cp: ControlPlane): Promise<void> {
    const p = Proc.start('api-relay', [RELAY, 'tcp', `/run/netns/${this.fabric}`, `${FABRIC_GATEWAY}:${cp.apiPort}`, '-', `127.0.0.1:${cp.apiPort}`]).tee(path.join(this.dir, 'api-relay.log'));
    this.procs.push(p);
    await p.waitForLine((l) => l === 'ready');
  }

  private mkCgroup(dir: string, v2: boolean): void {
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      this.cgroupDirs.push(dir);
    }
    const parent = path.dirname(dir);
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      // v1 cpuset children start empty and refuse tasks until given their parent's.
      if (!v2 && fs.existsSync(path.join(dir, f)) && fs.readFileSync(path.join(dir, f), 'utf8').trim() === '') {
        fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(parent, f)));
      }
    }
  }

  /**
   * <mount>/<lab>/nodes/<name>/system in every hierarchy; on cgroup2 the
   * controllers kubelet needs are enabled from the lab's cgroup down to the
   * node's (whose processes are all in system/ and below).
   */
  private nodeCgroups(name: string): void {
    for (const { mount, v2 } of cgroupMounts()) {
      let d = mount;
      for (const s of [...this.cgroupRel.split('/'), name, 'system']) {
        if (v2 && d !== mount) enableControllers(d);
        d = path.join(d, s);
        this.mkCgroup(d, v2);
      }
    }
  }

  /** Creates, configures and starts one node; resolves when its Node is Ready. */
  async addNode(cp: ControlPlane, images: string): Promise<NodeInfo> {
    const index = this.nodes.length;
    const name = `lab-node${index}`;
    const ip = `10.250.0.${10 + index}`;
    const podCidr = `10.244.${index}.0/24`;
    const netns = this.lab.addNetns(`node${index}`);
    const dir = path.join(this.dir, 'nodes', name);
    const node: NodeInfo = { name, index, ip, podCidr, netns, dir };

    const peer = `n${index}`;
    sh('ip', ['-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', this.fabric]);
    sh('ip', ['-n', this.fabric, 'link', 'set', peer, 'master', 'fab0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', FABRIC_GATEWAY]);
    sh('ip', ['-n', this.fabric, 'route', 'add', podCidr, 'via', ip]);
    sh('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    for (const other of this.nodes) {
      sh('ip', ['-n', netns, 'route', 'add', other.podCidr, 'via', other.ip]);
      sh('ip', ['-n', other.netns, 'route', 'add', podCidr, 'via', ip]);
    }

    this.nodeCgroups(name);
    for (const p of NODE_PATHS) fs.mkdirSync(path.join(dir, 'fs', p), { recursive: true });
    for (const p of NODE_PATHS) {
      // Empty mount points on the host, each level made recorded so that stop() removes exactly those.
      const missing: string[] = [];
      for (let d = p; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
      for (const d of missing) {
        fs.mkdirSync(d);
        recordMadeMountPoint(d);
      }
    }
    for (const d of ['log', 'sysctl', 'pki']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    writeNodeFiles(cp, node, images, `${this.cgroupRel}/${name}`);

    const init = Proc.start(`node ${name}`, ['nsenter', `--net=/run/netns/${netns}`, '--', 'unshare', '--mount', '--propagation', 'slave', '--', 'bash', NODE_INIT, dir]).tee(
      path.join(dir, 'log', 'init.log'),
    );
    this.procs.push(init);
    node.pid = init.pid;
    await init.waitForLine((l) => l === 'ready', 120_000);
    this.nodes.push(node);
    await eventually(`Node ${name} Ready (its kubelet log: ${path.join(dir, 'log', 'kubelet.log')})`, async () => {
      if (init.exitCode !== null) throw new Error(`node ${name} stopped: ${init.stderr.trim()}`);
      const r = await cp.request('GET', `/api/v1/nodes/${name}`);
      return r.status === 200 && r.body.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    }, 120_000);
    return node;
  }

  /** The node's cgroup in the cgroup2 hierarchy, as the host sees it (its pods are under kubepods/). */
  cgroup2Dir(n: NodeInfo): string {
    const v2 = cgroupMounts().find((m) => m.v2);
    if (!v2) throw new Error('no cgroup2 hierarchy is mounted');
    return path.join(v2.mount, this.cgroupRel, n.name);
  }

  /** Imports an image archive into a running node's containerd (through its socket, from the host). */
  importImages(n: NodeInfo, archive: string): void {
    execFileSync('ctr', ['--address', path.join(n.dir, 'fs', 'run', 'containerd', 'containerd.sock'), '-n', 'k8s.io', 'images', 'import', archive], { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  /** Every process of every node (and the relays), then the cgroups in every hierarchy and the mount points made. */
  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM')));
    const errors: string[] = [];
    for (const { mount, v2 } of cgroupMounts()) {
      const root = path.join(mount, this.cgroupRel);
      // Every container and shim of the nodes goes with their cgroups; reaping takes a moment.
      await eventually(`the cgroups under ${root} to empty`, () => (removeCgroupTree(root, v2).length === 0 ? true : undefined), 5_000).catch((e: Error) =>
        errors.push(e.message),
      );
    }
    for (const d of this.cgroupDirs.reverse()) {
      try {
        if (fs.existsSync(d)) fs.rmdirSync(d);
      } catch (e) {
        errors.push(`${d}: ${(e as Error).message}`);
      }
    }
    // The nodes' own directories first: without them this lab no longer counts as one with nodes.
    fs.rmSync(path.join(this.dir, 'nodes'), { recursive: true, force: true });
    removeMadeMountPoints();
    if (errors.length) throw new Error(`lab nodes: cleanup incomplete:\n${errors.join('\n')}`);
  }
}

/** The controllers kubelet uses, where the parent offers them. */
function enableControllers(dir: string): void {
  const available = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  const want = available.filter((c) => ['cpu', 'cpuset', 'memory', 'pids', 'io', 'hugetlb'].includes(c));
  if (want.length) fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), want.map((c) => `+${c}`).join(' '));
}

/** node.env, containerd's and kubelet's and kube-proxy's configuration, credentials, and the node's main CNI network. */
function writeNodeFiles(cp: ControlPlane, n: NodeInfo, images: string, cgroupRel: string): void {
  const etc = path.join(n.dir, 'fs', 'etc', 'kubernetes');
  const put = (f: string, lines: string[]) => fs.writeFileSync(path.join(etc, f), lines.join('\n') + '\n');
  fs.writeFileSync(
    path.join(n.dir, 'node.env'),
    [`NODE_NAME='${n.name}'`, `NODE_IP='${n.ip}'`, `CGROUP_REL='${cgroupRel}'`, `BIN_DIR='${k8sBinDir()}'`, `IMAGES='${images}'`].join('\n') + '\n',
  );
  const server = `https://${FABRIC_GATEWAY}:${cp.apiPort}`;
  const kubelet = cp.issue(`${n.name}-kubelet`, `/O=system:nodes/CN=system:node:${n.name}`, 'extendedKeyUsage=clientAuth\n');
  const serving = cp.issue(`${n.name}-serving`, `/CN=${n.name}`, `subjectAltName=IP:${n.ip},DNS:${n.name}\nextendedKeyUsage=serverAuth\n`);
  const proxy = cp.issue(`${n.name}-proxy`, '/CN=system:kube-proxy', 'extendedKeyUsage=clientAuth\n');
  cp.writeKubeconfig(path.join(etc, 'kubelet.kubeconfig'), server, kubelet);
  cp.writeKubeconfig(path.join(etc, 'kube-proxy.kubeconfig'), server, proxy);
  put('resolv.conf', ['nameserver 127.0.0.53', 'options ndots:1']);
  put('containerd.toml', [
    'version = 2',
    // Its plugin directory would otherwise be /opt/containerd on the host.
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${path.join(n.dir, 'containerd-opt')}"`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    // No CAP_SYS_RESOURCE here: runc may not lower oom_score_adj below the daemon's own.
    '  restrict_oom_score_adj = true',
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "10010"',
    '  enable_selinux = false',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    '    bin_dir = "/opt/cni/bin"',
    '    conf_dir = "/etc/cni/net.d"',
    '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '    runtime_type = "io.containerd.runc.v2"',
  ]);
  put('kubelet.yaml', [
    'apiVersion: kubelet.config.k8s.io/v1beta1',
    'kind: KubeletConfiguration',
    `address: ${n.ip}`,
    'readOnlyPort: 0',
    'healthzBindAddress: 127.0.0.1',
    `authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: "${cp.caFile}"}}`,
    'authorization: {mode: Webhook}',
    `tlsCertFile: "${serving.cert}"`,
    `tlsPrivateKeyFile: "${serving.key}"`,
    'cgroupDriver: cgroupfs',
    'cgroupRoot: /',
    'containerRuntimeEndpoint: unix:///run/containerd/containerd.sock',
    'failSwapOn: false',
    'resolvConf: /etc/kubernetes/resolv.conf',
    'clusterDomain: cluster.local',
    // The lab's disk is the machine's: never evict for it.
    'evictionHard: {memory.available: "100Mi", nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%"}',
    'imageGCHighThresholdPercent: 100',
    'imageGCLowThresholdPercent: 99',
    'serializeImagePulls: false',
    'shutdownGracePeriod: 0s',
  ]);
  put('kube-proxy.yaml', [
    'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
    'kind: KubeProxyConfiguration',
    'clientConnection: {kubeconfig: /etc/kubernetes/kube-proxy.kubeconfig}',
    'mode: iptables',
    `hostnameOverride: ${n.name}`,
    'clusterCIDR: 10.244.0.0/16',
    // conntrack limits are the machine's: leave them.
    'conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}',
    'healthzBindAddress: 127.0.0.1:10256',
    'metricsBindAddress: 127.0.0.1:10249',
  ]);
  const subnet = n.podCidr.replace('.0/24', '');
  fs.writeFileSync(
    path.join(n.dir, 'fs', 'etc', 'cni', 'net.d', '10-lab.conflist'),
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: 'lab',
        plugins: [
          {
            type: 'bridge',
            bridge: 'cni0',
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: { type: 'host-local', ranges: [[{ subnet: n.podCidr, gateway: `${subnet}.1` }]], routes: [{ dst: '0.0.0.0/0' }] },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      },
      null,
      2,
    ),
  );
  for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) {
    execFileSync('cp', [path.join('/usr/lib/cni', p), path.join(n.dir, 'fs', 'opt', 'cni', 'bin', p)]);
  }
}
