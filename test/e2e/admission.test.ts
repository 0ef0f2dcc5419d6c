/**
 * Injection through the real admission chain: a real kube-apiserver (and
 * etcd) calls the Switchyard webhook over HTTPS, registered by a
 * MutatingWebhookConfiguration that `switchyard certs` generated, with
 * failurePolicy Fail. Needs scripts/lab-build.sh (the test command runs it);
 * outside CI a missing control plane skips with the reason, in CI it fails.
 */
import { X509Certificate } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import { parse } from 'yaml';
import { spawnSync } from 'child_process';
import { ControlPlane, controlPlaneMissing, freePort } from '../../lab/src/controlplane';
import { CHART_DIR, helmBinary, helmMissing } from '../../lab/src/helm';
import { startWebhookProcess } from '../../lab/src/webhook-process';
import { run as cli } from '../../cli/main';
import { MANAGED_LABEL, NAMESPACE_INJECTION_LABEL, POD_INJECT_KEY, SIDECAR_CONTAINER_NAME } from '../../api/contract';
import { projectRoot } from '../../native';
import { gate } from '../helpers/kernel';
import { Proc, waitUntil } from '../../lab/src/proc';

const lab = gate('e2e admission tests', controlPlaneMissing());

lab.describe('injection through a real kube-apiserver', () => {
  let cp: ControlPlane;
  let webhook: Proc | undefined;
  let tmp: string;
  let port: number;

  const pod = (name: string, labels: Record<string, string> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: { containers: [{ name: 'app', image: 'registry.example/app:1', ports: [{ containerPort: 8080 }] }] },
  });
  /** A namespace and its default ServiceAccount (the controller-manager's job, which this test does not run). */
  const namespace = async (name: string, labels: Record<string, string> = {}) => {
    const r = await cp.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
    await cp.request('POST', `/api/v1/namespaces/${name}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
    return r;
  };
  const create = (ns: string, p: object) => cp.request('POST', `/api/v1/namespaces/${ns}/pods`, p);
  const containers = (p: any) => [...(p.spec.initContainers ?? []), ...p.spec.containers].map((c: { name: string }) => c.name);

  const startWebhook = async () => {
    webhook = await startWebhookProcess({ certDir: tmp, port, kubeconfig: cp.kubeconfig });
  };

  beforeAll(async () => {
    lab.require();
    cp = new ControlPlane();
    await cp.start();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sylab-e2e-'));
    port = await freePort();
    expect(await cli(['certs', '--out', tmp, '--ip', '127.0.0.1', '--url', `https://127.0.0.1:${port}/mutate`], () => undefined, () => undefined)).toBe(0);
    await startWebhook();
    const mwc = parse(fs.readFileSync(path.join(tmp, 'mutatingwebhookconfiguration.yaml'), 'utf8'));
    mwc.metadata.name = 'switchyard-lab-injector'; // the lab's registration (url); the manifests' own (service) is dry-run below
    const r = await cp.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc);
    expect(r.status).toBe(201);
    expect((await namespace('meshed', { [NAMESPACE_INJECTION_LABEL]: 'enabled' })).status).toBe(201);
    expect((await namespace('plain')).status).toBe(201);
  }, 180_000);

  afterAll(async () => {
    await webhook?.stop('SIGTERM');
    await cp?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a pod in a labelled namespace gets the sidecar, the managed label and its annotations', async () => {
    const r = await create('meshed', pod('a'));
    expect({ status: r.status, message: r.body.message }).toEqual({ status: 201, message: undefined });
    expect(containers(r.body)).toContain(SIDECAR_CONTAINER_NAME);
    expect(r.body.metadata.labels[MANAGED_LABEL]).toBe('true');
    expect(Object.keys(r.body.metadata.annotations).some((k) => k.startsWith('switchyard.dev/'))).toBe(true);
    expect(webhook!.lines.some((l) => l.includes('pod=meshed/a') || l.includes('namespace=meshed'))).toBe(true);
  });

  test('re-invocation is idempotent: a pod that already carries the sidecar comes back with exactly one', async () => {
    const first = (await cp.request('GET', '/api/v1/namespaces/meshed/pods/a')).body;
    const again = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a-again', labels: first.metadata.labels, annotations: first.metadata.annotations }, spec: { ...first.spec, nodeName: undefined } };
    const r = await create('meshed', again);
    expect(r.status).toBe(201);
    expect(containers(r.body).filter((c) => c === SIDECAR_CONTAINER_NAME)).toHaveLength(1);
    expect(containers(r.body)).toEqual(containers(first));
  });

  test('a pod in an unlabelled namespace, and a pod that opts out, are left alone', async () => {
    const plain = await create('plain', pod('b'));
    expect(plain.status).toBe(201);
    expect(containers(plain.body)).toEqual(['app']);
    const optOut = await create('meshed', pod('c', { [POD_INJECT_KEY]: 'false' }));
    expect(optOut.status).toBe(201);
    expect(containers(optOut.body)).toEqual(['app']);
  });

  test('odd but legal shapes are created: generateName, many containers, a 1 MB env list', async () => {
    const gen = await create('meshed', { ...pod(''), metadata: { generateName: 'gen-' } });
    expect(gen.status).toBe(201);
    expect(gen.body.metadata.name).toMatch(/^gen-/);
    expect(containers(gen.body)).toContain(SIDECAR_CONTAINER_NAME);
    const many = pod('many');
    many.spec.containers = Array.from({ length: 20 }, (_, i) => ({ name: `c${i}`, image: 'img', ports: [] }));
    expect((await create('meshed', many)).status).toBe(201);
    const big = pod('big') as any;
    big.spec.containers[0].env = Array.from({ length: 8000 }, (_, i) => ({ name: `V${i}`, value: 'x'.repeat(120) }));
    const r = await create('meshed', big);
    expect(r.status).toBe(201);
    expect(containers(r.body)).toContain(SIDECAR_CONTAINER_NAME);
  });

  test("a Deployment's pods are injected on the controller-manager's ReplicaSet path", async () => {
    await cp.startControllerManager();
    const labels = { app: 'web' };
    const d = await cp.request('POST', '/apis/apps/v1/namespaces/meshed/deployments', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: { replicas: 2, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: pod('x').spec } },
    });
    expect(d.status).toBe(201);
    const list = async () => (await cp.request('GET', `/api/v1/namespaces/meshed/pods?labelSelector=app%3Dweb`)).body.items as any[];
    let pods: any[] = [];
    const deadline = Date.now() + 60_000;
    while ((pods = await list()).length < 2) {
      if (Date.now() > deadline) throw new Error(`the ReplicaSet created ${pods.length} pods in 60 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const p of pods) {
      expect(p.metadata.ownerReferences[0].kind).toBe('ReplicaSet');
      expect(containers(p).filter((c) => c === SIDECAR_CONTAINER_NAME)).toHaveLength(1);
      expect(p.metadata.labels[MANAGED_LABEL]).toBe('true');
    }
  });

  test('manifests: kubectl apply --dry-run=server -k manifests/ succeeds against the real apiserver', async () => {
    const dir = path.join(tmp, 'manifests');
    fs.cpSync(path.join(projectRoot(), 'manifests'), dir, { recursive: true });
    fs.rmSync(path.join(dir, 'generated'), { recursive: true, force: true });
    expect(await cli(['certs', '--out', path.join(dir, 'generated')], () => undefined, () => undefined)).toBe(0);
    // Namespaced objects are validated in a namespace that exists; everything else is only dry-run.
    expect((await namespace('switchyard-system')).status).toBe(201);
    const r = cp.kubectl(['apply', '--dry-run=server', '-k', dir]);
    expect({ code: r.code, errors: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:')) }).toEqual({ code: 0, errors: [] });
    for (const obj of ['daemonset.apps/switchyard-interceptor', 'deployment.apps/switchyard-webhook', 'poddisruptionbudget.policy/switchyard-webhook', 'clusterrole.rbac.authorization.k8s.io/switchyard-interceptor', 'mutatingwebhookconfiguration.admissionregistration.k8s.io/switchyard-sidecar-injector']) {
      expect(r.stdout).toContain(`${obj} created (server dry run)`);
    }
  });

  test('the chart: helm template | kubectl apply --dry-run=server -f - succeeds against the real apiserver', async () => {
    if (helmMissing()) throw new Error(helmMissing());
    const r = spawnSync(helmBinary(), ['template', 'switchyard', CHART_DIR, '-n', 'switchyard-system', '--kube-version', '1.31.4'], { encoding: 'utf8', env: { ...process.env, HOME: os.tmpdir() } });
    expect(r.status).toBe(0);
    if (!(await cp.request('GET', '/api/v1/namespaces/switchyard-system')).body?.metadata) expect((await namespace('switchyard-system')).status).toBe(201);
    const applied = cp.kubectl(['apply', '--dry-run=server', '-f', '-'], r.stdout);
    expect({ code: applied.code, errors: applied.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:')) }).toEqual({ code: 0, errors: [] });
    for (const obj of ['daemonset.apps/switchyard-interceptor', 'deployment.apps/switchyard-webhook', 'secret/switchyard-webhook-tls', 'mutatingwebhookconfiguration.admissionregistration.k8s.io/switchyard-sidecar-injector']) {
      expect(applied.stdout).toContain(`${obj} created (server dry run)`);
    }
  });

  test('certificate rotation during a stream of pod creations: 0 failures, and the new certificate is served', async () => {
    const rotated = path.join(tmp, 'rotated');
    expect(await cli(['certs', '--out', rotated, '--ip', '127.0.0.1', '--url', `https://127.0.0.1:${port}/mutate`, '--ca-from', tmp], () => undefined, () => undefined)).toBe(0);
    const statuses: number[] = [];
    let injected = 0;
    let stop = false;
    const stream = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await create('meshed', pod(`rot-${i}`));
        statuses.push(r.status);
        if (r.status === 201 && containers(r.body).includes(SIDECAR_CONTAINER_NAME)) injected++;
      }
    })();
    await waitUntil(() => statuses.length >= 10, '10 pods created before the rotation', 30_000);
    // As a Secret volume update lands: the new key first, then the certificate the webhook watches.
    for (const f of ['tls.key', 'tls.crt']) {
      fs.copyFileSync(path.join(rotated, f), path.join(tmp, `${f}.new`));
      fs.renameSync(path.join(tmp, `${f}.new`), path.join(tmp, f));
    }
    await webhook!.waitForLine((l) => l.includes('serving certificate reloaded'), 30_000);
    const at = statuses.length;
    await waitUntil(() => statuses.length >= at + 20, '20 pods created after the rotation', 30_000);
    stop = true;
    await stream;
    expect(statuses.filter((s) => s !== 201)).toEqual([]);
    expect(injected).toBe(statuses.length);
    const served = await new Promise<string>((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(path.join(tmp, 'ca.crt')) }, () => {
        resolve(sock.getPeerX509Certificate()!.fingerprint256);
        sock.end();
      });
      sock.on('error', reject);
    });
    expect(served).toBe(new X509Certificate(fs.readFileSync(path.join(rotated, 'tls.crt'))).fingerprint256);
  });

  test('failurePolicy Fail: with the webhook stopped, labelled namespaces are refused clearly and others are unaffected', async () => {
    await webhook!.stop('SIGTERM');
    const refused = await create('meshed', pod('d'));
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(String(refused.body.message)).toMatch(/failed calling webhook "by-namespace\.inject\.switchyard\.dev"/);
    expect((await create('plain', pod('e'))).status).toBe(201);
    await startWebhook();
    expect((await create('meshed', pod('f'))).status).toBe(201);
  });
});
