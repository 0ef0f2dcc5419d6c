/**
 * The injector core: one pure function from (pod, namespace, config) to a
 * decision and a JSON Patch. No I/O. The admission server and the offline
 * CLI both call it.
 *
 * Truth table (first matching row wins; "-" = any):
 *
 *   system ns | own ns | hostNetwork | injected | ns label  | pod override | result
 *   ----------+--------+-------------+----------+-----------+--------------+---------------------------
 *   yes       | -      | -           | -        | -         | -            | skip  system-namespace
 *   -         | yes    | -           | -        | -         | -            | skip  own-namespace
 *   -         | -      | yes         | -        | -         | -            | skip  host-network
 *   -         | -      | -           | yes      | -         | -            | skip  already-injected (no-op)
 *   -         | -      | -           | -        | -         | invalid      | deny  invalid-annotation
 *   -         | -      | -           | -        | disabled  | -            | skip  namespace-disabled
 *   -         | -      | -           | -        | -         | false        | skip  pod-opted-out
 *   -         | -      | -           | -        | -         | true         | inject pod-opted-in
 *   -         | -      | -           | -        | enabled   | (none)       | inject namespace-enabled
 *   -         | -      | -           | -        | unknown   | (none)       | skip  namespace-unknown
 *   -         | -      | -           | -        | (none)    | (none)       | skip  not-enabled
 */
