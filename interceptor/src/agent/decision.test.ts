import { ANNOTATIONS, MANAGED_LABEL } from '../../../api/contract';
import { DEFAULT_INTERCEPTION } from '../../../api/interception';
import { interceptionAnnotations } from '../../../api/annotations';
import { FAILURE_REASONS, PodObject, REGISTRATION_REASONS, registrationDecision } from './decision';

const defaults = interceptionAnnotations(DEFAULT_INTERCEPTION);
const pod = (labels: Record<string, string>, annotations: Record<string, string> = defaults, hostNetwork = false): PodObject => ({
  metadata: { namespace: 'apps', name: 'p', uid: 'u', labels, annotations },
  spec: { nodeName: 'n', hostNetwork },
});

describe('registrationDecision: register a pod or not, and why', () => {
  test.each([
    ['no managed label', pod({}), 'not-managed'],
    ['the managed label set to something else', pod({ [MANAGED_LABEL]: 'false' }), 'not-managed'],
    ['host network', pod({ [MANAGED_LABEL]: 'true' }, defaults, true), 'host-network'],
    ['an annotation that does not parse', pod({ [MANAGED_LABEL]: 'true' }, { ...defaults, [ANNOTATIONS.excludeOutboundPorts]: 'http' }), 'invalid-annotations'],
    ['mesh-managed with valid settings', pod({ [MANAGED_LABEL]: 'true' }), 'registered'],
  ] as const)('%s', (_what, p, reason) => {
    expect(registrationDecision(p).reason).toBe(reason);
  });

  test("the settings come from the pod's annotations, and a bad one is named in the detail", () => {
    const d = registrationDecision(pod({ [MANAGED_LABEL]: 'true' }, { ...defaults, [ANNOTATIONS.excludeOutboundPorts]: '5432,6379' }));
    expect(d.register && d.interception.excludeOutboundPorts).toEqual([5432, 6379]);
    const bad = registrationDecision(pod({ [MANAGED_LABEL]: 'true' }, { ...defaults, [ANNOTATIONS.excludeOutboundPorts]: 'http' }));
    expect(!bad.register && bad.detail).toContain(ANNOTATIONS.excludeOutboundPorts);
  });

  test('every reason has its sentence, and no failure reason hides a skip', () => {
    for (const table of [REGISTRATION_REASONS, FAILURE_REASONS]) for (const [k, v] of Object.entries(table)) expect([k, v.length > 20]).toEqual([k, true]);
    expect(Object.keys(FAILURE_REASONS).filter((k) => k in REGISTRATION_REASONS)).toEqual(['invalid-annotations']);
  });
});
