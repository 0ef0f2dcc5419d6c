/**
 * `kubectl switchyard check`: is this cluster ready for Switchyard, and is
 * the install healthy? Like `linkerd check`, one line per fact, ✓ or ✗, and
 * what to do about each ✗. Exit status 1 on any ✗.
 *
 *   Nodes        every node has a Ready interceptor, and its node report
 *                (kernel, BTF, cgroup2, bpffs, BPF hooks, CNI chain) passes
 *   Webhook      replicas ready; the apiserver really calls it (a server-side
 *                dry run of a pod that asks for injection comes back with the
 *                sidecar); its certificate is valid, names the Service and is
 *                signed by the caBundle; the MutatingWebhookConfiguration is
 *                what this release generates for the installed settings
 */
import { X509Certificate } from 'crypto';
import { INSTALL, NAMESPACE_INJECTION_LABEL, POD_INJECT_KEY, SIDECAR_CONTAINER_NAME, SYSTEM_NAMESPACES } from '../../api/contract';
import { mergeConfig } from '../../webhook/src/config';
import { mutatingWebhookConfiguration } from '../../webhook/src/webhook-config';
import { Check, fail, failed, formatChecks, nodeChecks, ok, warn } from '../checks';
import { AgentPod, Options, PluginError, agents, getJson, kubectl, onNode } from './kubectl';

const CERT_WARN_DAYS = 30;

function nodeSection(o: Options): Check[] {
  const nodes = JSON.parse(kubectl(o, ['get', 'nodes', '-o', 'json'])).items as any[];
  let pods: AgentPod[] = [];
  try {
    pods = agents(o);
  } catch (e) {
    return [fail((e as Error).message, 'install Switchyard: switchyard certs, then kubectl apply -k manifests/')];
  }
  const out: Check[] = [];
  for (const n of nodes) {
    const name = n.metadata.name as string;
    const agent = pods.find((p) => p.node === name);
    if (!agent) {
      out.push(fail(`${name}: no interceptor pod`, 'the DaemonSet does not run there (taints, nodeSelector?): mesh pods on this node are injected but not intercepted'));
      continue;
    }
    if (!agent.ready) {
      out.push(fail(`${name}: interceptor ${agent.name} is not Ready`, `see kubectl logs -n ${o.installNamespace} ${agent.name} -c interceptor and kubectl describe pod -n ${o.installNamespace} ${agent.name}`));
      continue;
    }
    out.push(ok(`${name}: interceptor ${agent.name} Ready`));
    try {
      out.push(...nodeChecks(JSON.parse(onNode(o, agent, ['check', '-o', 'json']))).map((c) => ({ ...c, what: `${name}: ${c.what}` })));
    } catch (e) {
      out.push(fail(`${name}: cannot read the node report (${(e as Error).message})`, `is the interceptor image of this release? kubectl exec -n ${o.installNamespace} ${agent.name} -c interceptor -- switchyard check`));
    }
  }
  return out;
}

/** A namespace where a pod that asks for injection reaches the webhook: not a system one, not disabled. */
function probeNamespace(o: Options): string | undefined {
  const items = JSON.parse(kubectl(o, ['get', 'namespaces', '-o', 'json'])).items as any[];
  const usable = items.filter((n) => ![...SYSTEM_NAMESPACES, o.installNamespace].includes(n.metadata.name) && n.metadata.labels?.[NAMESPACE_INJECTION_LABEL] !== 'disabled' && !n.metadata.deletionTimestamp);
  return (usable.find((n) => n.metadata.name === 'default') ?? usable[0])?.metadata.name;
}

