/**
 * Offline injection for `switchyard inject -f`: multi-document YAML in, YAML
 * out, through the same core as the webhook. Pod templates of workloads are
 * injected, also inside a List (what `kubectl get -o yaml` prints); other
 * kinds pass through unchanged.
 *
 * Offline there is no namespace to ask, so the namespace is treated as
 * opted in (like `istioctl kube-inject`); every other rule still applies.
 */
import { applyPatch } from 'fast-json-patch';
import { parseAllDocuments, stringify } from 'yaml';
import { InjectorConfig } from './config';
import { NAMESPACE_INJECTION_LABEL } from '../../api/contract';
import { injectPod, PodLike, uninjectPod } from './inject';
import { Operation } from './patch';
import { Decision } from './reasons';

type Doc = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: Record<string, unknown> };

const TEMPLATE_PATHS: Record<string, string[]> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/** The pod (or pod template) inside a document, or undefined for other kinds. */
function podOf(doc: Doc): PodLike | undefined {
  if (doc.kind === 'Pod') return doc as PodLike;
  const path = doc.kind ? TEMPLATE_PATHS[doc.kind] : undefined;
  if (!path) return undefined;
  let node: unknown = doc;
  for (const k of path) node = (node as Record<string, unknown> | undefined)?.[k];
  return node && typeof node === 'object' ? (node as PodLike) : undefined;
}

export interface OfflineReport {
  object: string;
  decision?: Decision;
}

type Change = (pod: PodLike, doc: Doc) => { ops: Operation[]; decision?: Decision };

/** A List (kubectl get -o yaml) or a typed list such as PodList: a kind ending in List, with items. */
const isList = (doc: Doc): doc is Doc & { items: unknown[] } => /List$/.test(doc.kind ?? '') && Array.isArray((doc as { items?: unknown }).items);

/** Changes one object in place, and the items of a list, reporting each object. */
function transformObject(doc: Doc, change: Change, report: OfflineReport[]): void {
  if (isList(doc)) {
    for (const item of doc.items) if (item && typeof item === 'object') transformObject(item as Doc, change, report);
    return;
  }
  const name = `${(doc.kind ?? 'unknown').toLowerCase()}/${doc.metadata?.name ?? '<unnamed>'}`;
  const pod = podOf(doc);
  if (!pod) {
    report.push({ object: name });
    return;
  }
  const { ops, decision } = change(pod, doc);
  // The patch is applied to the pod (template) object in place; validate=true rejects a malformed patch.
  if (ops.length) applyPatch(pod, ops, true, true);
  report.push({ object: name, decision });
}

function transform(text: string, change: Change): { yaml: string; report: OfflineReport[] } {
  const docs = parseAllDocuments(text);
  const out: string[] = [];
  const report: OfflineReport[] = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`invalid YAML: ${d.errors[0].message}`);
    const doc = d.toJS() as Doc | null;
    if (doc === null || doc === undefined) continue;
    transformObject(doc, change, report);
    out.push(stringify(doc));
  }
  return { yaml: out.join('---\n'), report };
}

export function injectYaml(text: string, config: InjectorConfig): { yaml: string; report: OfflineReport[] } {
  return transform(text, (pod, doc) => {
    const namespace = doc.metadata?.namespace ?? pod.metadata?.namespace ?? 'default';
    const r = injectPod(pod, { namespace, labels: { [NAMESPACE_INJECTION_LABEL]: 'enabled' } }, config);
    return { ops: r.patch, decision: r.decision };
  });
}

export function uninjectYaml(text: string): { yaml: string; report: OfflineReport[] } {
  return transform(text, (pod) => ({ ops: uninjectPod(pod) }));
}

/** Every pod and pod template in multi-document YAML, with the object it came from (kubectl switchyard check-inject -f). */
export function podsInYaml(text: string): { object: string; namespace?: string; pod: PodLike }[] {
  const out: { object: string; namespace?: string; pod: PodLike }[] = [];
  const visit = (doc: Doc) => {
    if (isList(doc)) return doc.items.forEach((i) => i && typeof i === 'object' && visit(i as Doc));
    const pod = podOf(doc);
    if (pod) out.push({ object: `${(doc.kind ?? 'unknown').toLowerCase()}/${doc.metadata?.name ?? '<unnamed>'}`, namespace: doc.metadata?.namespace, pod });
  };
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length) throw new Error(`invalid YAML: ${d.errors[0].message}`);
    const doc = d.toJS() as Doc | null;
    if (doc) visit(doc);
  }
  return out;
}

/** The pod as it was before injection: what the status annotation records is taken away again. */
export function uninjected(pod: PodLike): PodLike {
  const copy = JSON.parse(JSON.stringify(pod)) as PodLike;
  const ops = uninjectPod(copy);
  if (ops.length) applyPatch(copy, ops, true, true);
  return copy;
}
