/**
 * A real Kubernetes control plane on this machine, for the lab and the e2e
 * tests: etcd (Debian's etcd-server) and kube-apiserver (built by
 * scripts/lab-build.sh), with their own PKI, on loopback ports chosen at
 * start. Everything lives in one directory and is removed by stop().
 *
 *   PKI (openssl): CA → apiserver serving cert (127.0.0.1, kubernetes.default.svc),
 *                  admin client cert (O=system:masters), service-account key pair
 *   etcd ─ 127.0.0.1:<port> ─ kube-apiserver ─ https://127.0.0.1:<port>
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import { Proc } from './proc';
import { freePort } from './ports';
import { KubeClient, WriteMethod } from '../../lib/kube/client';
import { kubeconfigFromFile } from '../../lib/kube/config';

export { freePort };

export const K8S_VERSION = 'v1.31.4';

export function k8sBinDir(): string {
  return path.join(process.env.SWITCHYARD_CACHE ?? '/var/cache/switchyard', `k8s-${K8S_VERSION}`, 'bin');
}

/** What is missing to run the control plane here, or undefined. */
export function controlPlaneMissing(): string | undefined {
  for (const b of ['kube-apiserver', 'kubectl']) if (!fs.existsSync(path.join(k8sBinDir(), b))) return `${b} is not built: run scripts/lab-build.sh`;
  for (const b of ['etcd', 'openssl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' });
    } catch {
      return `${b} is not installed (apt-get install etcd-server openssl)`;
    }
  }
  return undefined;
}

/** The status code of a GET to a component's own self-signed health endpoint, or 0 if it does not answer. */
function httpsStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    https
      .get(url, { rejectUnauthorized: false, agent: false, timeout: 2000 }, (res) => resolve(res.resume().statusCode ?? 0))
      .on('error', () => resolve(0))
      .on('timeout', function (this: any) {
        this.destroy();
      });
  });
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A control plane whose cluster network is real nodes in network namespaces
 * (lab/src/kubenodes.ts): the apiserver stays on host loopback, advertises an
 * address the nodes reach through a relay, and sends everything it dials in
 * the cluster (webhooks by Service endpoints, kubelets for logs and exec, the
 * pod proxy) through an HTTP CONNECT proxy on a unix socket, as it would
 * through Konnectivity.
 */
export interface ClusterNetwork {
  /** The address pods and nodes reach the apiserver at (the `kubernetes` Service's endpoint). */
  advertiseAddress: string;
  /** The egress selector's HTTP CONNECT proxy for the "cluster" network. */
  egressSocket: string;
}

export class ControlPlane {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sylab-k8s-'));
  private readonly procs: Proc[] = [];
  apiPort = 0;
  url = '';

  constructor(private readonly network?: ClusterNetwork) {}

