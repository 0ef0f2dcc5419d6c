/**
 * The user contract and the interface to the interceptor: every label and
 * annotation key Switchyard reads or writes. webhook/README.md has the prose
 * and the truth table; this file is the code's single copy of the names.
 */

export const DOMAIN = 'switchyard.dev';

/** Namespace label: 'enabled' opts the namespace in, 'disabled' forces injection off. */
export const NAMESPACE_INJECTION_LABEL = `${DOMAIN}/injection`;
export const NAMESPACE_INJECTION_VALUES = ['enabled', 'disabled'] as const;

/** Pod override, as an annotation or a label (a label lets the API server skip calling us): 'true' | 'false'. */
export const POD_INJECT_KEY = `${DOMAIN}/inject`;
export const POD_INJECT_VALUES = ['true', 'false'] as const;

/** Label on injected pods; the interceptor registers exactly the pods that carry it. */
export const MANAGED_LABEL = `${DOMAIN}/managed`;

/** Records what injection added, so that it can be detected, kept idempotent and undone. */
export const STATUS_ANNOTATION = `${DOMAIN}/status`;

/** Interception settings: written by the webhook, read by the interceptor. */
export const ANNOTATIONS = {
  outboundPort: `${DOMAIN}/outbound-port`,
  inboundPort: `${DOMAIN}/inbound-port`,
  sidecarUid: `${DOMAIN}/sidecar-uid`,
  excludeInboundPorts: `${DOMAIN}/exclude-inbound-ports`,
  excludeOutboundPorts: `${DOMAIN}/exclude-outbound-ports`,
  excludeOutboundCidrs: `${DOMAIN}/exclude-outbound-cidrs`,
  /** "false": the pod's app <-> sidecar bytes take loopback TCP instead of sk_msg (for splice(2) readers). */
  sockmap: `${DOMAIN}/sockmap-acceleration`,
} as const;

/** Per-pod sidecar overrides (user input only). */
export const SIDECAR_ANNOTATIONS = {
  image: `${DOMAIN}/sidecar-image`,
  mode: `${DOMAIN}/sidecar-mode`,
  cpuRequest: `${DOMAIN}/sidecar-cpu-request`,
  memoryRequest: `${DOMAIN}/sidecar-memory-request`,
  cpuLimit: `${DOMAIN}/sidecar-cpu-limit`,
  memoryLimit: `${DOMAIN}/sidecar-memory-limit`,
} as const;

export const SIDECAR_CONTAINER_NAME = 'switchyard-proxy';

/** Where the install puts Switchyard itself (manifests/namespace.yaml). */
export const SWITCHYARD_NAMESPACE = 'switchyard-system';

/** The install's object names, as manifests/ writes them (test/manifests.test.ts holds the two together). */
export const INSTALL = {
  config: 'switchyard-config',
  webhookDeployment: 'switchyard-webhook',
  webhookService: 'switchyard-webhook',
  webhookSecret: 'switchyard-webhook-tls',
  webhookConfiguration: 'switchyard-sidecar-injector',
  interceptorDaemonSet: 'switchyard-interceptor',
} as const;

/** Namespaces where nothing is ever injected, whatever the labels say. */
export const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'] as const;
