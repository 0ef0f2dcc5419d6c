/**
 * charts/switchyard and manifests/ are two ways to install the same thing:
 * `helm template` with the default values must render the objects that
 * `kubectl kustomize manifests/` renders (besides Helm's own labels and
 * config checksums, the Namespace, which `helm install --create-namespace`
 * makes, and the certificate, which each run makes anew). The chart's
 * certificate is checked on its own: the MutatingWebhookConfiguration's
 * caBundle must have signed it, and it must name the Service. Then the
 * values users set reach the objects, and bad values get one clear error.
 */
import { execFileSync, spawnSync } from 'child_process';
import { X509Certificate, createPrivateKey } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse, parseAllDocuments } from 'yaml';
import { run as cli } from '../cli/main';
import { controlPlaneMissing, k8sBinDir } from '../lab/src/controlplane';
import { CHART_DIR, helmBinary, helmMissing } from '../lab/src/helm';
import { projectRoot } from '../native';
import { gate } from './helpers/kernel';

const tools = gate('the Helm chart tests', helmMissing() ?? controlPlaneMissing());
const HELM_ONLY_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/instance', 'app.kubernetes.io/version'];
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

const docs = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJS() as Obj).filter(Boolean);

function helm(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(helmBinary(), args, { encoding: 'utf8', env: { ...process.env, HOME: os.tmpdir() } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const template = (...set: string[]) => {
  const r = helm(['template', 'switchyard', CHART_DIR, '-n', 'switchyard-system', '--kube-version', '1.31.4', ...set.flatMap((s) => ['--set', s])]);
  if (r.code !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return docs(r.stdout);
};

/** What both installs must agree on, with what only one of them can have taken out. */
function comparable(o: Obj): Obj {
  const c = JSON.parse(JSON.stringify(o)) as Obj;
  for (const l of HELM_ONLY_LABELS) delete c.metadata.labels?.[l];
  const tpl = c.spec?.template?.metadata;
  if (tpl?.annotations) {
    delete tpl.annotations['checksum/config'];
    if (!Object.keys(tpl.annotations).length) delete tpl.annotations;
  }
  if (c.kind === 'Secret') c.data = Object.fromEntries(Object.keys(c.data).map((k) => [k, '<made at install>']));
  if (c.kind === 'MutatingWebhookConfiguration') for (const w of c.webhooks) w.clientConfig.caBundle = '<made at install>';
  if (c.kind === 'ConfigMap') c.data = { 'injector.json': JSON.parse(c.data['injector.json']), 'interceptor.yaml': parse(c.data['interceptor.yaml']) };
  return c;
}

const byName = (objs: Obj[]) => Object.fromEntries(objs.filter((o) => o.kind !== 'Namespace').map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, comparable(o)]));
const find = (objs: Obj[], kind: string) => objs.find((o) => o.kind === kind)!;

tools.describe('the Helm chart', () => {
  let tmp: string;

  beforeAll(() => {
    tools.require();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-chart-'));
  });

  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('helm lint passes', () => {
    const r = helm(['lint', CHART_DIR, '--strict', '--kube-version', '1.31.4']);
    expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  test('with default values it renders exactly what kubectl kustomize manifests/ renders', async () => {
    const dir = path.join(tmp, 'manifests');
    fs.cpSync(path.join(projectRoot(), 'manifests'), dir, { recursive: true, filter: (s) => !s.includes(`${path.sep}generated`) });
    expect(await cli(['certs', '--out', path.join(dir, 'generated')], () => undefined, () => undefined)).toBe(0);
    const kustomized = docs(execFileSync(path.join(k8sBinDir(), 'kubectl'), ['kustomize', dir], { encoding: 'utf8' }));
    const rendered = template();
    expect(Object.keys(byName(rendered)).sort()).toEqual(Object.keys(byName(kustomized)).sort());
    expect(byName(rendered)).toEqual(byName(kustomized));
    // Every object carries Helm's labels too, so that helm uninstall and selectors find them.
    for (const o of rendered) expect([o.kind, o.metadata.labels?.['app.kubernetes.io/managed-by']]).toEqual([o.kind, 'Helm']);
  });

  test('the certificate it makes is signed by the caBundle it registers, and names the Service', () => {
    const rendered = template();
    const secret = find(rendered, 'Secret');
    const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
    const mwc = find(rendered, 'MutatingWebhookConfiguration');
    const bundles = new Set(mwc.webhooks.map((w: { clientConfig: { caBundle: string } }) => w.clientConfig.caBundle));
    expect(bundles.size).toBe(1);
    const ca = new X509Certificate(Buffer.from([...bundles][0] as string, 'base64'));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(Buffer.from(secret.data['ca.crt'], 'base64').toString()).toBe(ca.toString());
    expect(cert.checkHost('switchyard-webhook.switchyard-system.svc')).toBe('switchyard-webhook.switchyard-system.svc');
    expect(Date.parse(cert.validTo) - Date.now()).toBeGreaterThan(365 * 86_400_000);
    // A key that belongs to the certificate.
    expect(cert.checkPrivateKey(createPrivateKey(Buffer.from(secret.data['tls.key'], 'base64')))).toBe(true);
  });

  test('a certificate given in values is used as it is; half of one is refused', async () => {
    const certs = path.join(tmp, 'given');
    expect(await cli(['certs', '--out', certs], () => undefined, () => undefined)).toBe(0);
    const read = (f: string) => fs.readFileSync(path.join(certs, f), 'utf8');
    const r = helm(['template', 'switchyard', CHART_DIR, '-n', 'switchyard-system', '--kube-version', '1.31.4', '--set-file', `webhook.certificate.cert=${path.join(certs, 'tls.crt')}`, '--set-file', `webhook.certificate.key=${path.join(certs, 'tls.key')}`, '--set-file', `webhook.certificate.caCert=${path.join(certs, 'ca.crt')}`]);
    expect(r.stderr).toBe('');
    const rendered = docs(r.stdout);
    expect(Buffer.from(find(rendered, 'Secret').data['tls.crt'], 'base64').toString()).toBe(read('tls.crt'));
    expect(Buffer.from(find(rendered, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle, 'base64').toString()).toBe(read('ca.crt'));
    const half = helm(['template', 'switchyard', CHART_DIR, '--kube-version', '1.31.4', '--set-file', `webhook.certificate.cert=${path.join(certs, 'tls.crt')}`]);
    expect(half.code).not.toBe(0);
    expect(half.stderr).toContain('webhook.certificate: give cert, key and caCert together (PEM), or none of them to have the chart make them');
  });

  test('values reach the objects: images, sidecar mode, failure policies, map sizes, node settings, resources, scheduling', () => {
    const rendered = template(
      'images.repository=registry.example/sy',
      'images.tag=1.2.3',
      'images.pullPolicy=Always',
      'sidecar.mode=classic',
      'webhook.failurePolicy=Ignore',
      'webhook.replicas=3',
      'interceptor.failurePolicy=fail-open',
      'interceptor.sockmapAcceleration=false',
      'interceptor.mapSizes.sy_pods=512',
      'interceptor.nodeSelector.mesh=yes',
      'interceptor.resources.limits.memory=512Mi',
      'webhook.tolerations[0].key=dedicated',
      'webhook.tolerations[0].operator=Exists',
    );
    const ds = find(rendered, 'DaemonSet');
    const dep = find(rendered, 'Deployment');
    expect(ds.spec.template.spec.containers[0]).toMatchObject({ image: 'registry.example/sy/interceptor:1.2.3', imagePullPolicy: 'Always', resources: { limits: { memory: '512Mi' } } });
    expect(ds.spec.template.spec.nodeSelector).toEqual({ mesh: 'yes' });
    expect(dep.spec).toMatchObject({ replicas: 3, template: { spec: { tolerations: [{ key: 'dedicated', operator: 'Exists' }] } } });
    expect(dep.spec.template.spec.containers[0].image).toBe('registry.example/sy/webhook:1.2.3');
    const cm = find(rendered, 'ConfigMap');
    expect(JSON.parse(cm.data['injector.json'])).toEqual({ sidecar: { image: 'registry.example/sy/proxy:1.2.3', imagePullPolicy: 'IfNotPresent', mode: 'classic' } });
    expect(parse(cm.data['interceptor.yaml'])).toMatchObject({ failurePolicy: 'fail-open', sockmapAcceleration: false, serviceLoadBalancing: true, mapSizes: { sy_pods: 512 } });
    expect(find(rendered, 'MutatingWebhookConfiguration').webhooks.map((w: { failurePolicy: string }) => w.failurePolicy)).toEqual(['Ignore', 'Ignore']);
    // A changed setting rolls the pods that read it.
    expect(ds.spec.template.metadata.annotations['checksum/config']).not.toBe(find(template(), 'DaemonSet').spec.template.metadata.annotations['checksum/config']);
  });

  test('another namespace: everything follows it, the webhook excludes it, and the injector knows it as its own', () => {
    const r = helm(['template', 'sy', CHART_DIR, '-n', 'mesh-system', '--kube-version', '1.31.4']);
    const rendered = docs(r.stdout);
    for (const o of rendered.filter((x) => !['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'].includes(x.kind))) expect([o.kind, o.metadata.namespace]).toEqual([o.kind, 'mesh-system']);
    const mwc = find(rendered, 'MutatingWebhookConfiguration');
    expect(mwc.webhooks[0].clientConfig.service.namespace).toBe('mesh-system');
    expect(mwc.webhooks[0].namespaceSelector.matchExpressions[1].values).toContain('mesh-system');
    expect(JSON.parse(find(rendered, 'ConfigMap').data['injector.json']).ownNamespace).toBe('mesh-system');
    const cert = new X509Certificate(Buffer.from(find(rendered, 'Secret').data['tls.crt'], 'base64'));
    expect(cert.checkHost('switchyard-webhook.mesh-system.svc')).toBeTruthy();
  });

  test.each([
    ['an unknown setting', ['interceptor.sockmap=false'], /additional properties 'sockmap' not allowed|Additional property sockmap is not allowed/],
    ['a failure policy that does not exist', ['interceptor.failurePolicy=closed'], /failurePolicy: interceptor.failurePolicy must be one of the following: "fail-closed", "fail-open"|value must be one of 'fail-closed', 'fail-open'/],
    ['a map size of 0', ['interceptor.mapSizes.sy_pods=0'], /sy_pods: Must be greater than or equal to 1|minimum: got 0, want 1/],
  ])('bad values are refused with one error naming the setting: %s', (_name, set, message) => {
    const r = helm(['template', 'switchyard', CHART_DIR, '--kube-version', '1.31.4', ...set.flatMap((s) => ['--set', s])]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });
});
