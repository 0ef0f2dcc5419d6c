/**
 * `kubectl switchyard check-inject POD` and `check-inject -f FILE`: is the
 * pod (or would it be) injected, and registered, and why, in one line and
 * then in detail, like `istioctl x check-inject`.
 *
 * The injection answer comes from the webhook's own decide() run against
 * the namespace's labels and the installed injector settings, so the reason
 * is the typed one the webhook logs; for -f, a server-side dry run of the
 * pod through the real apiserver and webhook confirms it. Registration is
 * the answer of the agent on the pod's node.
 */
import * as fs from 'fs';
import { INSTALL, MANAGED_LABEL, SIDECAR_CONTAINER_NAME } from '../../api/contract';
import { mergeConfig } from '../../webhook/src/config';
import { PodLike, decide, isInjected } from '../../webhook/src/inject';
import { podsInYaml, uninjected } from '../../webhook/src/offline';
import { Decision, Reason } from '../../webhook/src/reasons';
import { Options, PluginError, agentOn, getJson, getPod, kubectl, namespaceOf, onNode } from './kubectl';

/** What to do when a pod is not injected, by reason. */
const TO_INJECT: Partial<Record<Reason, (ns: string) => string>> = {
  'not-enabled': (ns) => `kubectl label namespace ${ns} switchyard.dev/injection=enabled (or label the pod template switchyard.dev/inject=true), then recreate the pod`,
  'namespace-disabled': (ns) => `the namespace opts out; remove its label (kubectl label namespace ${ns} switchyard.dev/injection-) or set it to enabled`,
  'pod-opted-out': () => 'remove switchyard.dev/inject=false from the pod template',
  'host-network': () => 'a hostNetwork pod cannot be meshed: its sockets are the node\'s',
  'system-namespace': () => 'run the workload in an application namespace',
  'own-namespace': () => 'run the workload in an application namespace',
  'invalid-annotation': () => 'fix the value named above; the webhook refuses such pods',
  'namespace-unknown': () => 'the webhook had not seen the namespace yet; create the pod again',
};

function injectorConfig(o: Options) {
  const cm = getJson(o, ['configmap', '-n', o.installNamespace, INSTALL.config]);
  if (!cm) throw new PluginError(`ConfigMap ${o.installNamespace}/${INSTALL.config} not found: is Switchyard installed there (--switchyard-namespace NS)?`);
  return mergeConfig(JSON.parse(cm.data?.['injector.json'] ?? '{}'));
}

function namespaceLabels(o: Options, ns: string): Record<string, string> {
  const namespace = getJson(o, ['namespace', ns]);
  if (!namespace) throw new PluginError(`namespace ${ns} not found`);
  return namespace.metadata.labels ?? {};
}

const why = (d: Decision) => `${d.reason}: ${d.message}`;

/** Switchyard's Events about the pod and its owner, newest last. */
function events(o: Options, ns: string, pod: any): string[] {
  const names = [pod.metadata.name, ...(pod.metadata.ownerReferences ?? []).map((r: { name: string }) => r.name)];
  const items = (JSON.parse(kubectl(o, ['get', 'events', '-n', ns, '-o', 'json'])).items as any[])
    .filter((e) => names.includes(e.involvedObject?.name) && /switchyard/.test(`${e.reportingComponent ?? ''} ${e.source?.component ?? ''}`))
    .sort((a, b) => Date.parse(a.lastTimestamp ?? a.eventTime ?? 0) - Date.parse(b.lastTimestamp ?? b.eventTime ?? 0));
  return items.map((e) => `${e.type} ${e.reason} on ${e.involvedObject.kind.toLowerCase()}/${e.involvedObject.name}: ${e.message}`);
}

