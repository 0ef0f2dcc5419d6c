/**
 * Switchyard as users run it, on two real kubelet + containerd nodes
 * (lab/src/realcluster.ts): installed with `kubectl apply -k`, its agents a
 * DaemonSet and its webhook a Deployment behind a Service, images built here.
 * Everything is observed the way a user observes it: kubectl get, logs,
 * exec, describe and Events.
 */
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { V1Pod } from '@kubernetes/client-node';
import { buildImages } from '../../images/src/build';
import { controlPlaneMissing, k8sBinDir } from '../../lab/src/controlplane';
import { RealCluster, realClusterMissing } from '../../lab/src/realcluster';
import { Proc, eventually } from '../../lab/src/proc';
import { distScript } from '../../lab/src/netlab';
import { projectRoot } from '../../native';
import { gate, kernelTestBlocker } from '../helpers/kernel';
import { clusterView } from '../helpers/cluster-view';

const lab = gate('e2e tests on real nodes', controlPlaneMissing() ?? realClusterMissing() ?? kernelTestBlocker());
const APPS = 'docker.io/switchyard-lab/apps:0.1.0';
/** A container of the lab's apps image, which every node has (never pulled). */
const app = (extra: Record<string, unknown> = {}) => ({ name: 'app', image: APPS, imagePullPolicy: 'Never', ...extra });