import type { V1Container, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { AnnotationError, interceptionAnnotations } from '../../api/annotations';
import { podSettings, PodSettings } from './annotations';
import { InjectorConfig } from './config';
import { MANAGED_LABEL, NAMESPACE_INJECTION_LABEL, POD_INJECT_KEY, POD_INJECT_VALUES, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION, SYSTEM_NAMESPACES } from '../../api/contract';
import { Operation, pointer, setKeys } from './patch';
import { Decision, decision } from './reasons';

export type Container = V1Container;

/** A Pod as admission receives it: the fields injection reads are typed as V1Pod types them. */
export type PodLike = Omit<V1Pod, 'spec'> & { spec?: Partial<V1PodSpec> };

export interface NamespaceContext {
  namespace: string;
  /** undefined: the namespace's labels are not known (not cached yet). */
  labels: Record<string, string> | undefined;
}

/** What injection added; stored as JSON in the status annotation. */
export interface InjectionStatus {
  version: 1;
  container: string;
  list: 'initContainers' | 'containers';
  labels: Record<string, string | null>;
  /** annotation key -> its value before injection (null: it was absent) */
  annotations: Record<string, string | null>;
  /** maps that did not exist before injection and are removed whole by uninject */
  created?: ('metadata' | 'labels' | 'annotations')[];
}

export interface InjectResult {
  decision: Decision;
  patch: Operation[];
  settings?: PodSettings;
}

function override(pod: PodLike): { value?: string; error?: string } {
  const fromAnnotation = pod.metadata?.annotations?.[POD_INJECT_KEY];
  const fromLabel = pod.metadata?.labels?.[POD_INJECT_KEY];
  for (const [where, v] of [['annotation', fromAnnotation], ['label', fromLabel]] as const) {
    if (v !== undefined && !(POD_INJECT_VALUES as readonly string[]).includes(v)) {
      return { error: `${where} ${POD_INJECT_KEY}='${v}' must be "true" or "false"` };
    }
  }
  if (fromAnnotation !== undefined && fromLabel !== undefined && fromAnnotation !== fromLabel) {
    return { error: `annotation ${POD_INJECT_KEY}='${fromAnnotation}' and label ${POD_INJECT_KEY}='${fromLabel}' disagree` };
  }
  return { value: fromAnnotation ?? fromLabel };
}

export function isInjected(pod: PodLike): boolean {
  if (pod.metadata?.annotations?.[STATUS_ANNOTATION] !== undefined) return true;
  const all = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  return all.some((c) => c.name === SIDECAR_CONTAINER_NAME);
}

/** Whether to inject, skip or deny, and why. Does not look at the sidecar settings. */
export function decide(pod: PodLike, ns: NamespaceContext, config: InjectorConfig): Decision {
  if ((SYSTEM_NAMESPACES as readonly string[]).includes(ns.namespace)) return decision('skip', 'system-namespace', ns.namespace);
  if (ns.namespace === config.ownNamespace) return decision('skip', 'own-namespace', ns.namespace);
  if (pod.spec?.hostNetwork) return decision('skip', 'host-network');
  if (isInjected(pod)) return decision('skip', 'already-injected');
  const o = override(pod);
  if (o.error) return decision('deny', 'invalid-annotation', o.error);
  const nsValue = ns.labels?.[NAMESPACE_INJECTION_LABEL];
  if (nsValue === 'disabled') return decision('skip', 'namespace-disabled');
  if (o.value === 'false') return decision('skip', 'pod-opted-out');
  if (o.value === 'true') return decision('inject', 'pod-opted-in');
  if (nsValue === 'enabled') return decision('inject', 'namespace-enabled');
  if (ns.labels === undefined) return decision('skip', 'namespace-unknown', ns.namespace);
  return decision('skip', 'not-enabled', nsValue ? `namespace label ${NAMESPACE_INJECTION_LABEL}='${nsValue}' is neither "enabled" nor "disabled"` : undefined);
}

export function sidecarContainer(s: PodSettings, config: InjectorConfig): Container {
  const sc = config.sidecar;
  const probe = { httpGet: { path: '/healthz/ready', port: sc.adminPort } };
  const container: Container = {
    name: SIDECAR_CONTAINER_NAME,
    image: s.image,
    imagePullPolicy: sc.imagePullPolicy,
    args: ['--outbound-port', String(sc.outboundPort), '--inbound-port', String(sc.inboundPort), '--admin-port', String(sc.adminPort)],
    ports: [
      { name: 'sy-outbound', containerPort: sc.outboundPort, protocol: 'TCP' },
      { name: 'sy-inbound', containerPort: sc.inboundPort, protocol: 'TCP' },
      { name: 'sy-admin', containerPort: sc.adminPort, protocol: 'TCP' },
    ],
    resources: s.resources,
    securityContext: {
      runAsUser: sc.uid,
      runAsGroup: sc.uid,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
    readinessProbe: { ...probe, periodSeconds: 2 },
  };
  if (s.mode === 'native') {
    // A restartable init container: started (and probed ready) before the app, stopped after it; Jobs complete.
    container.restartPolicy = 'Always';
    container.startupProbe = { ...probe, periodSeconds: 1, failureThreshold: 60 };
  } else {
    // The kubelet runs postStart to completion before it starts the next container: the app waits for the proxy.
    container.lifecycle = { postStart: { exec: { command: ['switchyard-sidecar', 'wait-ready', '--admin-port', String(sc.adminPort)] } } };
  }
  return container;
}

/** Decides, and for an injection builds the minimal patch: two container ops at most, then labels and annotations. */
export function injectPod(pod: PodLike, ns: NamespaceContext, config: InjectorConfig): InjectResult {
  const d = decide(pod, ns, config);
  if (d.action !== 'inject') return { decision: d, patch: [] };

  let settings: PodSettings;
  try {
    settings = podSettings(pod.metadata?.annotations ?? {}, config);
  } catch (e) {
    if (e instanceof AnnotationError) return { decision: decision('deny', 'invalid-annotation', e.message), patch: [] };
    throw e;
  }

  const list = settings.mode === 'native' ? 'initContainers' : 'containers';
  const existing = pod.spec?.[list];
  const sidecar = sidecarContainer(settings, config);
  const patch: Operation[] = [];
  // Inserted first: a native sidecar must start before other init containers that use the network,
  // and a classic one first among containers so the kubelet starts it first. Nothing else moves.
  patch.push(existing && existing.length > 0
    ? { op: 'add', path: pointer('spec', list, 0), value: sidecar }
    : { op: 'add', path: pointer('spec', list), value: [sidecar] });

  const labels = { [MANAGED_LABEL]: 'true' };
  const annotations = interceptionAnnotations(settings.interception);
  const previous = (m: Record<string, string> | undefined, keys: string[]) =>
    Object.fromEntries(keys.map((k) => [k, m?.[k] ?? null]));
  const status: InjectionStatus = {
    version: 1,
    container: SIDECAR_CONTAINER_NAME,
    list,
    labels: previous(pod.metadata?.labels, Object.keys(labels)),
    annotations: previous(pod.metadata?.annotations, Object.keys(annotations)),
  };
  const created = pod.metadata ? (['labels', 'annotations'] as const).filter((m) => !pod.metadata?.[m]) : (['metadata'] as const);
  if (created.length) status.created = [...created];
  annotations[STATUS_ANNOTATION] = JSON.stringify(status);

  if (!pod.metadata) {
    patch.push({ op: 'add', path: '/metadata', value: { labels, annotations } });
  } else {
    patch.push(...setKeys(['metadata', 'labels'], pod.metadata.labels, labels));
    patch.push(...setKeys(['metadata', 'annotations'], pod.metadata.annotations, annotations));
  }
  return { decision: d, patch, settings };
}

/** Removes exactly what the status annotation says injection added. */
export function uninjectPod(pod: PodLike): Operation[] {
  const raw = pod.metadata?.annotations?.[STATUS_ANNOTATION];
  if (raw === undefined) return [];
  let status: InjectionStatus;
  try {
    status = JSON.parse(raw);
  } catch {
    throw new Error(`annotation ${STATUS_ANNOTATION} is not valid JSON; cannot tell what to remove`);
  }
  const ops: Operation[] = [];
  const index = (pod.spec?.[status.list] ?? []).findIndex((c) => c.name === status.container);
  if (index >= 0) {
    const only = pod.spec![status.list]!.length === 1;
    ops.push({ op: 'remove', path: only ? pointer('spec', status.list) : pointer('spec', status.list, index) });
  }
  const ourKeys = (before: Record<string, string | null>) => new Set([...Object.keys(before), STATUS_ANNOTATION]);
  const onlyOurs = (map: 'labels' | 'annotations', before: Record<string, string | null>) =>
    Object.keys(pod.metadata?.[map] ?? {}).every((k) => ourKeys(before).has(k));
  if (
    status.created?.includes('metadata') &&
    Object.keys(pod.metadata ?? {}).every((k) => k === 'labels' || k === 'annotations') &&
    onlyOurs('labels', status.labels) &&
    onlyOurs('annotations', status.annotations)
  ) {
    ops.push({ op: 'remove', path: pointer('metadata') });
    return ops;
  }
  const restore = (map: 'labels' | 'annotations', before: Record<string, string | null>) => {
    const ours = new Set([...Object.keys(before), STATUS_ANNOTATION]);
    const current = Object.keys(pod.metadata?.[map] ?? {});
    if (status.created?.includes(map) && current.every((k) => ours.has(k))) {
      ops.push({ op: 'remove', path: pointer('metadata', map) });
      return;
    }
    for (const [k, v] of Object.entries(before)) {
      if (v === null) {
        if (pod.metadata?.[map]?.[k] !== undefined) ops.push({ op: 'remove', path: pointer('metadata', map, k) });
      } else ops.push({ op: 'add', path: pointer('metadata', map, k), value: v });
    }
  };
  restore('labels', status.labels);
  const before = ops.length;
  restore('annotations', status.annotations);
  const removedWholeMap = ops.length === before + 1 && ops[before].path === pointer('metadata', 'annotations');
  if (!removedWholeMap) ops.push({ op: 'remove', path: pointer('metadata', 'annotations', STATUS_ANNOTATION) });
  return ops;
}

/** A pod's name for logs: generateName pods have none yet at admission. */
export function podDisplayName(pod: PodLike): string {
  return pod.metadata?.name || (pod.metadata?.generateName ? `${pod.metadata.generateName}*` : '<unnamed>');
}

export function ownerDisplay(pod: PodLike): string {
  const o = pod.metadata?.ownerReferences?.[0];
  return o ? `${o.kind}/${o.name}` : '-';
}
