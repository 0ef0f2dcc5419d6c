/**
 * Whether the agent registers a pod, and why (pure). The same typed reason is
 * the CNI reply, the log field and the metric label.
 */
import type { V1ObjectMeta, V1PodSpec, V1PodStatus } from '@kubernetes/client-node';
import { AnnotationError, parseInterceptionAnnotations } from '../../../api/annotations';
import { Interception } from '../../../api/interception';
import { MANAGED_LABEL } from '../../../api/contract';

export const REGISTRATION_REASONS = {
  registered: 'the pod is mesh-managed and its interception settings are valid',
  'not-managed': `the pod has no ${MANAGED_LABEL}=true label: it was not injected`,
  'host-network': 'the pod uses the host network namespace',
  'invalid-annotations': 'the pod is mesh-managed but its interception annotations are invalid',
  'fail-open': 'registration failed and the failure policy let the pod start without interception',
} as const;
export type RegistrationReason = keyof typeof REGISTRATION_REASONS;

/** Why a pod that should be registered is not: the log field and metric label of a failed ADD or reconcile (the CNI error carries the sentence). */
export const FAILURE_REASONS = {
  'netns-missing': 'the network namespace the runtime named does not exist',
  'pod-unknown': 'the pod did not reach the API cache within the wait; the kubelet retries the sandbox',
  'invalid-annotations': REGISTRATION_REASONS['invalid-annotations'],
  'no-ips': 'the plugins before switchyard-cni assigned the pod no IP',
  'registration-failed': 'the maps or the tc filters could not be written (a full map, for example)',
  'reconcile-failed': 'reconcile could not put a registered pod back into the maps',
} as const;
export type FailureReason = keyof typeof FAILURE_REASONS;

/** The fields of a V1Pod that registration reads (pods.ts slims to these on arrival). */
export interface PodObject {
  metadata?: Pick<V1ObjectMeta, 'name' | 'namespace' | 'uid' | 'labels' | 'annotations' | 'resourceVersion'>;
  spec?: Pick<V1PodSpec, 'nodeName' | 'hostNetwork'>;
  status?: Pick<V1PodStatus, 'podIP' | 'podIPs' | 'phase'>;
}

export type RegistrationDecision =
  | { register: true; reason: 'registered'; interception: Interception }
  | { register: false; reason: Exclude<RegistrationReason, 'registered'>; detail?: string };

export function registrationDecision(pod: PodObject): RegistrationDecision {
  if (pod.metadata?.labels?.[MANAGED_LABEL] !== 'true') return { register: false, reason: 'not-managed' };
  if (pod.spec?.hostNetwork) return { register: false, reason: 'host-network' };
  try {
    return { register: true, reason: 'registered', interception: parseInterceptionAnnotations(pod.metadata?.annotations ?? {}) };
  } catch (e) {
    if (e instanceof AnnotationError) return { register: false, reason: 'invalid-annotations', detail: e.message };
    throw e;
  }
}

export const podKey = (pod: PodObject) => `${pod.metadata?.namespace}/${pod.metadata?.name}`;
