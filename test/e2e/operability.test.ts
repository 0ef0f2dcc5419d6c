/**
 * What a platform engineer has to troubleshoot with, on two real kubelet +
 * containerd nodes (lab/src/realcluster.ts): `kubectl switchyard` (check,
 * check-inject, monitor) through the apiserver with a kubeconfig and
 * nothing else, the Events a full map leaves on a pod, and the Helm chart
 * installed and uninstalled in place of the kustomize install.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { controlPlaneMissing, k8sBinDir } from '../../lab/src/controlplane';
import { CHART_DIR, helmBinary, helmMissing } from '../../lab/src/helm';
import { RealCluster, realClusterMissing } from '../../lab/src/realcluster';
import { eventually } from '../../lab/src/proc';
import { distScript } from '../../lab/src/netlab';
import { projectRoot } from '../../native';
import { gate, kernelTestBlocker } from '../helpers/kernel';
import { clusterView } from '../helpers/cluster-view';

const lab = gate('e2e operability tests on real nodes', controlPlaneMissing() ?? realClusterMissing() ?? helmMissing() ?? kernelTestBlocker());
const APPS = 'docker.io/switchyard-lab/apps:0.1.0';
const NS = 'shop';

lab.describe('troubleshooting with kubectl alone, and the Helm chart, on two real nodes', () => {
  let c: RealCluster;
  /** Where Switchyard runs: the kustomize install's namespace, until the Helm test installs it into another. */
  let installNs = 'switchyard-system';
  const { k, json, agentOn, onNode, agentStatus: agentStatusOn, readyPods } = clusterView(() => c, () => installNs);
  const env = () => ({ ...process.env, KUBECTL: path.join(k8sBinDir(), 'kubectl'), HOME: os.tmpdir() });
  /** kubectl switchyard …, as a user runs it: the plugin, a kubeconfig, nothing else. */
  const plugin = (...args: string[]) => {
    const r = spawnSync(process.execPath, [distScript('cli/kubectl-plugin.js'), ...args, '--kubeconfig', c.cp.kubeconfig], { encoding: 'utf8', env: env() });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const nodeReport = (node: string) => JSON.parse(onNode(node, 'check', '-o', 'json'));

  beforeAll(async () => {
    lab.require();
    c = new RealCluster();
    await c.start();
    k('create', 'namespace', NS);
    k('label', 'namespace', NS, 'switchyard.dev/injection=enabled');
    c.kubectl(['apply', '-f', '-'], fs.readFileSync(path.join(projectRoot(), 'lab', 'demo', 'apps.yaml'), 'utf8').replace(/namespace: demo/g, `namespace: ${NS}`));
    await readyPods(NS, 'app=app-a', 1);
    await readyPods(NS, 'app=app-b', 2);
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  }, 120_000);

  test('check: every node and the webhook pass; a node whose CNI chain lost switchyard-cni fails with what to do', () => {
    const good = plugin('check');
    expect(good.err).toBe('');
    expect(good.code).toBe(0);
    for (const n of c.nodeList) {
      expect(good.out).toMatch(new RegExp(`✓ ${n.name}: interceptor switchyard-interceptor-\\S+ Ready`));
      expect(good.out).toContain(`✓ ${n.name}: CNI chain in 10-lab.conflist: bridge → portmap → switchyard-cni`);
      expect(good.out).toMatch(new RegExp(`✓ ${n.name}: all \\d+ BPF hooks and helpers the programs use`));
    }
    expect(good.out).toContain('✓ the apiserver calls the webhook: a dry-run pod in namespace default that asks for injection came back with switchyard-proxy');
    expect(good.out).toMatch(/✓ the webhook's certificate is valid until .* \(\d+ days\)/);
    expect(good.out).toContain("✓ the MutatingWebhookConfiguration's caBundle signed it");
    expect(good.out).toContain('✓ MutatingWebhookConfiguration switchyard-sidecar-injector is what this release generates');
    expect(good.out).toMatch(/All checks passed\.\n$/);
    expect(good.out).not.toMatch(/[✗!] /);

    // Another CNI rewrote node0's configuration without us.
    const node0 = c.nodeList[0];
    const file = path.join(node0.dir, 'fs', 'etc', 'cni', 'net.d', '10-lab.conflist');
    const saved = fs.readFileSync(file, 'utf8');
    const conf = JSON.parse(saved);
    conf.plugins = conf.plugins.filter((p: { type: string }) => p.type !== 'switchyard-cni');
    fs.writeFileSync(file, JSON.stringify(conf));
    try {
      const bad = plugin('check');
      expect(bad.code).toBe(1);
      expect(bad.out).toContain(`✗ ${node0.name}: CNI chain in 10-lab.conflist is bridge → portmap: switchyard-cni is missing\n      pods started now are not registered`);
      expect(bad.out).toMatch(/Some checks failed: see ✗ above\.\n$/);
    } finally {
      fs.writeFileSync(file, saved);
    }
  }, 120_000);

  test('check-inject: an injected pod registered on its node; a pod the webhook skipped, with the reason and the fix; a file, through a dry run', async () => {
    const [a] = await readyPods(NS, 'app=app-a', 1);
    const injected = plugin('check-inject', a.metadata!.name!, '-n', NS);
    expect(injected.err).toBe('');
    expect(injected.out).toMatch(new RegExp(`^${NS}/${a.metadata!.name}: injected, registered on ${a.spec!.nodeName}\\n`));
    expect(injected.out).toContain('Injection:  injected at admission; switchyard-proxy is a native sidecar');
    expect(injected.out).toMatch(new RegExp(`Registered: on ${a.spec!.nodeName} since \\S+: netns cookie \\d+, IPs ${a.status!.podIP!.replace(/\./g, '\\.')}, outbound 15001, inbound 15003`));

    k('create', 'namespace', 'plain');
    c.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'solo', namespace: 'plain' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: APPS }] } }));
    const skipped = plugin('check-inject', 'solo', '-n', 'plain');
    expect(skipped.out).toContain('plain/solo: NOT injected, not registered\n');
    expect(skipped.out).toContain('Injection:  NOT injected; created today: not-enabled: neither the namespace nor the pod asks for injection');
    expect(skipped.out).toContain('to inject it: kubectl label namespace plain switchyard.dev/injection=enabled');

    const file = path.join(c.dir, 'check-inject.yaml');
    const deployment = (name: string, ns: string, annotations: Record<string, string> = {}) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns },
      spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name }, annotations }, spec: { containers: [{ name: 'app', image: APPS }] } } },
    });
    fs.writeFileSync(file, [deployment('web', NS), deployment('batch', 'plain'), deployment('typo', NS, { 'switchyard.dev/inject': 'yes' })].map((d) => stringify(d)).join('---\n'));
    const fromFile = plugin('check-inject', '-f', file);
    expect(fromFile.err).toBe('');
    expect(fromFile.out).toContain('deployment/web: would be injected\n  Webhook:    injects it in namespace shop (namespace-enabled: the namespace has switchyard.dev/injection=enabled)\n  Dry run:    the apiserver admitted it with switchyard-proxy\n');
    expect(fromFile.out).toContain('deployment/batch: would NOT be injected\n  Webhook:    skips it in namespace plain (not-enabled:');
    expect(fromFile.out).toContain('  Dry run:    the apiserver admitted it without switchyard-proxy\n');
    expect(fromFile.out).toMatch(/deployment\/typo: would be REFUSED\n {2}Webhook: {4}REFUSES it in namespace shop \(invalid-annotation: .*'yes' must be "true" or "false"\)\n {2}Dry run: {4}refused: .*admission webhook .* denied the request/);
    // Dry runs create nothing.
    expect((json('get', 'pods', '-n', NS).items as V1Pod[]).filter((p) => p.metadata!.name!.startsWith('switchyard-check'))).toEqual([]);
  }, 120_000);

  test('monitor: a request from app-a to app-b shows up as the kernel decisions on both nodes, and the agents stop reporting when the command ends', async () => {
    const [a] = await readyPods(NS, 'app=app-a', 1);
    const clusterIP = json('get', 'service', '-n', NS, 'app-b').spec.clusterIP;
    const child = spawn(process.execPath, [distScript('cli/kubectl-plugin.js'), 'monitor', '-n', NS, '--type', 'redirect', '--count', '3', '-o', 'json', '--kubeconfig', c.cp.kubeconfig], { env: env() });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await eventually('every agent has a watcher', () => (c.nodeList.every((n) => nodeReport(n.name).monitor.watching === 1) ? true : undefined), 30_000);
    expect(k('exec', '-n', NS, a.metadata!.name!, '-c', 'app', '--', 'http-get', `http://${clusterIP}/`)).toMatch(/status=200/);
    expect(await exited).toBe(0);
    expect(err).toBe('');
    const lines = out.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines.every((l) => l.verdict === 'redirect')).toBe(true);
    // The first decision of the request: app-a's connect to the ClusterIP went to its own sidecar.
    expect(lines).toContainEqual(
      expect.objectContaining({ node: a.spec!.nodeName, hook: 'connect4', reason: 'connect_redirected_outbound', pod: `${NS}/${a.metadata!.name}`, orig: { ip: clusterIP, port: 80 }, dst: { ip: '127.0.0.1', port: 15001 }, uid: 1000 }),
    );
    // Closing the exec's stdin ended `switchyard monitor` in the pods: reporting is off again everywhere.
    await eventually('the agents stopped reporting', () => (c.nodeList.every((n) => !nodeReport(n.name).monitor.enabled) ? true : undefined), 30_000);
  }, 120_000);

  test('Events: a full pod map leaves NotRegistered, with the reason, on the pod it could not register', async () => {
    const node0 = c.nodeList[0].name;
    const registered = agentStatusOn(node0).pods.length;
    // Room for what is there and one more; the agents restart and carry their maps over to the new size.
    const cm = json('get', 'configmap', '-n', 'switchyard-system', 'switchyard-config');
    const size = registered + 1;
    cm.data['interceptor.yaml'] += `mapSizes:\n  sy_pods: ${size}\n  sy_pod_counters: ${size}\n`;
    c.kubectl(['apply', '-f', '-'], JSON.stringify(cm));
    k('rollout', 'restart', '-n', 'switchyard-system', 'daemonset/switchyard-interceptor');
    k('rollout', 'status', '-n', 'switchyard-system', 'daemonset/switchyard-interceptor', '--timeout=120s');
    const pod = (i: number) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `filler-${i}`, namespace: NS }, spec: { nodeName: node0, terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: APPS }] } });
    for (const i of [1, 2]) c.kubectl(['apply', '-f', '-'], JSON.stringify(pod(i)));
    try {
      await fullMapStory();
    } finally {
      k('delete', 'pod', '-n', NS, 'filler-1', 'filler-2', '--wait=false', '--ignore-not-found');
    }
  }, 240_000);

  async function fullMapStory(): Promise<void> {
    const node0 = c.nodeList[0].name;
    type Ev = { reason: string; note: string; regarding: { kind: string; name: string }; reportingController: string };
    const full = await eventually('a NotRegistered Event for a full map', () =>
      (json('get', 'events.events.k8s.io', '-n', NS).items as Ev[]).find((e) => e.reason === 'NotRegistered' && /map full/.test(e.note)), 90_000);
    expect(full.regarding.kind).toBe('Pod');
    expect(full.regarding.name).toMatch(/^filler-[12]$/);
    expect(full.reportingController).toBe('switchyard.dev/interceptor');
    expect(full.note).toMatch(/^registration-failed: .*map full/);
    // The kubelet retries the sandbox, each time in a new netns: still one Event, with a count.
    type CoreEv = { reason: string; count?: number; involvedObject: { name: string } };
    // (The kubelet's own Events for each try differ in the sandbox id, so they are counted across Events.)
    await eventually('the kubelet retried the sandbox', () =>
      (json('get', 'events', '-n', NS).items as CoreEv[]).filter((e) => e.reason === 'FailedCreatePodSandBox' && e.involvedObject.name === full.regarding.name).reduce((n, e) => n + (e.count ?? 1), 0) >= 2 ? true : undefined, 90_000);
    expect((json('get', 'events.events.k8s.io', '-n', NS).items as Ev[]).filter((e) => e.reason === 'NotRegistered' && e.regarding.name === full.regarding.name)).toHaveLength(1);
    // The user's view: describe shows it, and check-inject says the pod is not registered and why.
    expect(k('describe', 'pod', '-n', NS, full.regarding.name)).toContain('NotRegistered');
    const why = plugin('check-inject', full.regarding.name, '-n', NS);
    expect(why.out).toContain(`${NS}/${full.regarding.name}: injected, NOT registered on ${node0}`);
    expect(why.out).toContain(`Registered: NO: the interceptor on ${node0} says: pod ${NS}/${full.regarding.name} is not registered on this node\n`);
    expect(why.out).toMatch(/Events: {5}.*NotRegistered on pod\/filler-[12]: registration-failed: .*map full/);
  }

  test('helm: the chart replaces the kustomize install, in another namespace, without losing a registration; pods are injected and check passes; helm uninstall leaves no Switchyard object', async () => {
    /** Every running mesh pod is registered on its node, and nothing else is; the agents' logs when not. */
    const expectAllRegistered = (when: string) => {
      const mesh = (json('get', 'pods', '-n', NS, '-l', 'switchyard.dev/managed=true').items as V1Pod[])
        .filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)
        .map((p) => `${p.spec!.nodeName}:${NS}/${p.metadata!.name}`)
        .sort();
      const registered = c.nodeList.flatMap((n) => agentStatusOn(n.name).pods.filter((p: { namespace: string }) => p.namespace === NS).map((p: { name: string }) => `${n.name}:${NS}/${p.name}`)).sort();
      if (JSON.stringify(registered) !== JSON.stringify(mesh)) {
        const logs = c.nodeList.map((n) => `--- ${n.name}\n${k('logs', '-n', installNs, agentOn(n.name), '-c', 'interceptor', '--tail=60')}`).join('\n');
        throw new Error(`${when}: registered ${JSON.stringify(registered)}, running mesh pods ${JSON.stringify(mesh)}\n${logs}`);
      }
    };
    await eventually('the filler pods are gone', () => ((json('get', 'pods', '-n', NS).items as V1Pod[]).some((p) => p.metadata!.name!.startsWith('filler')) ? undefined : true), 60_000);
    expectAllRegistered('before the switch');
    const kustomized = path.join(c.dir, 'install', 'lab', 'manifests');
    k('delete', '-k', kustomized, '--wait=true', '--timeout=120s');
    await eventually('switchyard-system is gone', () => (spawnSync(path.join(k8sBinDir(), 'kubectl'), ['--kubeconfig', c.cp.kubeconfig, 'get', 'namespace', 'switchyard-system']).status !== 0 ? true : undefined), 120_000);
    const helm = (...args: string[]) => {
      const r = spawnSync(helmBinary(), [...args, '--kubeconfig', c.cp.kubeconfig], { encoding: 'utf8', env: env() });
      if (r.status !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    installNs = 'mesh-system';
    expect(helm('install', 'switchyard', CHART_DIR, '-n', installNs, '--create-namespace', '--wait', '--timeout', '3m')).toContain('STATUS: deployed');
    await eventually('the webhook Service has ready endpoints', () => (json('get', 'endpoints', '-n', installNs, 'switchyard-webhook').subsets?.some((s: { addresses?: unknown[] }) => s.addresses?.length) ? true : undefined));
    expectAllRegistered('after helm install (the new agents adopt the pins and the records)');
    k('rollout', 'restart', '-n', NS, 'deployment/app-a');
    k('rollout', 'status', '-n', NS, 'deployment/app-a', '--timeout=120s');
    const [a] = await readyPods(NS, 'app=app-a', 1);
    expectAllRegistered('after app-a was restarted');
    expect(a.spec!.initContainers!.map((x) => x.name)).toEqual(['switchyard-proxy']);
    // The plugin finds an install elsewhere when told where; not told, it says where it looked.
    const checked = plugin('check', '--switchyard-namespace', installNs);
    expect(checked.out).toContain(`✓ it names switchyard-webhook.${installNs}.svc`);
    expect(checked.out).toMatch(/All checks passed\.\n$/);
    expect(checked.code).toBe(0);
    expect(plugin('check-inject', a.metadata!.name!, '-n', NS, '--switchyard-namespace', installNs).out).toContain(`injected, registered on ${a.spec!.nodeName}`);
    expect(plugin('status', '-n', NS).err).toContain('no interceptor pods in switchyard-system: is Switchyard installed there (kubectl apply -k manifests/, or --switchyard-namespace NS)?');

    helm('uninstall', 'switchyard', '-n', installNs, '--wait', '--timeout', '2m');
    const kinds = 'all,configmaps,secrets,serviceaccounts,poddisruptionbudgets,clusterroles,clusterrolebindings,mutatingwebhookconfigurations';
    await eventually('no object labelled part-of=switchyard', () => {
      const left = json('get', kinds, '-A', '-l', 'app.kubernetes.io/part-of=switchyard').items as { kind: string; metadata: { name: string } }[];
      return left.length ? undefined : true;
    }, 120_000);
    expect(k('get', 'mutatingwebhookconfigurations', '-o', 'name')).not.toContain('switchyard');
  }, 360_000);
});
