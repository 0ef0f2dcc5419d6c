import { admissionEvent, regardingOf } from './events';
import { decision } from './reasons';
import type { PodLike } from './inject';

describe('which admission decisions become Events, about what', () => {
  const owned: PodLike = {
    metadata: { generateName: 'web-7d9-', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9', uid: 'u1', controller: true } as never] },
  };
  const bare: PodLike = { metadata: { name: 'solo', annotations: { 'switchyard.dev/inject': 'true' } } };

  test("an Event is about the pod's controller, or its namespace when it has none", () => {
    expect(regardingOf(owned, 'apps')).toEqual({ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9', namespace: 'apps', uid: 'u1' });
    expect(regardingOf(bare, 'apps')).toEqual({ apiVersion: 'v1', kind: 'Namespace', name: 'apps', namespace: 'apps' });
  });

  test('a deny, an unknown namespace and a disabled namespace overriding the pod\'s opt-in are Warnings; what the user asked for is not', () => {
    const denied = admissionEvent(decision('deny', 'invalid-annotation', "annotation switchyard.dev/inject='yes' must be \"true\" or \"false\""), owned, 'apps', 'web-7d9-*');
    expect(denied).toMatchObject({ type: 'Warning', reason: 'InjectionDenied', action: 'Inject', regarding: { kind: 'ReplicaSet' } });
    expect(denied!.note).toMatch(/^pod web-7d9-\*: invalid-annotation: .*'yes'.*; fix the value and apply again$/);
    expect(admissionEvent(decision('skip', 'namespace-unknown', 'apps'), owned, 'apps', 'p')!.reason).toBe('InjectionSkipped');
    expect(admissionEvent(decision('skip', 'namespace-disabled'), bare, 'apps', 'solo')!.note).toMatch(/overrides the pod's switchyard.dev\/inject=true/);
    expect(admissionEvent(decision('skip', 'namespace-disabled'), owned, 'apps', 'p')).toBeUndefined();
    for (const r of ['pod-opted-out', 'not-enabled', 'system-namespace', 'host-network'] as const) expect(admissionEvent(decision('skip', r), bare, 'apps', 'p')).toBeUndefined();
    expect(admissionEvent(decision('inject', 'namespace-enabled'), owned, 'apps', 'p')).toBeUndefined();
  });
});
