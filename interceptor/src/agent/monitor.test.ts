import type { MonitorEvent } from '../dataplane/monitor';
import { matches, resolve } from './monitor';

const event: MonitorEvent = {
  ktimeNs: '5000000000',
  hook: 'sock_ops',
  verdict: 'redirect',
  reason: 'sockops_origdst_moved',
  balanced: false,
  netnsCookie: '11',
  podNetnsCookie: '22',
  src: { ip: '10.244.0.5', port: 40000 },
  dst: { ip: '10.244.0.9', port: 15003 },
  orig: { ip: '10.244.0.9', port: 8080 },
};
const names = new Map([
  ['11', 'demo/a'],
  ['22', 'demo/b'],
  ['10.244.0.9', 'demo/b'],
]);

describe('monitor events as clients see them', () => {
  test('cookies become pod names, monotonic time becomes wall time', () => {
    const r = resolve(event, names, 'node-a', 1_000_000_000_000n - 5_000_000_000n);
    expect(r).toMatchObject({ node: 'node-a', pod: 'demo/a', peerPod: 'demo/b', time: new Date(1_000_000).toISOString() });
    expect(r).not.toHaveProperty('ktimeNs');
    // Outside the mesh: no pod; the receiving pod found by the address a connect now goes to.
    const outside = resolve({ ...event, netnsCookie: '99', podNetnsCookie: undefined }, names, 'node-a', 0n);
    expect(outside.pod).toBeUndefined();
    expect(outside.peerPod).toBe('demo/b');
    // A pod's own connection names no peer.
    expect(resolve({ ...event, podNetnsCookie: '11', dst: { ip: '127.0.0.1', port: 15001 } }, names, 'n', 0n).peerPod).toBeUndefined();
  });

  test('filters: by pod (either end) and by verdict', () => {
    const r = resolve(event, names, 'node-a', 0n);
    expect(matches(r, {})).toBe(true);
    expect(matches(r, { pod: 'demo/a' })).toBe(true);
    expect(matches(r, { pod: 'demo/b' })).toBe(true);
    expect(matches(r, { pod: 'demo/c' })).toBe(false);
    expect(matches(r, { verdict: 'redirect' })).toBe(true);
    expect(matches(r, { verdict: 'drop' })).toBe(false);
  });
});