function livePod(o: Options, name: string, out: (s: string) => void): void {
  const ns = namespaceOf(o);
  const pod = getPod(o, ns, name);
  const labels = namespaceLabels(o, ns);
  const injected = isInjected(pod);
  const now = decide(uninjected(pod), { namespace: ns, labels }, injectorConfig(o));
  const detail: string[] = [];
  let registered: string;
  if (injected) {
    const sidecar = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c: { name: string }) => c.name === SIDECAR_CONTAINER_NAME);
    const where = (pod.spec.initContainers ?? []).includes(sidecar) ? 'a native sidecar (initContainers, restartPolicy Always)' : 'a container';
    detail.push(`Injection:  injected at admission; ${SIDECAR_CONTAINER_NAME} is ${where}, image ${sidecar?.image}`);
    detail.push(`            managed label ${MANAGED_LABEL}=${pod.metadata.labels?.[MANAGED_LABEL] ?? '(missing: the interceptor will not register it)'}`);
    if (now.action !== 'inject') detail.push(`            created today it would not be (${why(now)})`);
    if (!pod.spec.nodeName) registered = 'not scheduled yet';
    else {
      try {
        const s = JSON.parse(onNode(o, agentOn(o, pod.spec.nodeName), ['status', `${ns}/${name}`, '-o', 'json']));
        registered = `registered on ${pod.spec.nodeName}`;
        detail.push(`Registered: on ${pod.spec.nodeName} since ${s.registeredAt}: netns cookie ${s.netnsCookie}, IPs ${s.ips.join(', ')}, outbound ${s.interception.outboundPort}, inbound ${s.interception.inboundPort}`);
      } catch (e) {
        registered = `NOT registered on ${pod.spec.nodeName}`;
        // kubectl exec's error: the agent's answer on the first line, then kubectl's own "command terminated …".
        const answer = (e as Error).message.replace(/^kubectl [^:]*: /, '').split('\n')[0].replace(/^switchyard status: /, '');
        detail.push(`Registered: NO: the interceptor on ${pod.spec.nodeName} says: ${answer}`);
        detail.push('            its traffic is not intercepted; the Events below say why (kubectl describe pod shows them too)');
      }
    }
  } else {
    registered = 'not registered';
    detail.push(`Injection:  NOT injected; created today: ${now.action === 'inject' ? `it would be (${why(now)}): it predates that, so recreate it (kubectl rollout restart)` : why(now)}`);
    const fix = TO_INJECT[now.reason]?.(ns);
    if (now.action !== 'inject' && fix) detail.push(`            to inject it: ${fix}`);
    detail.push('Registered: no: pods without the sidecar are never intercepted');
  }
  const ev = events(o, ns, pod);
  detail.push(`Events:     ${ev.length ? ev.join('\n            ') : 'none from Switchyard'}`);
  if (pod.metadata.deletionTimestamp) detail.unshift(`Deleting:   since ${pod.metadata.deletionTimestamp}: the agent unregisters a pod when its sandbox goes (CNI DEL)`);
  out(`${ns}/${name}: ${injected ? 'injected' : 'NOT injected'}, ${registered}${pod.metadata.deletionTimestamp ? ' (terminating)' : ''}\n${detail.map((l) => `  ${l}\n`).join('')}`);
}

/** A pod that can be created as a dry run from a pod or a template. */
function dryRunPod(pod: PodLike, ns: string): Record<string, unknown> {
  const { name: _name, namespace: _ns, ...meta } = (pod.metadata ?? {}) as Record<string, unknown>;
  return { apiVersion: 'v1', kind: 'Pod', metadata: { ...meta, generateName: 'switchyard-check-inject-', namespace: ns }, spec: pod.spec };
}

function fromFile(o: Options, file: string, out: (s: string) => void): void {
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new PluginError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const pods = podsInYaml(text);
  if (!pods.length) throw new PluginError(`${file} holds no Pod and no workload with a pod template`);
  const config = injectorConfig(o);
  for (const p of pods) {
    const ns = p.namespace ?? namespaceOf(o);
    const namespace = getJson(o, ['namespace', ns]);
    if (!namespace) {
      out(`${p.object}: namespace ${ns} does not exist: create it first\n`);
      continue;
    }
    const d = decide(p.pod, { namespace: ns, labels: namespace.metadata.labels ?? {} }, config);
    const detail = [`Webhook:    ${d.action === 'inject' ? 'injects' : d.action === 'deny' ? 'REFUSES' : 'skips'} it in namespace ${ns} (${why(d)})`];
    if (d.action === 'skip' && TO_INJECT[d.reason]) detail.push(`            to inject it: ${TO_INJECT[d.reason]!(ns)}`);
    let verdict = d.action === 'inject' ? 'would be injected' : d.action === 'deny' ? 'would be REFUSED' : 'would NOT be injected';
    try {
      const admitted = JSON.parse(kubectl(o, ['create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(dryRunPod(p.pod, ns))));
      const got = isInjected(admitted);
      detail.push(`Dry run:    the apiserver admitted it ${got ? 'with' : 'without'} ${SIDECAR_CONTAINER_NAME}${got === (d.action === 'inject') ? '' : ': NOT what the webhook decides; run kubectl switchyard check'}`);
      if (got !== (d.action === 'inject')) verdict += ' (but the dry run disagrees)';
    } catch (e) {
      const msg = (e as Error).message.replace(/^kubectl [^:]*: /, '');
      detail.push(`Dry run:    refused: ${msg}`);
    }
    if (d.action === 'inject') detail.push('Registered: when it starts, by the interceptor on its node (switchyard-cni, before its containers run)');
    out(`${p.object}: ${verdict}\n${detail.map((l) => `  ${l}\n`).join('')}`);
  }
}

export function checkInject(o: Options, out: (s: string) => void): void {
  const [pod, extra] = o.positional;
  if (o.filename ? pod !== undefined : !pod || extra) throw new PluginError('usage: kubectl switchyard check-inject POD [-n NAMESPACE] | -f FILE');
  if (o.filename) fromFile(o, o.filename, out);
  else livePod(o, pod, out);
}
