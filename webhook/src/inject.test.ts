import { applyPatch, deepClone } from 'fast-json-patch';
import { DEFAULT_CONFIG } from './config';
import { ANNOTATIONS, MANAGED_LABEL, NAMESPACE_INJECTION_LABEL, POD_INJECT_KEY, SIDECAR_ANNOTATIONS, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION } from '../../api/contract';
import { decide, injectPod, PodLike, uninjectPod } from './inject';
import { escapePointer } from './patch';
import { REASONS } from './reasons';
import { parseInterceptionAnnotations } from '../../api/annotations';

const cfg = DEFAULT_CONFIG;
const pod = (extra: Partial<NonNullable<PodLike['metadata']>> = {}, spec: Partial<NonNullable<PodLike['spec']>> = {}): PodLike => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', ...extra },
  spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec },
});
const ns = (namespace: string, label?: string) => ({
  namespace,
  labels: (label === undefined ? {} : { [NAMESPACE_INJECTION_LABEL]: label }) as Record<string, string>,
});

describe('decision truth table', () => {
  // [case, namespace, ns label, pod annotation, pod label, hostNetwork, expected action, expected reason]
  const rows: [string, string, string | undefined, string | undefined, string | undefined, boolean, string, string][] = [
    ['system namespace wins over everything', 'kube-system', 'enabled', 'true', undefined, false, 'skip', 'system-namespace'],
    ['kube-public', 'kube-public', 'enabled', undefined, undefined, false, 'skip', 'system-namespace'],
    ['kube-node-lease', 'kube-node-lease', 'enabled', undefined, undefined, false, 'skip', 'system-namespace'],
    ['own namespace', 'switchyard-system', 'enabled', 'true', undefined, false, 'skip', 'own-namespace'],
    ['hostNetwork', 'apps', 'enabled', 'true', undefined, true, 'skip', 'host-network'],
    ['ns disabled beats pod true', 'apps', 'disabled', 'true', undefined, false, 'skip', 'namespace-disabled'],
    ['pod false beats ns enabled', 'apps', 'enabled', 'false', undefined, false, 'skip', 'pod-opted-out'],
    ['pod true in a plain namespace', 'apps', undefined, 'true', undefined, false, 'inject', 'pod-opted-in'],
    ['pod true as a label', 'apps', undefined, undefined, 'true', false, 'inject', 'pod-opted-in'],
    ['pod true beats ns enabled (same result, pod reason)', 'apps', 'enabled', 'true', undefined, false, 'inject', 'pod-opted-in'],
    ['ns enabled', 'apps', 'enabled', undefined, undefined, false, 'inject', 'namespace-enabled'],
    ['default off', 'apps', undefined, undefined, undefined, false, 'skip', 'not-enabled'],
    ['unknown ns label value is off', 'apps', 'yes', undefined, undefined, false, 'skip', 'not-enabled'],
    ['invalid pod value is denied', 'apps', 'enabled', 'yes', undefined, false, 'deny', 'invalid-annotation'],
    ['label and annotation disagree', 'apps', 'enabled', 'true', 'false', false, 'deny', 'invalid-annotation'],
  ];
  test.each(rows)('%s', (_, namespace, nsLabel, ann, label, hostNetwork, action, reason) => {
    const p = pod(
      { annotations: ann === undefined ? undefined : { [POD_INJECT_KEY]: ann }, labels: label === undefined ? undefined : { [POD_INJECT_KEY]: label } },
      { hostNetwork },
    );
    const d = decide(p, ns(namespace, nsLabel), cfg);
    expect([d.action, d.reason]).toEqual([action, reason]);
    expect(d.message.startsWith(REASONS[d.reason as keyof typeof REASONS])).toBe(true);
  });

  test('an unknown (uncached) namespace is not injected, and says so', () => {
    expect(decide(pod(), { namespace: 'new', labels: undefined }, cfg).reason).toBe('namespace-unknown');
  });

  test('the deny message names the key and the allowed values', () => {
    const d = decide(pod({ annotations: { [POD_INJECT_KEY]: 'yes' } }), ns('apps', 'enabled'), cfg);
    expect(d.message).toContain(`annotation ${POD_INJECT_KEY}='yes' must be "true" or "false"`);
  });
});

