/**
 * The MutatingWebhookConfiguration, generated from the same constants the
 * decision uses, so the API server's pre-filter and the handler cannot
 * disagree about who is eligible.
 *
 * Two entries, because selectors can only AND:
 *  - by-namespace: namespaces labelled injection=enabled, unless the pod's
 *    label says inject=false;
 *  - by-pod: namespaces without an enabled/disabled label, for pods that
 *    carry the label inject=true.
 * Unlabelled namespaces never call the webhook unless a pod opts in, so with
 * failurePolicy Fail a stopped webhook only blocks pods that asked for it.
 */
import { InjectorConfig } from './config';
import { NAMESPACE_INJECTION_LABEL, POD_INJECT_KEY, SYSTEM_NAMESPACES } from '../../api/contract';

export interface WebhookEndpoint {
  /** In-cluster: the webhook Service. */
  service?: { name: string; namespace: string; port: number; path: string };
  /** Out of cluster (the local lab): an https URL. */
  url?: string;
}

export interface WebhookConfigOptions {
  name?: string;
  endpoint: WebhookEndpoint;
  caBundlePem: string;
  failurePolicy?: 'Fail' | 'Ignore';
  timeoutSeconds?: number;
}

export function mutatingWebhookConfiguration(config: InjectorConfig, o: WebhookConfigOptions): Record<string, unknown> {
  const excluded = { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...SYSTEM_NAMESPACES, config.ownNamespace] };
  const clientConfig = {
    ...(o.endpoint.url ? { url: o.endpoint.url } : { service: o.endpoint.service }),
    caBundle: Buffer.from(o.caBundlePem).toString('base64'),
  };
  const common = {
    clientConfig,
    rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    failurePolicy: o.failurePolicy ?? 'Fail',
    timeoutSeconds: o.timeoutSeconds ?? 10,
    reinvocationPolicy: 'IfNeeded',
    matchPolicy: 'Equivalent',
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: o.name ?? 'switchyard-sidecar-injector', labels: { 'app.kubernetes.io/part-of': 'switchyard' } },
    webhooks: [
      {
        name: 'by-namespace.inject.switchyard.dev',
        ...common,
        namespaceSelector: { matchExpressions: [{ key: NAMESPACE_INJECTION_LABEL, operator: 'In', values: ['enabled'] }, excluded] },
        objectSelector: { matchExpressions: [{ key: POD_INJECT_KEY, operator: 'NotIn', values: ['false'] }] },
      },
      {
        name: 'by-pod.inject.switchyard.dev',
        ...common,
        namespaceSelector: { matchExpressions: [{ key: NAMESPACE_INJECTION_LABEL, operator: 'NotIn', values: ['enabled', 'disabled'] }, excluded] },
        objectSelector: { matchExpressions: [{ key: POD_INJECT_KEY, operator: 'In', values: ['true'] }] },
      },
    ],
  };
}
