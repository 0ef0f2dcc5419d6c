/**
 * Which admission decisions become Kubernetes Events, and about what.
 * Users look at the workload they applied (`kubectl describe rs/…`,
 * `kubectl get events`), not at a pod that was never created, so an Event
 * is about the pod's controller, or its namespace when it has none.
 *
 *   deny (invalid-annotation)                          Warning InjectionDenied
 *   skip namespace-unknown (labels not cached yet)     Warning InjectionSkipped
 *   skip namespace-disabled, the pod asked for it      Warning InjectionSkipped
 *
 * Other skips are what the user asked for and stay in the log only.
 */
import { POD_INJECT_KEY } from '../../api/contract';
import type { EventSpec, ObjectRef } from '../../lib/events';
import type { PodLike } from './inject';
import type { Decision } from './reasons';

interface OwnerRef {
  apiVersion?: string;
  kind: string;
  name: string;
  uid?: string;
  controller?: boolean;
}

/** The pod's controller (or first owner), else its namespace. */
export function regardingOf(pod: PodLike, namespace: string): ObjectRef {
  const owners = (pod.metadata?.ownerReferences ?? []) as OwnerRef[];
  const o = owners.find((x) => x.controller) ?? owners[0];
  if (o?.apiVersion) return { apiVersion: o.apiVersion, kind: o.kind, name: o.name, namespace, ...(o.uid ? { uid: o.uid } : {}) };
  return { apiVersion: 'v1', kind: 'Namespace', name: namespace, namespace };
}

const askedFor = (pod: PodLike) => pod.metadata?.annotations?.[POD_INJECT_KEY] === 'true' || pod.metadata?.labels?.[POD_INJECT_KEY] === 'true';

/** The Event for a decision, or undefined when the log says enough. */
export function admissionEvent(d: Decision, pod: PodLike, namespace: string, podName: string): EventSpec | undefined {
  const warn = (reason: string, why: string): EventSpec => ({
    regarding: regardingOf(pod, namespace),
    type: 'Warning',
    reason,
    action: 'Inject',
    note: `pod ${podName}: ${d.reason}: ${why}`,
  });
  if (d.action === 'deny') return warn('InjectionDenied', `${d.message}; fix the value and apply again`);
  if (d.reason === 'namespace-unknown') return warn('InjectionSkipped', `${d.message}; the pod was created without the sidecar: delete it once the webhook is Ready`);
  if (d.reason === 'namespace-disabled' && askedFor(pod)) return warn('InjectionSkipped', `${d.message}, which overrides the pod's ${POD_INJECT_KEY}=true`);
  return undefined;
}