  /** The cluster CA, which signs every certificate below. */
  get caFile(): string {
    return this.file('ca.crt');
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  get kubeconfig(): string {
    return this.file('admin.kubeconfig');
  }

  private pki(): void {
    const d = this.dir;
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=switchyard-lab-ca'], d);
    const advertised = this.network ? `,IP:${this.network.advertiseAddress}` : '';
    this.issue('apiserver', '/CN=kube-apiserver', `subjectAltName=IP:127.0.0.1,IP:10.96.0.1${advertised},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n`);
    this.issue('admin', '/O=system:masters/CN=switchyard-lab-admin', 'extendedKeyUsage=clientAuth\n');
    openssl(['genrsa', '-out', 'sa.key', '2048'], d);
    openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], d);
  }

  /**
   * A key and a certificate signed by the cluster CA, in this control
   * plane's directory: `<name>.key`, `<name>.crt`. Returns their paths.
   */
  issue(name: string, subject: string, extensions: string): { cert: string; key: string } {
    fs.writeFileSync(this.file(`${name}.ext`), extensions);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], this.dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], this.dir);
    return { cert: this.file(`${name}.crt`), key: this.file(`${name}.key`) };
  }

  /** A kubeconfig for the given server URL and client certificate (a node's kubelet, kube-proxy). */
  writeKubeconfig(file: string, server: string, client: { cert: string; key: string }): void {
    fs.writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: lab',
        `clusters: [{name: lab, cluster: {server: "${server}", certificate-authority: "${this.caFile}"}}]`,
        `users: [{name: user, user: {client-certificate: "${client.cert}", client-key: "${client.key}"}}]`,
        'contexts: [{name: lab, context: {cluster: lab, user: user}}]',
        '',
      ].join('\n'),
    );
  }

  private networkFlags(): string[] {
    if (!this.network) return ['--advertise-address=127.0.0.1'];
    const egress = this.file('egress-selector.yaml');
    fs.writeFileSync(
      egress,
      [
        'apiVersion: apiserver.k8s.io/v1beta1',
        'kind: EgressSelectorConfiguration',
        'egressSelections:',
        '  - name: cluster',
        '    connection:',
        '      proxyProtocol: HTTPConnect',
        `      transport: {uds: {udsName: "${this.network.egressSocket}"}}`,
        '',
      ].join('\n'),
    );
    return [
      `--advertise-address=${this.network.advertiseAddress}`,
      `--egress-selector-config-file=${egress}`,
      // Webhooks are called at their Service's endpoints (pod IPs), not its ClusterIP.
      '--enable-aggregator-routing=true',
      '--kubelet-preferred-address-types=InternalIP',
      `--kubelet-client-certificate=${this.file('admin.crt')}`,
      `--kubelet-client-key=${this.file('admin.key')}`,
    ];
  }

  async start(): Promise<void> {
    const missing = controlPlaneMissing();
    if (missing) throw new Error(`cannot start the lab control plane: ${missing}`);
    this.pki();
    const [etcdPort, peerPort] = [await freePort(), await freePort()];
    this.apiPort = await freePort();
    this.url = `https://127.0.0.1:${this.apiPort}`;
    const etcd = Proc.start('etcd', [
      'etcd',
      '--name', 'lab',
      '--data-dir', this.file('etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcdPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `lab=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
    ]);
    this.procs.push(etcd);
    const api = Proc.start('kube-apiserver', [
      path.join(k8sBinDir(), 'kube-apiserver'),
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      ...this.networkFlags(),
      `--secure-port=${this.apiPort}`,
      `--tls-cert-file=${this.file('apiserver.crt')}`,
      `--tls-private-key-file=${this.file('apiserver.key')}`,
      `--client-ca-file=${this.file('ca.crt')}`,
      `--service-account-key-file=${this.file('sa.pub')}`,
      `--service-account-signing-key-file=${this.file('sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--authorization-mode=Node,RBAC',
      `--cert-dir=${this.file('cert')}`,
      '--enable-priority-and-fairness=false',
    ]);
    this.procs.push(api);
    fs.writeFileSync(
      this.kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: lab',
        `clusters: [{name: lab, cluster: {server: "${this.url}", certificate-authority: ${this.file('ca.crt')}}}]`,
        `users: [{name: admin, user: {client-certificate: ${this.file('admin.crt')}, client-key: ${this.file('admin.key')}}}]`,
        'contexts: [{name: lab, context: {cluster: lab, user: admin}}]',
        '',
      ].join('\n'),
    );
    await api.readyWhen('ready (/readyz)', async () => {
      if (etcd.exitCode !== null) throw new Error(`etcd exited ${etcd.exitCode}: ${etcd.stderr.slice(-2000)}`);
      return (await this.request('GET', '/readyz').catch(() => ({ status: 0 }))).status === 200;
    }, 120_000);
  }

  /**
   * kube-controller-manager (Deployments → ReplicaSets → Pods, default
   * ServiceAccounts, ...), leader election off, no serving port.
   */
  async startControllerManager(): Promise<void> {
    const cm = Proc.start('kube-controller-manager', [
      path.join(k8sBinDir(), 'kube-controller-manager'),
      `--kubeconfig=${this.kubeconfig}`,
      `--service-account-private-key-file=${this.file('sa.key')}`,
      `--root-ca-file=${this.file('ca.crt')}`,
      '--leader-elect=false',
      '--secure-port=0',
      // Real nodes post heartbeats, so their lifecycle controller runs; the kubelet stand-in's does not.
      this.network ? '--controllers=*,-nodeipam,-ttl-after-finished' : '--controllers=*,-nodeipam,-nodelifecycle,-ttl-after-finished',
    ]);
    this.procs.push(cm);
    // Ready when it has done observable work: the default ServiceAccount of a fresh namespace.
    const ns = `cm-probe-${Date.now()}`;
    await this.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await cm.readyWhen(`working (default ServiceAccount in ${ns})`, async () => (await this.request('GET', `/api/v1/namespaces/${ns}/serviceaccounts/default`)).status === 200);
  }

  /**
   * kube-scheduler, leader election off. Ready when its own /readyz (which
   * includes the informer-sync check) answers 200 on a loopback port.
   */
  async startScheduler(): Promise<void> {
    const port = await freePort();
    const sched = Proc.start('kube-scheduler', [
      path.join(k8sBinDir(), 'kube-scheduler'),
      `--kubeconfig=${this.kubeconfig}`,
      `--authentication-kubeconfig=${this.kubeconfig}`,
      `--authorization-kubeconfig=${this.kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${this.file('scheduler-cert')}`,
    ]);
    this.procs.push(sched);
    await sched.readyWhen('ready (/readyz)', async () => (await httpsStatus(`https://127.0.0.1:${port}/readyz`)) === 200);
  }

  /** kubectl (built with the control plane) as the lab admin. */
  kubectl(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(path.join(k8sBinDir(), 'kubectl'), ['--kubeconfig', this.kubeconfig, ...args], { encoding: 'utf8', input });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  private admin?: KubeClient;

  /** One request as the lab admin, through the shared client (lib/kube). */
  request(method: 'GET' | WriteMethod, urlPath: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: any }> {
    this.admin ??= new KubeClient(kubeconfigFromFile(this.kubeconfig), 'switchyard-lab');
    return this.admin.request(method, urlPath, body, contentType);
  }

  async stop(): Promise<void> {
    this.admin?.close();
    for (const p of this.procs.reverse()) await p.stop('SIGTERM');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
