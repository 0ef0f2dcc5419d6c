/**
 * manifests/: every object is valid against the Kubernetes OpenAPI schema,
 * the install follows least privilege, the settings in the ConfigMap pass
 * the same validation the programs run, and the webhook configuration comes
 * from the webhook's own generator (switchyard certs).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse, parseAllDocuments } from 'yaml';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { projectRoot } from '../native';
import { validateAgentConfig } from '../interceptor/src/agent/config';
import { run as cli } from '../cli/main';
import { mutatingWebhookConfiguration } from '../webhook/src/webhook-config';
import { loadConfig } from '../webhook/src/config';
import { INSTALL, SWITCHYARD_NAMESPACE } from '../api/contract';

const DIR = path.join(projectRoot(), 'manifests');
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  Namespace,
  ServiceAccount,
  ClusterRole,
  ClusterRoleBinding,
  ConfigMap,
  Deployment,
  DaemonSet,
  PodDisruptionBudget,
  Service,
  MutatingWebhookConfiguration,
};

const load = (file: string) => parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => d.toJS()).filter(Boolean);
const all = () => ['namespace.yaml', 'rbac.yaml', 'config.yaml', 'webhook.yaml', 'interceptor.yaml', 'uninstall/cleanup.yaml'].flatMap((f) => load(path.join(DIR, f)));
const find = (kind: string, name: string) => all().find((o) => o.kind === kind && o.metadata.name === name);

describe('manifests', () => {
  test('the install names what api/contract.ts says it names (the plugin finds objects by those names)', () => {
    expect(find('Namespace', SWITCHYARD_NAMESPACE)).toBeDefined();
    expect(find('ConfigMap', INSTALL.config)?.data?.['injector.json']).toBeDefined();
    expect(find('Deployment', INSTALL.webhookDeployment)?.metadata.namespace ?? SWITCHYARD_NAMESPACE).toBe(SWITCHYARD_NAMESPACE);
    expect(find('Service', INSTALL.webhookService)).toBeDefined();
    expect(find('DaemonSet', INSTALL.interceptorDaemonSet)).toBeDefined();
    expect(find('Deployment', INSTALL.webhookDeployment).spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName).toBe(INSTALL.webhookSecret);
    expect(mutatingWebhookConfiguration(loadConfig(), { endpoint: {}, caBundlePem: '' }).metadata).toMatchObject({ name: INSTALL.webhookConfiguration });
  });

  test('every object is valid against the Kubernetes schema', () => {
    const objs = all();
    expect(objs.length).toBeGreaterThanOrEqual(12);
    for (const o of objs) {
      const M = MODELS[o.kind];
      expect(M).toBeDefined();
      expect(() => new M(o).validate()).not.toThrow();
    }
  });

  test('the kustomization lists files that exist, or that switchyard certs writes', () => {
    const k = load(path.join(DIR, 'kustomization.yaml'))[0];
    for (const r of k.resources as string[]) {
      if (r.startsWith('generated/')) expect(['generated/secret.yaml', 'generated/mutatingwebhookconfiguration.yaml']).toContain(r);
      else expect(fs.existsSync(path.join(DIR, r))).toBe(true);
    }
  });

  test('RBAC is read-only and minimal', () => {
    const verbs = (name: string) => (find('ClusterRole', name).rules as { resources: string[]; verbs: string[] }[]).map((r) => `${r.resources.join(',')}:${r.verbs.join(',')}`);
    expect(verbs('switchyard-webhook')).toEqual(['namespaces:get,list,watch', 'events:create,patch']);
    expect(verbs('switchyard-interceptor')).toEqual(['pods:list,watch', 'services:list,watch', 'endpointslices:list,watch', 'events:create,patch']);
  });

  test('webhook: 2 replicas, spread, disruption budget, probes, resources, non-root, read-only root, no capabilities', () => {
    const d = find('Deployment', 'switchyard-webhook');
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.template.spec.affinity.podAntiAffinity).toBeDefined();
    expect(find('PodDisruptionBudget', 'switchyard-webhook').spec.minAvailable).toBe(1);
    const c = d.spec.template.spec.containers[0];
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.resources.requests).toBeDefined();
    expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.securityContext.capabilities.add).toBeUndefined();
  });

  test('interceptor: only the capabilities it needs, every node, the mounts, and the CNI install init container', () => {
    const ds = find('DaemonSet', 'switchyard-interceptor');
    const spec = ds.spec.template.spec;
    const agent = spec.containers[0];
    expect(agent.securityContext.privileged).toBe(false);
    expect(agent.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE'] });
    expect(spec.tolerations).toEqual([{ operator: 'Exists' }]);
    const mounts = (c: { volumeMounts: { mountPath: string }[] }) => c.volumeMounts.map((m) => m.mountPath);
    expect(mounts(agent)).toEqual(expect.arrayContaining(['/sys/fs/bpf', '/sys/fs/cgroup', '/var/run/netns', '/run/switchyard']));
    // Bidirectional propagation would need a privileged container.
    expect(agent.volumeMounts.every((m: { mountPropagation?: string }) => m.mountPropagation !== 'Bidirectional')).toBe(true);
    const init = spec.initContainers[0];
    expect(init.command).toContain('install-cni');
    expect(mounts(init)).toEqual(['/host/opt/cni/bin', '/host/etc/cni/net.d']);
    expect(agent.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    // The plugin dials the socket the agent listens on.
    const settings = JSON.parse(init.args[init.args.indexOf('--settings') + 1]);
    const cfgText = find('ConfigMap', 'switchyard-config').data['interceptor.yaml'];
    expect(cfgText).toContain(`socketPath: ${settings.agentSocket}`);
  });

  test('the ConfigMap holds settings the programs accept', () => {
    const data = find('ConfigMap', 'switchyard-config').data;
    const agentCfg = parse(data['interceptor.yaml']);
    expect(() => validateAgentConfig({ ...agentCfg, nodeName: 'node-a' })).not.toThrow();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-man-'));
    try {
      fs.writeFileSync(path.join(tmp, 'injector.json'), data['injector.json']);
      expect(loadConfig(path.join(tmp, 'injector.json')).sidecar.image).toBe('ghcr.io/switchyard-dev/proxy:0.1.0');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("the lab's overlay only turns node frontends on: its interceptor.yaml is the shipped one plus nodePort, and the agent accepts it", () => {
    const shipped = parse(find('ConfigMap', 'switchyard-config').data['interceptor.yaml']);
    const patch = load(path.join(DIR, '..', 'lab', 'manifests', 'interceptor-config.yaml'))[0];
    const { nodePort, ...rest } = parse(patch.data['interceptor.yaml']);
    expect(rest).toEqual(shipped);
    expect(nodePort).toEqual({ mode: 'dsr', devices: ['eth0'] });
    expect(validateAgentConfig({ ...shipped, nodePort, nodeName: 'node-a' }).nodePort?.mode).toBe('dsr');
  });

  test('switchyard certs writes the webhook configuration the webhook generator makes, valid and with the CA', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-man-'));
    try {
      expect(await cli(['certs', '--out', tmp], () => undefined, () => undefined)).toBe(0);
      const mwc = load(path.join(tmp, 'mutatingwebhookconfiguration.yaml'))[0];
      expect(() => new MutatingWebhookConfiguration(mwc).validate()).not.toThrow();
      const ca = fs.readFileSync(path.join(tmp, 'ca.crt'), 'utf8');
      expect(mwc).toEqual(
        mutatingWebhookConfiguration(loadConfig(undefined), { endpoint: { service: { name: 'switchyard-webhook', namespace: 'switchyard-system', port: 443, path: '/mutate' } }, caBundlePem: ca }),
      );
      expect(find('Service', 'switchyard-webhook').spec.ports[0].port).toBe(443);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