describe('injection patch', () => {
  const inject = (p: PodLike, label = 'enabled') => injectPod(p, ns('apps', label), cfg);
  const apply = (p: PodLike, ops: unknown[]) => applyPatch(deepClone(p), ops as never, true, false).newDocument as PodLike;

  test('native mode adds a restartable init container, the managed label and the annotations', () => {
    const r = inject(pod());
    const out = apply(pod(), r.patch);
    expect(out.spec!.initContainers![0]).toMatchObject({ name: SIDECAR_CONTAINER_NAME, restartPolicy: 'Always' });
    expect(out.spec!.containers).toEqual(pod().spec!.containers);
    expect(out.metadata!.labels![MANAGED_LABEL]).toBe('true');
    expect(parseInterceptionAnnotations(out.metadata!.annotations!)).toEqual({
      outboundPort: 15001,
      inboundPort: 15003,
      sidecarUid: 1337,
      excludeInboundPorts: [15021],
      excludeOutboundPorts: [],
      excludeOutboundCidrs: [],
    });
    const sc = out.spec!.initContainers![0] as Record<string, any>;
    expect(sc.securityContext).toEqual({
      runAsUser: 1337,
      runAsGroup: 1337,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(sc.ports.map((p: { containerPort: number }) => p.containerPort)).toEqual([15001, 15003, 15021]);
  });

  test('classic mode puts the sidecar first among containers and holds the app with postStart', () => {
    const p = pod({ annotations: { [SIDECAR_ANNOTATIONS.mode]: 'classic' } });
    const out = apply(p, inject(p).patch);
    expect(out.spec!.containers!.map((c) => c.name)).toEqual([SIDECAR_CONTAINER_NAME, 'app']);
    expect((out.spec!.containers![0] as any).lifecycle.postStart.exec.command).toContain('wait-ready');
    expect(out.spec!.initContainers).toBeUndefined();
  });

  test('existing init containers are kept in order behind the sidecar', () => {
    const p = pod({}, { initContainers: [{ name: 'migrate', image: 'm' }, { name: 'warm', image: 'w' }] });
    const out = apply(p, inject(p).patch);
    expect(out.spec!.initContainers!.map((c) => c.name)).toEqual([SIDECAR_CONTAINER_NAME, 'migrate', 'warm']);
  });

  test('keys with / and ~ are escaped in JSON Pointers', () => {
    expect(escapePointer('a/b~c')).toBe('a~1b~0c');
    const p = pod({ labels: { 'team~x/y': 'a' }, annotations: { 'example.com/owner': 'me' } });
    const r = inject(p);
    expect(r.patch.map((o) => o.path)).toContain('/metadata/labels/switchyard.dev~1managed');
    const out = apply(p, r.patch);
    expect(out.metadata!.labels).toMatchObject({ 'team~x/y': 'a', [MANAGED_LABEL]: 'true' });
    expect(out.metadata!.annotations!['example.com/owner']).toBe('me');
  });

  test('missing labels and annotations maps are created', () => {
    const r = inject(pod());
    expect(r.patch).toContainEqual(expect.objectContaining({ op: 'add', path: '/metadata/labels', value: { [MANAGED_LABEL]: 'true' } }));
    expect(r.patch.find((o) => o.path === '/metadata/annotations')).toBeDefined();
  });

  test('injecting an injected pod is a no-op', () => {
    const once = apply(pod(), inject(pod()).patch);
    const again = inject(once);
    expect(again.decision.reason).toBe('already-injected');
    expect(again.patch).toEqual([]);
  });

  test('uninject removes exactly what injection added', () => {
    for (const p of [pod(), pod({ labels: { a: 'b' }, annotations: { [ANNOTATIONS.excludeInboundPorts]: '9090' } }), pod({}, { initContainers: [{ name: 'i' }] })]) {
      const injected = apply(p, inject(p).patch);
      expect(apply(injected, uninjectPod(injected))).toEqual(p);
    }
  });

  test('the patch does not grow with the pod', () => {
    const env = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `VAR_${i}`, value: 'x'.repeat(40) }));
    const small = pod({}, { containers: [{ name: 'app', env: env(10) }] }); // ~1 KB
    const big = pod({}, { containers: [{ name: 'app', env: env(20000) }] }); // ~1 MB
    const size = (p: PodLike) => JSON.stringify(inject(p).patch).length;
    expect(JSON.stringify(big).length).toBeGreaterThan(1_000_000);
    expect(Math.abs(size(big) - size(small)) / size(small)).toBeLessThan(0.1);
  });

  test.each([
    [ANNOTATIONS.excludeInboundPorts, '80,http', `annotation ${ANNOTATIONS.excludeInboundPorts}: 'http' is not a port`],
    [ANNOTATIONS.excludeOutboundPorts, '0', `annotation ${ANNOTATIONS.excludeOutboundPorts}: '0' is not a port`],
    [ANNOTATIONS.excludeOutboundCidrs, '10.0.0.0/40', `annotation ${ANNOTATIONS.excludeOutboundCidrs}: '10.0.0.0/40' is not a CIDR`],
    [SIDECAR_ANNOTATIONS.cpuRequest, 'lots', `annotation ${SIDECAR_ANNOTATIONS.cpuRequest}: 'lots' is not a resource quantity`],
    [SIDECAR_ANNOTATIONS.image, 'has space', `annotation ${SIDECAR_ANNOTATIONS.image}: 'has space' is not an image reference`],
    [SIDECAR_ANNOTATIONS.mode, 'sidecarish', `annotation ${SIDECAR_ANNOTATIONS.mode}: 'sidecarish' is not a mode`],
    [ANNOTATIONS.excludeOutboundPorts, Array.from({ length: 17 }, (_, i) => i + 1).join(','), 'has 17 ports; at most 16'],
    [ANNOTATIONS.sockmap, 'off', `annotation ${ANNOTATIONS.sockmap}: 'off' must be "true" or "false"`],
  ])('a malformed %s is denied with a message naming it', (key, value, message) => {
    const r = inject(pod({ annotations: { [key]: value } }));
    expect(r.decision).toMatchObject({ action: 'deny', reason: 'invalid-annotation' });
    expect(r.decision.message).toContain(message);
    expect(r.patch).toEqual([]);
  });

  test('sockmap-acceleration "false" reaches the interceptor; absent or "true" leaves the default and writes nothing', () => {
    const off = pod({ annotations: { [ANNOTATIONS.sockmap]: 'false' } });
    const outOff = apply(off, inject(off).patch);
    expect(parseInterceptionAnnotations(outOff.metadata!.annotations!)).toMatchObject({ sockmap: false });
    for (const p of [pod(), pod({ annotations: { [ANNOTATIONS.sockmap]: 'true' } })]) {
      const ops = inject(p).patch as { path: string }[];
      expect(ops.some((o) => o.path.includes('sockmap-acceleration'))).toBe(false);
      expect(parseInterceptionAnnotations(apply(p, ops).metadata!.annotations!).sockmap).toBeUndefined();
    }
  });

  test('per-pod resources and image overrides are used', () => {
    const p = pod({ annotations: { [SIDECAR_ANNOTATIONS.image]: 'my/proxy:2', [SIDECAR_ANNOTATIONS.cpuLimit]: '500m' } });
    const sc = apply(p, inject(p).patch).spec!.initContainers![0] as any;
    expect(sc.image).toBe('my/proxy:2');
    expect(sc.resources.limits).toEqual({ cpu: '500m', memory: '128Mi' });
  });

  test('the status annotation records what was added', () => {
    const out = apply(pod(), inject(pod()).patch);
    const status = JSON.parse(out.metadata!.annotations![STATUS_ANNOTATION]);
    expect(status).toMatchObject({ version: 1, container: SIDECAR_CONTAINER_NAME, list: 'initContainers', labels: { [MANAGED_LABEL]: null } });
  });
});
