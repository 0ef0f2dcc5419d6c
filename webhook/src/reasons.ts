/**
 * Why a pod was injected, skipped or denied. One typed code per reason; the
 * same code is the log field, the metric label and the CLI output, and each
 * has one human sentence.
 */
export const REASONS = {
  // injected
  'namespace-enabled': 'the namespace has switchyard.dev/injection=enabled',
  'pod-opted-in': 'the pod has switchyard.dev/inject=true',
  // skipped
  'system-namespace': 'Kubernetes system namespaces are never injected',
  'own-namespace': "Switchyard's own namespace is never injected",
  'host-network': 'the pod uses the host network, which the node-level redirect cannot isolate',
  'already-injected': 'the pod already carries the Switchyard sidecar',
  'namespace-disabled': 'the namespace has switchyard.dev/injection=disabled',
  'pod-opted-out': 'the pod has switchyard.dev/inject=false',
  'not-enabled': 'neither the namespace nor the pod asks for injection',
  'namespace-unknown': 'the namespace is not in the cache yet, so its labels are unknown',
  'not-a-pod': 'the request is not for a pod',
  'not-a-create': 'only pod creation is mutated',
  // denied
  'invalid-annotation': 'a Switchyard annotation or label has an invalid value',
} as const;

export type Reason = keyof typeof REASONS;
export type Action = 'inject' | 'skip' | 'deny';

export interface Decision {
  action: Action;
  reason: Reason;
  /** The full sentence for logs, Events and status.message. */
  message: string;
}

export const decision = (action: Action, reason: Reason, detail?: string): Decision => ({
  action,
  reason,
  message: detail ? `${REASONS[reason]}: ${detail}` : REASONS[reason],
});
