/**
 * Switchyard as users run it, on two real kubelet + containerd nodes
 * (lab/src/realcluster.ts): installed with `kubectl apply -k`, its agents a
 * DaemonSet and its webhook a Deployment behind a Service, images built here.
 * Everything is observed the way a user observes it: kubectl get, logs,
 * exec, describe and Events.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { V1Pod } from '@kubernetes/client-node';
import { controlPlaneMissing } from '../../lab/src/controlplane';
import { RealCluster, realClusterMissing } from '../../lab/src/realcluster';
import { eventually } from '../../lab/src/proc';
import { projectRoot } from '../../native';
import { gate, kernelTestBlocker } from '../helpers/kernel';

const lab = gate('e2e tests on real nodes', controlPlaneMissing() ?? realClusterMissing() ?? kernelTestBlocker());
const APPS = 'docker.io/switchyard-lab/apps:0.1.0';

lab.describe('Switchyard on two real nodes, installed with kubectl apply -k', () => {
  let c: RealCluster;
  const k = (...args: string[]) => c.kubectl(args);
  const json = (...args: string[]) => JSON.parse(c.kubectl([...args, '-o', 'json']));
  const agentOn = (node: string): string =>
    (json('get', 'pods', '-n', 'switchyard-system', '-l', 'app.kubernetes.io/name=switchyard-interceptor', '--field-selector', `spec.nodeName=${node}`).items as V1Pod[])[0]
      ?.metadata?.name ?? '';
  const agentStatus = (node: string) => JSON.parse(k('exec', '-n', 'switchyard-system', agentOn(node), '-c', 'interceptor', '--', 'switchyard', 'status', '-o', 'json'));
  const podsOn = (node: string): string[] => agentStatus(node).pods.map((p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`);
  const readyPods = (ns: string, selector: string, n: number) =>
    eventually(`${n} Ready pods ${selector} in ${ns}`, () => {
      const pods = (json('get', 'pods', '-n', ns, '-l', selector).items as V1Pod[]).filter(
        (p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'),
      );
      return pods.length === n ? pods : undefined;
    }, 120_000);

  beforeAll(async () => {
    lab.require();
    c = new RealCluster();
    await c.start();
    k('create', 'namespace', 'mesh');
    k('label', 'namespace', 'mesh', 'switchyard.dev/injection=enabled');
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  }, 120_000);

  test('install-cni chained switchyard-cni last in each node\'s CNI configuration, and the webhook is called through its Service', () => {
    for (const n of c.nodeList) {
      const conf = JSON.parse(fs.readFileSync(path.join(n.dir, 'fs', 'etc', 'cni', 'net.d', '10-lab.conflist'), 'utf8'));
      expect(conf.plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap', 'switchyard-cni']);
      expect(fs.existsSync(path.join(n.dir, 'fs', 'opt', 'cni', 'bin', 'switchyard-cni'))).toBe(true);
    }
    const mwc = json('get', 'mutatingwebhookconfiguration', 'switchyard-sidecar-injector');
    expect(mwc.webhooks[0].clientConfig.service).toMatchObject({ name: 'switchyard-webhook', namespace: 'switchyard-system' });
    expect(mwc.webhooks[0].clientConfig.url).toBeUndefined();
  });

  test('pods on both nodes are injected and registered; app-a reaches app-b by Service and pod IP, same node and across, through both sidecars', async () => {
    // The demo's workload, in this test's namespace.
    const apps = fs.readFileSync(path.join(projectRoot(), 'lab', 'demo', 'apps.yaml'), 'utf8').replace(/namespace: demo/g, 'namespace: mesh');
    c.kubectl(['apply', '-f', '-'], apps);
    const [a] = await readyPods('mesh', 'app=app-a', 1);
    const bs = await readyPods('mesh', 'app=app-b', 2);
    for (const p of [a, ...bs]) {
      expect(p.metadata!.labels!['switchyard.dev/managed']).toBe('true');
      expect(p.spec!.initContainers!.map((x) => `${x.name}:${x.restartPolicy}`)).toEqual(['switchyard-proxy:Always']);
    }
    // Each pod is registered by the agent on its own node, and only there.
    for (const n of c.nodeList) {
      const names = podsOn(n.name).sort();
      const expected = [a, ...bs].filter((p) => p.spec!.nodeName === n.name).map((p) => `mesh/${p.metadata!.name}`).sort();
      expect(names).toEqual(expected);
    }
    const clusterIP = json('get', 'service', '-n', 'mesh', 'app-b').spec.clusterIP;
    await eventually('app-b programmed on app-a\'s node', () => {
      const s = JSON.parse(k('exec', '-n', 'switchyard-system', agentOn(a.spec!.nodeName!), '-c', 'interceptor', '--', 'switchyard', 'status', 'services', '-o', 'json'));
      return s.services.some((x: { service: string; backends: unknown[] }) => x.service === 'mesh/app-b' && x.backends.length === 2) ? true : undefined;
    });
    const get = (url: string) => k('exec', '-n', 'mesh', a.metadata!.name!, '-c', 'app', '--', 'http-get', url).trim();
    for (const b of bs) expect(get(`http://${b.status!.podIP}:8080/`)).toBe(`GET http://${b.status!.podIP}:8080/ status=200 body="hello from ${b.metadata!.name}"`);
    expect(get(`http://${clusterIP}/`)).toMatch(/status=200 body="hello from app-b-/);
    const outbound = k('logs', '-n', 'mesh', a.metadata!.name!, '-c', 'switchyard-proxy');
    for (const b of bs) expect(outbound).toMatch(new RegExp(`outbound src=127\\.0\\.0\\.1:\\d+ dst=${b.status!.podIP!.replace(/\./g, '\\.')}:8080 .*result=ok`));
    expect(outbound).toMatch(new RegExp(`outbound src=127\\.0\\.0\\.1:\\d+ dst=${clusterIP.replace(/\./g, '\\.')}:80 .*result=ok`));
    for (const b of bs) {
      const inbound = k('logs', '-n', 'mesh', b.metadata!.name!, '-c', 'switchyard-proxy');
      expect(inbound).toMatch(new RegExp(`inbound src=${a.status!.podIP!.replace(/\./g, '\\.')}:\\d+ dst=${b.status!.podIP!.replace(/\./g, '\\.')}:8080 .*result=ok`));
    }
    // The cross-node request arrived through the tc path on the other node.
    const other = bs.find((b) => b.spec!.nodeName !== a.spec!.nodeName);
    expect(other).toBeDefined();
    expect(Number(agentStatus(other!.spec!.nodeName!).node.tc_inbound_new)).toBeGreaterThan(0);
  }, 180_000);

  test('kubectl logs --previous shows a crashed container\'s last run', async () => {
    k('run', 'crasher', '-n', 'default', `--image=${APPS}`, '--image-pull-policy=Never', '--restart=Always', '--command', '--', 'node', '-e', 'console.log("run at", Date.now()); process.exit(3)');
    await eventually('crasher restarted', () => ((json('get', 'pod', '-n', 'default', 'crasher').status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1 ? true : undefined), 60_000);
    // Between a run's end and the next one's start the kubelet may still be swapping them: ask until it answers.
    const previous = await eventually('kubectl logs --previous', () => {
      const r = c.cp.kubectl(['logs', '-n', 'default', 'crasher', '--previous']);
      return r.code === 0 && r.stdout.trim() !== '' ? r.stdout : undefined;
    }, 30_000);
    expect(previous).toMatch(/^run at \d+$/m);
    const last = json('get', 'pod', '-n', 'default', 'crasher').status.containerStatuses[0].lastState.terminated;
    expect(last.exitCode).toBe(3);
    k('delete', 'pod', '-n', 'default', 'crasher', '--wait=false');
  }, 90_000);

  test('deleting a mesh pod unregisters it from its node\'s agent', async () => {
    const [b] = await readyPods('mesh', 'app=app-b', 2);
    const node = b.spec!.nodeName!;
    k('delete', 'pod', '-n', 'mesh', b.metadata!.name!, '--wait=true');
    await eventually(`${b.metadata!.name} gone from the agent on ${node}`, () =>
      podsOn(node).includes(`mesh/${b.metadata!.name}`) ? undefined : true,
    );
    await readyPods('mesh', 'app=app-b', 2); // the ReplicaSet's replacement is injected and registered again
  }, 120_000);

  test('an agent restarted by its DaemonSet adopts the pinned dataplane, and traffic keeps flowing', async () => {
    const node = c.nodeList[0].name;
    const old = agentOn(node);
    k('delete', 'pod', '-n', 'switchyard-system', old, '--wait=true');
    k('-n', 'switchyard-system', 'rollout', 'status', 'daemonset/switchyard-interceptor', '--timeout=90s');
    const fresh = await eventually('a new agent pod on the node', () => {
      const n = agentOn(node);
      return n && n !== old ? n : undefined;
    });
    expect(k('logs', '-n', 'switchyard-system', fresh, '-c', 'interceptor')).toContain('adopted the pinned dataplane; traffic was never interrupted');
    const [a] = await readyPods('mesh', 'app=app-a', 1);
    const clusterIP = json('get', 'service', '-n', 'mesh', 'app-b').spec.clusterIP;
    expect(k('exec', '-n', 'mesh', a.metadata!.name!, '-c', 'app', '--', 'http-get', `http://${clusterIP}/`)).toMatch(/status=200/);
  }, 150_000);

  test('fail-closed: with no agent on a node, a new mesh pod there does not start and its Events name switchyard-cni; it starts once the agent is back', async () => {
    const node = c.nodeList[1].name;
    // Keep the DaemonSet off that node, as a user draining the agent would.
    k('label', 'node', node, 'switchyard-test/no-agent=true');
    k('patch', 'daemonset', '-n', 'switchyard-system', 'switchyard-interceptor', '--type=json', '-p',
      JSON.stringify([{ op: 'add', path: '/spec/template/spec/affinity', value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'switchyard-test/no-agent', operator: 'DoesNotExist' }] }] } } } }]));
    await eventually(`no agent on ${node}`, () => (agentOn(node) === '' ? true : undefined), 90_000);
    k('run', 'late', '-n', 'mesh', `--image=${APPS}`, '--image-pull-policy=Never', `--overrides=${JSON.stringify({ spec: { nodeName: node } })}`);
    const event = await eventually('a FailedCreatePodSandBox Event for mesh/late', () => {
      const evs = json('get', 'events', '-n', 'mesh', '--field-selector', 'involvedObject.name=late').items as { reason: string; message: string }[];
      return evs.find((e) => e.reason === 'FailedCreatePodSandBox');
    }, 60_000);
    expect(event.message).toMatch(/switchyard-cni/);
    expect(json('get', 'pod', '-n', 'mesh', 'late').status.phase).toBe('Pending');
    k('patch', 'daemonset', '-n', 'switchyard-system', 'switchyard-interceptor', '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/template/spec/affinity' }]));
    k('label', 'node', node, 'switchyard-test/no-agent-');
    await readyPods('mesh', 'run=late', 1);
    expect(podsOn(node)).toContain('mesh/late');
  }, 240_000);
});