lab.describe('Switchyard on two real nodes, installed with kubectl apply -k', () => {
  let c: RealCluster;
  const { k, json, agentOn, onNode, agentStatus, readyPods } = clusterView(() => c);
  const appBClusterIP = (): string => json('get', 'service', '-n', 'mesh', 'app-b').spec.clusterIP;
  const podsOn = (node: string): string[] => agentStatus(node).pods.map((p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`);

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
    const clusterIP = appBClusterIP();
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

  test("app-b's NodePort from outside the cluster (dsr in the lab's overlay): both nodes answer, app-b's sidecars log the outside client's own address; as a LoadBalancer with externalTrafficPolicy Local, healthCheckNodePort says 200 where app-b runs and 503 elsewhere", async () => {
    const outside = c.nodes.addOutsideHost();
    const esc = (ip: string) => ip.replace(/\./g, '\\.');
    const nodePort: number = json('get', 'service', '-n', 'mesh', 'app-b').spec.ports[0].nodePort;
    const bs = json('get', 'pods', '-n', 'mesh', '-l', 'app=app-b').items as V1Pod[];
    const nodeFrontends = (node: string) => JSON.parse(k('exec', '-n', 'switchyard-system', agentOn(node), '-c', 'interceptor', '--', 'switchyard', 'status', 'services', '-o', 'json')).nodeFrontends as { service: string; frontend: string; mode: string; policy: string; counters: Record<string, string> }[];
    for (const n of c.nodeList) {
      await eventually(`${n.name} to serve app-b's NodePort`, () => (nodeFrontends(n.name).some((f) => f.service === 'mesh/app-b' && f.frontend === `${n.ip}:${nodePort}/TCP` && f.mode === 'dsr') ? true : undefined));
    }
    // kubectl switchyard monitor on every node while the outside host asks: each node's decision is readable there.
    const monitor = spawn(process.execPath, [distScript('cli/kubectl-plugin.js'), 'monitor', '--type', 'redirect', '-o', 'json', '--kubeconfig', c.cp.kubeconfig], {
      env: { ...process.env, KUBECTL: path.join(k8sBinDir(), 'kubectl'), HOME: os.tmpdir() },
    });
    let watched = '';
    monitor.stdout.setEncoding('utf8').on('data', (d: string) => (watched += d));
    const monitorEnded = new Promise((resolve) => monitor.on('close', resolve));
    try {
      await eventually('every agent has a monitor watcher', () => (c.nodeList.every((n) => JSON.parse(onNode(n.name, 'check', '-o', 'json')).monitor.watching === 1) ? true : undefined), 30_000);
      for (const n of c.nodeList) {
        for (let i = 0; i < 4; i++) expect(outside.get(`http://${n.ip}:${nodePort}/`)).toMatchObject({ status: 200, body: expect.stringMatching(/^hello from app-b-/) });
      }
      const decisions = await eventually("both nodes' NodePort decisions in the monitor", () => {
        const seen = watched.split('\n').filter((l) => l.includes('"tc-node"')).map((l) => JSON.parse(l));
        return c.nodeList.every((n) => seen.some((e) => e.node === n.name && e.src?.ip === outside.ip)) ? seen : undefined;
      });
      for (const e of decisions) {
        // Asked for a node's NodePort; sent to an app-b pod, on this node (local, the pod named) or the other (dsr).
        expect(e).toMatchObject({ hook: 'tc-node', verdict: 'redirect', balanced: true, orig: { ip: c.nodeList.find((n) => n.name === e.node)!.ip, port: nodePort } });
        expect(bs.map((b) => b.status!.podIP)).toContain(e.dst.ip);
        expect(e.reason).toBe(bs.find((b) => b.status!.podIP === e.dst.ip)!.spec!.nodeName === e.node ? 'np_local' : 'np_dsr');
        if (e.reason === 'np_local') expect(e.peerPod).toMatch(/^mesh\/app-b-/);
      }
    } finally {
      monitor.kill('SIGINT');
      await monitorEnded;
    }
    const inbound = bs.map((b) => k('logs', '-n', 'mesh', b.metadata!.name!, '-c', 'switchyard-proxy')).join('\n');
    expect(inbound).toMatch(new RegExp(`inbound src=${esc(outside.ip)}:\\d+ dst=10\\.244\\.\\d+\\.\\d+:8080 .*result=ok`));
    // No request reached a sidecar from a node's address: nothing was source-NATed on the way.
    for (const n of c.nodeList) expect(inbound).not.toMatch(new RegExp(`inbound src=${esc(n.ip)}:`));
    // At least one request crossed nodes by DSR (two nodes, two replicas, eight requests).
    const dsr = c.nodeList.flatMap((n) => nodeFrontends(n.name)).filter((f) => f.service === 'mesh/app-b').reduce((sum, f) => sum + Number(f.counters.dsr), 0);
    expect(dsr).toBeGreaterThan(0);

    // The apiserver allocates a healthCheckNodePort only to a LoadBalancer Service (its status stays pending here: no cloud).
    k('patch', 'service', '-n', 'mesh', 'app-b', '-p', JSON.stringify({ spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local' } }));
    try {
      const hc: number = json('get', 'service', '-n', 'mesh', 'app-b').spec.healthCheckNodePort;
      expect(hc).toBeGreaterThan(0);
      for (const n of c.nodeList) {
        const local = bs.filter((b) => b.spec!.nodeName === n.name).length;
        const r = await eventually(`${n.name}'s healthCheckNodePort ${hc}`, () => {
          const x = outside.get(`http://${n.ip}:${hc}/`);
          return x.status && JSON.parse(x.body || '{}').localEndpoints === local ? x : undefined;
        });
        expect(r.status).toBe(local ? 200 : 503);
        expect(JSON.parse(r.body)).toEqual({ service: { namespace: 'mesh', name: 'app-b' }, localEndpoints: local, serviceProxyHealthy: true });
        expect(r.headers['x-load-balancing-endpoint-weight']).toBe(String(local));
      }
    } finally {
      k('patch', 'service', '-n', 'mesh', 'app-b', '-p', JSON.stringify({ spec: { type: 'NodePort', externalTrafficPolicy: 'Cluster', healthCheckNodePort: null } }));
    }
  }, 180_000);

  test('kubectl switchyard (the plugin) answers through the apiserver: status across both nodes, one pod in detail, explain', async () => {
    const plugin = (...args: string[]) => {
      const r = spawnSync(process.execPath, [distScript('cli/kubectl-plugin.js'), ...args, '--kubeconfig', c.cp.kubeconfig], {
        encoding: 'utf8',
        env: { ...process.env, KUBECTL: path.join(k8sBinDir(), 'kubectl') },
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      return r.stdout;
    };
    const [a] = await readyPods('mesh', 'app=app-a', 1);
    const bs = await readyPods('mesh', 'app=app-b', 2);
    const table = plugin('status', '-n', 'mesh');
    for (const p of [a, ...bs]) expect(table).toMatch(new RegExp(`^${p.spec!.nodeName} +mesh +${p.metadata!.name} +${p.status!.podIP!.replace(/\./g, '\\.')} `, 'm'));
    for (const n of c.nodeList) expect(table).toMatch(new RegExp(`^node ${n.name}: agent switchyard-interceptor-\\S+ ready, \\d+ pods registered in mesh$`, 'm'));
    const all = JSON.parse(plugin('status', '-o', 'json'));
    expect(all.nodes.map((n: { node: string }) => n.node).sort()).toEqual(c.nodeList.map((n) => n.name).sort());
    expect(plugin('status', a.metadata!.name!, '-n', 'mesh')).toContain(`Pod:            mesh/${a.metadata!.name}`);
    const clusterIP = appBClusterIP();
    expect(plugin('explain', a.metadata!.name!, `${clusterIP}:80`, '-n', 'mesh', '--uid', '1000')).toMatch(new RegExp(`^mesh/${a.metadata!.name} -> ${clusterIP.replace(/\./g, '\\.')}:80: REDIRECTED to the sidecar`));
  }, 90_000);

  test('kubectl logs --previous shows a crashed container\'s last run', async () => {
    // Crashes on its first run only (a marker in an emptyDir), so the restarted container keeps running and the
    // crashed one stays as the pod's one dead container, as kubelet's container GC keeps it.
    const script = 'const fs = require("fs"); if (fs.existsSync("/data/ran")) { console.log("second run"); setInterval(() => {}, 1e9); } ' +
      'else { fs.writeFileSync("/data/ran", ""); console.log("first run, crashing"); process.exit(3); }';
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'crash-once', namespace: 'default' },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [app({ command: ['node', '-e', script], volumeMounts: [{ name: 'data', mountPath: '/data' }] })],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    };
    c.kubectl(['apply', '-f', '-'], JSON.stringify(pod));
    await eventually('crash-once running again after its crash', () => {
      const st = json('get', 'pod', '-n', 'default', 'crash-once').status?.containerStatuses?.[0];
      return st?.restartCount >= 1 && st.state?.running ? st : undefined;
    }, 60_000);
    expect(k('logs', '-n', 'default', 'crash-once').trim()).toBe('second run');
    expect(k('logs', '-n', 'default', 'crash-once', '--previous').trim()).toBe('first run, crashing');
    expect(json('get', 'pod', '-n', 'default', 'crash-once').status.containerStatuses[0].lastState.terminated.exitCode).toBe(3);
    k('delete', 'pod', '-n', 'default', 'crash-once', '--wait=false');
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
    const clusterIP = appBClusterIP();
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

  test("classic sidecar mode: the app starts once the proxy's postStart hook (wait-ready) returned, and its first connect goes through the sidecar", async () => {
    const clusterIP = appBClusterIP();
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'classic', namespace: 'mesh', annotations: { 'switchyard.dev/sidecar-mode': 'classic' } },
      spec: { restartPolicy: 'OnFailure', containers: [app({ command: ['http-get', `http://${clusterIP}/`] })] },
    };
    c.kubectl(['apply', '-f', '-'], JSON.stringify(pod));
    const p = await eventually("the classic pod's app finished", () => {
      const x = json('get', 'pod', '-n', 'mesh', 'classic');
      return x.status?.containerStatuses?.find((st: { name: string }) => st.name === 'app')?.state?.terminated ? x : undefined;
    }, 60_000);
    expect(p.spec.initContainers ?? []).toEqual([]);
    expect(p.spec.containers.map((x: { name: string }) => x.name)).toEqual(['switchyard-proxy', 'app']);
    expect(p.spec.containers[0].lifecycle.postStart.exec.command).toEqual(['switchyard-sidecar', 'wait-ready', '--admin-port', '15021']);
    // The app's first and only run succeeded: its very first connect found the proxy listening.
    expect(p.status.containerStatuses.find((st: { name: string }) => st.name === 'app')).toMatchObject({ restartCount: 0, state: { terminated: { exitCode: 0 } } });
    expect(k('logs', '-n', 'mesh', 'classic', '-c', 'app')).toMatch(/status=200 body="hello from app-b-/);
    expect(k('logs', '-n', 'mesh', 'classic', '-c', 'switchyard-proxy')).toMatch(new RegExp(`outbound src=127\\.0\\.0\\.1:\\d+ dst=${clusterIP.replace(/\./g, '\\.')}:80 .*result=ok`));
    k('delete', 'pod', '-n', 'mesh', 'classic', '--wait=false');
  }, 90_000);

  test('a Job with the native sidecar completes: the proxy stops when the Job\'s container is done', async () => {
    const clusterIP = appBClusterIP();
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'once', namespace: 'mesh' },
      spec: { backoffLimit: 0, template: { spec: { restartPolicy: 'Never', containers: [app({ command: ['http-get', `http://${clusterIP}/`] })] } } },
    };
    c.kubectl(['apply', '-f', '-'], JSON.stringify(job));
    k('wait', '-n', 'mesh', '--for=condition=complete', 'job/once', '--timeout=60s');
    const [pod] = json('get', 'pods', '-n', 'mesh', '-l', 'job-name=once').items as V1Pod[];
    expect(pod.spec!.initContainers!.map((x) => x.name)).toEqual(['switchyard-proxy']);
    expect(pod.status!.phase).toBe('Succeeded');
    expect(k('logs', '-n', 'mesh', pod.metadata!.name!, '-c', 'app')).toMatch(/status=200/);
    expect(k('logs', '-n', 'mesh', pod.metadata!.name!, '-c', 'switchyard-proxy')).toMatch(/outbound .*result=ok/);
  }, 90_000);

  test('Events: the webhook denying a Deployment\'s pods is an Event on its ReplicaSet; a mesh pod the agent cannot register has one on the Pod', async () => {
    const bad = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'typo', namespace: 'mesh' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'typo' } },
        template: { metadata: { labels: { app: 'typo' }, annotations: { 'switchyard.dev/inject': 'yes' } }, spec: { containers: [app()] } },
      },
    };
    c.kubectl(['apply', '-f', '-'], JSON.stringify(bad));
    type Ev = { reason: string; note: string; regarding: { kind: string; name: string }; reportingController: string; series?: { count: number } };
    const events = (ns: string, reason: string) => (json('get', 'events.events.k8s.io', '-n', ns).items as Ev[]).filter((e) => e.reason === reason);
    const denied = await eventually('an InjectionDenied Event', () => (events('mesh', 'InjectionDenied').length ? events('mesh', 'InjectionDenied') : undefined), 60_000);
    expect(denied[0].regarding.kind).toBe('ReplicaSet');
    expect(denied[0].regarding.name).toMatch(/^typo-/);
    expect(denied[0].reportingController).toBe('switchyard.dev/webhook');
    expect(denied[0].note).toMatch(/invalid-annotation: .*switchyard\.dev\/inject='yes' must be "true" or "false"/);
    // The ReplicaSet keeps retrying; each webhook replica keeps one Event for it and counts the repeats.
    expect(denied.length).toBeLessThanOrEqual(2);
    expect(k('describe', 'replicaset', '-n', 'mesh', denied[0].regarding.name)).toContain('InjectionDenied');
    k('delete', 'deployment', '-n', 'mesh', 'typo');

    // A pod that says it is mesh-managed (as if injected) with an annotation the agent cannot use, where the webhook leaves it alone.
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'broken', namespace: 'default', labels: { 'switchyard.dev/managed': 'true' }, annotations: { 'switchyard.dev/outbound-port': 'banana' } },
      spec: { terminationGracePeriodSeconds: 1, containers: [app()] },
    };
    c.kubectl(['apply', '-f', '-'], JSON.stringify(pod));
    const notRegistered = await eventually('a NotRegistered Event', () => events('default', 'NotRegistered')[0], 60_000);
    expect(notRegistered.regarding).toMatchObject({ kind: 'Pod', name: 'broken' });
    expect(notRegistered.reportingController).toBe('switchyard.dev/interceptor');
    expect(notRegistered.note).toMatch(/^invalid-annotations: .*banana/);
    expect(json('get', 'pod', '-n', 'default', 'broken').status.phase).toBe('Pending');
    // kubectl describe pod tells the story: the agent's reason next to the kubelet's sandbox failure.
    const described = k('describe', 'pod', '-n', 'default', 'broken');
    expect(described).toContain('NotRegistered');
    expect(described).toContain('FailedCreatePodSandBox');
    k('delete', 'pod', '-n', 'default', 'broken', '--wait=false');
  }, 150_000);

  test('a rebuilt interceptor image with a new tag rolls the DaemonSet with traffic flowing: no failed request, none past the sidecars', async () => {
    const next = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'synext-')), 'next.tar');
    const built = buildImages({ out: next, only: ['ghcr.io/switchyard-dev/interceptor'], tag: '0.1.0-next', buildId: `next-${Date.now()}`, onProgress: () => undefined });
    const image = built.images[0].name;
    c.importImages(next); // as a registry pull would
    fs.rmSync(path.dirname(next), { recursive: true, force: true });

    const [a] = await readyPods('mesh', 'app=app-a', 1);
    const bs = await readyPods('mesh', 'app=app-b', 2);
    const clusterIP = appBClusterIP();
    const outboundBefore = k('logs', '-n', 'mesh', a.metadata!.name!, '-c', 'switchyard-proxy').split('\n').filter((l) => / outbound .*result=ok/.test(l)).length;
    // A steady client in app-a: one request every 20 ms, round-robin over the Service and both pod IPs, until its stdin closes.
    const loop = fs.readFileSync(path.join(projectRoot(), 'test', 'fixtures', 'steady-http.js'), 'utf8');
    const urls = [`http://${clusterIP}/`, ...bs.map((b) => `http://${b.status!.podIP}:8080/`)];
    const client = Proc.start('steady client', [path.join(k8sBinDir(), 'kubectl'), '--kubeconfig', c.cp.kubeconfig, 'exec', '-i', '-n', 'mesh', a.metadata!.name!, '-c', 'app', '--', 'node', '-e', loop, ...urls]);
    await client.waitForLine((l) => l === 'started');
    k('-n', 'switchyard-system', 'set', 'image', 'daemonset/switchyard-interceptor', `install-cni=${image}`, `interceptor=${image}`);
    k('-n', 'switchyard-system', 'rollout', 'status', 'daemonset/switchyard-interceptor', '--timeout=120s');
    client.child.stdin!.end();
    const result = JSON.parse(await client.waitForLine((l) => l.startsWith('{'), 30_000));
    expect(result.fail).toBe(0);
    expect(result.errors).toEqual([]);
    expect(result.ok).toBeGreaterThan(50);
    // Every agent runs the new image and adopted the pinned dataplane.
    for (const n of c.nodeList) {
      const agent = json('get', 'pod', '-n', 'switchyard-system', agentOn(n.name));
      expect(agent.spec.containers[0].image).toBe(image);
      expect(k('logs', '-n', 'switchyard-system', agentOn(n.name), '-c', 'interceptor')).toContain('adopted the pinned dataplane');
    }
    // No escapes: app-a's sidecar logged every request the client made.
    const outboundAfter = k('logs', '-n', 'mesh', a.metadata!.name!, '-c', 'switchyard-proxy').split('\n').filter((l) => / outbound .*result=ok/.test(l)).length;
    expect(outboundAfter - outboundBefore).toBe(result.ok);
  }, 240_000);

  test('uninstall: kubectl delete -k, then the uninstall DaemonSet, leaves no pins, attachments, tc filters or CNI entries on either node', async () => {
    const overlay = path.join(c.dir, 'install', 'lab', 'manifests');
    const uninstall = path.join(projectRoot(), 'manifests', 'uninstall');
    const meshPods = (json('get', 'pods', '-n', 'mesh').items as V1Pod[]).filter((p) => p.status?.phase === 'Running');
    expect(meshPods.length).toBeGreaterThan(0);
    k('delete', '-k', overlay, '--wait=true');
    k('apply', '-k', uninstall);
    k('-n', 'kube-system', 'rollout', 'status', 'daemonset/switchyard-cleanup', '--timeout=120s');
    k('delete', '-k', uninstall, '--wait=true');
    for (const n of c.nodeList) {
      const conf = JSON.parse(fs.readFileSync(path.join(n.dir, 'fs', 'etc', 'cni', 'net.d', '10-lab.conflist'), 'utf8'));
      expect(conf.plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap']);
      expect(fs.readdirSync(path.join(n.dir, 'fs', 'opt', 'cni', 'bin'))).not.toContain('switchyard-cni');
      // The node's own bpffs: only the filesystem's own iterators are left.
      const pins = execFileSync('nsenter', ['-t', String(n.pid), '-m', 'ls', '/sys/fs/bpf'], { encoding: 'utf8' }).split('\n').filter(Boolean);
      expect(pins.filter((p) => !p.endsWith('.debug'))).toEqual([]);
      const kubepods = path.join(c.nodes.cgroup2Dir(n), 'kubepods');
      // bpftool lists one "<id> <attach type> …" line per program attached at or below kubepods.
      expect(execFileSync('bpftool', ['cgroup', 'tree', kubepods], { encoding: 'utf8' })).not.toMatch(/^\s*\d+\s+\S+/m);
    }
    // The mesh pods keep running, their interfaces without Switchyard's tc filters.
    for (const p of meshPods) {
      const n = c.nodeList.find((x) => x.name === p.spec!.nodeName)!;
      const podDir = execFileSync('find', [path.join(c.nodes.cgroup2Dir(n), 'kubepods'), '-maxdepth', '2', '-name', `pod${p.metadata!.uid}`], { encoding: 'utf8' }).trim();
      const pid = execFileSync('sh', ['-c', `cat "${podDir}"/*/cgroup.procs | head -1`], { encoding: 'utf8' }).trim();
      expect(pid).toMatch(/^\d+$/);
      for (const dir of ['ingress', 'egress']) {
        expect(execFileSync('nsenter', ['-t', pid, '-n', 'tc', 'filter', 'show', 'dev', 'eth0', dir], { encoding: 'utf8' }).trim()).toBe('');
      }
    }
  }, 240_000);
});