function reachability(o: Options): Check {
  const ns = probeNamespace(o);
  if (!ns) return warn('no namespace to try an injection in (all are system namespaces or disabled)', 'create one, or run check again once an application namespace exists');
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'switchyard-check-', namespace: ns, labels: { [POD_INJECT_KEY]: 'true' } },
    spec: { containers: [{ name: 'app', image: 'switchyard-check.invalid/app:0' }] },
  };
  try {
    const admitted = JSON.parse(kubectl(o, ['create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(pod)));
    const names = [...(admitted.spec?.initContainers ?? []), ...(admitted.spec?.containers ?? [])].map((c: { name: string }) => c.name);
    return names.includes(SIDECAR_CONTAINER_NAME)
      ? ok(`the apiserver calls the webhook: a dry-run pod in namespace ${ns} that asks for injection came back with ${SIDECAR_CONTAINER_NAME}`)
      : fail(
          `a dry-run pod in namespace ${ns} that asks for injection came back without ${SIDECAR_CONTAINER_NAME}`,
          `the webhook was not called or skipped it; with failurePolicy Ignore an unreachable webhook looks like this: see kubectl logs -n ${o.installNamespace} -l app.kubernetes.io/name=${INSTALL.webhookDeployment}`,
        );
  } catch (e) {
    return fail(`the apiserver could not use the webhook: ${(e as Error).message.replace(/^kubectl [^:]*: /, '')}`, `check the webhook pods, the Service ${INSTALL.webhookService} and its endpoints: kubectl get endpointslices -n ${o.installNamespace}`);
  }
}

function certificate(o: Options, caBundle: string | undefined): Check[] {
  const secret = getJson(o, ['secret', '-n', o.installNamespace, INSTALL.webhookSecret]);
  if (!secret?.data?.['tls.crt']) return [fail(`Secret ${o.installNamespace}/${INSTALL.webhookSecret} with tls.crt is missing`, 'switchyard certs --out DIR writes it (secret.yaml); apply it')];
  const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
  const out: Check[] = [];
  const days = Math.floor((Date.parse(cert.validTo) - Date.now()) / 86_400_000);
  const renew = `renew it with the same CA: switchyard certs --ca-from DIR --out DIR, then kubectl apply -f DIR/secret.yaml and restart the webhook`;
  if (Date.parse(cert.validFrom) > Date.now()) out.push(fail(`the webhook's certificate is not valid before ${cert.validFrom}`, 'check the clocks of the machine that made it and of the nodes'));
  else if (days < 0) out.push(fail(`the webhook's certificate expired on ${cert.validTo}`, renew));
  else if (days < CERT_WARN_DAYS) out.push(warn(`the webhook's certificate expires in ${days} days (${cert.validTo})`, renew));
  else out.push(ok(`the webhook's certificate is valid until ${cert.validTo} (${days} days)`));
  const host = `${INSTALL.webhookService}.${o.installNamespace}.svc`;
  out.push(cert.checkHost(host) ? ok(`it names ${host}`) : fail(`it does not name ${host}`, 'make it again with switchyard certs (it names the Service)'));
  if (caBundle) {
    let signed = false;
    try {
      signed = cert.verify(new X509Certificate(Buffer.from(caBundle, 'base64')).publicKey);
    } catch {
      signed = false;
    }
    out.push(signed ? ok('the MutatingWebhookConfiguration\'s caBundle signed it') : fail('the MutatingWebhookConfiguration\'s caBundle did not sign it: the apiserver will refuse the TLS handshake', 'apply the Secret and the webhook configuration from the same switchyard certs run'));
  }
  return out;
}

/** Where actual differs from expected, for every field expected sets (the apiserver adds defaults of its own). */
export function drift(expected: unknown, actual: unknown, at = ''): string[] {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${at || '.'}: ${JSON.stringify(actual)} (expected ${JSON.stringify(expected)})`];
    return expected.flatMap((e, i) => drift(e, actual[i], `${at}[${i}]`));
  }
  if (expected && typeof expected === 'object') {
    if (!actual || typeof actual !== 'object') return [`${at || '.'}: missing`];
    return Object.entries(expected).flatMap(([k, v]) => drift(v, (actual as Record<string, unknown>)[k], `${at}.${k}`));
  }
  return expected === actual ? [] : [`${at}: ${JSON.stringify(actual)} (expected ${JSON.stringify(expected)})`];
}

function webhookSection(o: Options): Check[] {
  const out: Check[] = [];
  const dep = getJson(o, ['deployment', '-n', o.installNamespace, INSTALL.webhookDeployment]);
  if (!dep) return [fail(`Deployment ${o.installNamespace}/${INSTALL.webhookDeployment} is missing`, 'kubectl apply -k manifests/')];
  const ready = dep.status?.readyReplicas ?? 0;
  const want = dep.spec?.replicas ?? 1;
  out.push(ready >= want ? ok(`Deployment ${INSTALL.webhookDeployment}: ${ready}/${want} replicas ready`) : ready > 0 ? warn(`Deployment ${INSTALL.webhookDeployment}: ${ready}/${want} replicas ready`, `kubectl describe deployment -n ${o.installNamespace} ${INSTALL.webhookDeployment}`) : fail(`Deployment ${INSTALL.webhookDeployment}: no replica ready`, `kubectl describe deployment -n ${o.installNamespace} ${INSTALL.webhookDeployment}; kubectl logs -n ${o.installNamespace} -l app.kubernetes.io/name=${INSTALL.webhookDeployment}`));
  const mwc = getJson(o, ['mutatingwebhookconfiguration', INSTALL.webhookConfiguration]);
  if (!mwc) return [...out, fail(`MutatingWebhookConfiguration ${INSTALL.webhookConfiguration} is missing: no pod is injected`, 'switchyard certs --out DIR writes it; apply it (kubectl apply -k manifests/ does)')];
  out.push(reachability(o));
  const caBundle = mwc.webhooks?.[0]?.clientConfig?.caBundle as string | undefined;
  out.push(...certificate(o, caBundle));
  const cm = getJson(o, ['configmap', '-n', o.installNamespace, INSTALL.config]);
  const config = mergeConfig(JSON.parse(cm?.data?.['injector.json'] ?? '{}'));
  const expected = mutatingWebhookConfiguration(config, {
    endpoint: { service: { name: INSTALL.webhookService, namespace: o.installNamespace, port: 443, path: '/mutate' } },
    caBundlePem: caBundle ? Buffer.from(caBundle, 'base64').toString() : '',
  });
  const diffs = drift((expected as { webhooks: unknown }).webhooks, mwc.webhooks, 'webhooks');
  const chosen = diffs.filter((d) => /\.(failurePolicy|timeoutSeconds):/.test(d));
  const wrong = diffs.filter((d) => !chosen.includes(d));
  if (!diffs.length) out.push(ok(`MutatingWebhookConfiguration ${INSTALL.webhookConfiguration} is what this release generates`));
  if (wrong.length) out.push(fail(`MutatingWebhookConfiguration ${INSTALL.webhookConfiguration} differs from what this release generates: ${wrong.join('; ')}`, 'apply the one switchyard certs writes for this release'));
  if (chosen.length) out.push(warn(`MutatingWebhookConfiguration ${INSTALL.webhookConfiguration} sets ${chosen.join('; ')}`, 'fine if chosen on purpose; failurePolicy Ignore admits pods without the sidecar while the webhook is down'));
  return out;
}

export function check(o: Options, out: (s: string) => void): number {
  if (o.positional.length) throw new PluginError('usage: kubectl switchyard check');
  const sections: [string, () => Check[]][] = [
    ['Nodes', () => nodeSection(o)],
    ['Webhook', () => webhookSection(o)],
  ];
  let bad = false;
  for (const [title, run] of sections) {
    const checks = run();
    bad ||= failed(checks);
    out(`${title}\n${formatChecks(checks, '  ')}`);
  }
  out(bad ? 'Some checks failed: see ✗ above.\n' : 'All checks passed.\n');
  return bad ? 1 : 0;
}
