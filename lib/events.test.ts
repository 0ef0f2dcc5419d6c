import { EventRecorder, EventSink, EventSpec } from './events';

describe('Kubernetes Events: deduplicated, rate-limited, never blocking', () => {
  const spec = (note = 'invalid-annotation: switchyard.dev/outbound-port must be a port'): EventSpec => ({
    regarding: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9', namespace: 'apps', uid: 'u1' },
    type: 'Warning',
    reason: 'InjectionDenied',
    action: 'Inject',
    note,
  });

  function sink() {
    const calls: { op: 'create' | 'patch'; ns: string; body: any; name?: string }[] = [];
    const s: EventSink = {
      create: async (ns, body) => void calls.push({ op: 'create', ns, body }),
      patch: async (ns, name, body) => void calls.push({ op: 'patch', ns, name, body }),
    };
    return { s, calls };
  }
  const settle = () => new Promise((r) => setImmediate(r));

  test('the first occurrence creates an events.k8s.io/v1 Event about the object, with the reason and the sentence', async () => {
    const { s, calls } = sink();
    new EventRecorder(s, { controller: 'switchyard.dev/webhook', instance: 'w-1' }).record(spec());
    await settle();
    expect(calls).toHaveLength(1);
    expect(calls[0].ns).toBe('apps');
    expect(calls[0].body).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      type: 'Warning',
      reason: 'InjectionDenied',
      action: 'Inject',
      reportingController: 'switchyard.dev/webhook',
      reportingInstance: 'w-1',
      regarding: { kind: 'ReplicaSet', name: 'web-7d9', namespace: 'apps', uid: 'u1' },
      note: 'invalid-annotation: switchyard.dev/outbound-port must be a port',
    });
    expect(calls[0].body.metadata.name).toMatch(/^web-7d9\.[0-9a-f]{16}$/);
    expect(calls[0].body.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  test('repeats within the window become one Event whose series counts them; another note is another Event', async () => {
    const { s, calls } = sink();
    let t = 1_000_000;
    const r = new EventRecorder(s, { controller: 'c', instance: 'i', now: () => t });
    r.record(spec());
    await settle();
    t += 1000;
    r.record(spec());
    await settle();
    r.record(spec());
    await settle();
    expect(calls.map((c) => c.op)).toEqual(['create', 'patch', 'patch']);
    expect(calls[2].name).toBe(calls[0].body.metadata.name);
    expect(calls[2].body).toEqual({ series: { count: 3, lastObservedTime: expect.stringMatching(/Z$/) } });
    r.record(spec('invalid-annotation: another problem'));
    await settle();
    expect(calls[3].op).toBe('create');
    // After the window the same occurrence starts a new Event.
    t += 11 * 60_000;
    r.record(spec());
    await settle();
    expect(calls[4].op).toBe('create');
    expect(calls[4].body.metadata.name).not.toBe(calls[0].body.metadata.name);
  });

  test('beyond the burst, occurrences are counted and not sent until tokens come back; an API error is reported, not thrown', async () => {
    const calls: string[] = [];
    let t = 0;
    const errors: string[] = [];
    const failing: EventSink = {
      create: async (_ns, body) => {
        calls.push(`create ${(body.regarding as { name: string }).name}`);
        if ((body.regarding as { name: string }).name === 'bad') throw new Error('forbidden');
      },
      patch: async () => void calls.push('patch'),
    };
    const r = new EventRecorder(failing, { controller: 'c', instance: 'i', burst: 2, perSecond: 1, now: () => t, onError: (e) => errors.push(e.message) });
    const of = (name: string): EventSpec => ({ ...spec(), regarding: { ...spec().regarding, name } });
    r.record(of('a'));
    r.record(of('bad'));
    r.record(of('c')); // no token left
    await settle();
    expect(calls).toEqual(['create a', 'create bad']);
    expect(errors).toEqual(['forbidden']);
    t += 1000; // one token back: the next occurrence of c is sent, with both counted
    r.record(of('c'));
    await settle();
    expect(calls).toEqual(['create a', 'create bad', 'create c']);
  });
});
