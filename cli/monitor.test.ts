import type { MonitorEventLine } from '../api/agent-wire';
import { formatEvent } from './monitor';

const base: MonitorEventLine = {
  time: '2026-12-02T16:40:20.238Z',
  node: 'node-a',
  hook: 'connect4',
  verdict: 'redirect',
  reason: 'connect_redirected_outbound',
  balanced: false,
  pod: 'demo/app-a',
  netnsCookie: '4097',
  dst: { ip: '127.0.0.1', port: 15001 },
  orig: { ip: '10.96.0.10', port: 80 },
  pid: 42,
  uid: 1000,
};

describe('monitor lines', () => {
  test('a connect: what was asked and where it goes, with the process', () => {
    expect(formatEvent(base)).toBe(`16:40:20.238 demo/app-a               connect4   redirect connect_redirected_outbound  10.96.0.10:80 => 127.0.0.1:15001  pid=42 uid=1000\n`);
  });

  test('a connection with both ends, another pod, the node, IPv6 and a lost notice', () => {
    const tc: MonitorEventLine = { ...base, hook: 'tc-ingress', reason: 'tc_inbound_new', pod: 'demo/app-b', src: { ip: 'fd00::5', port: 40000 }, dst: { ip: 'fd00::9', port: 15003 }, orig: { ip: 'fd00::9', port: 8080 }, pid: undefined, uid: undefined };
    expect(formatEvent(tc, true)).toBe(`16:40:20.238 node-a demo/app-b               tc-ingress redirect tc_inbound_new               [fd00::5]:40000 -> [fd00::9]:15003 (asked [fd00::9]:8080)\n`);
    const outside: MonitorEventLine = { ...base, pod: undefined, reason: 'lb_translated', balanced: true, peerPod: 'demo/app-b', dst: { ip: '10.244.0.9', port: 8080 } };
    expect(formatEvent(outside)).toContain('(not in mesh)');
    expect(formatEvent(outside)).toContain('10.96.0.10:80 => 10.244.0.9:8080  balanced to=demo/app-b pid=42 uid=1000');
    expect(formatEvent({ time: base.time, node: 'node-a', lost: '17' })).toBe('16:40:20.238 !! 17 decisions were not reported (rate limit or full ring buffer)\n');
  });

  test("a node frontend's decision: the outside client, the frontend it asked for, the backend, and the pod there", () => {
    const np: MonitorEventLine = { ...base, hook: 'tc-node', reason: 'np_local', balanced: true, pod: undefined, peerPod: 'demo/app-b', pid: undefined, uid: undefined };
    const line = formatEvent({ ...np, src: { ip: '203.0.113.7', port: 51000 }, dst: { ip: '10.244.1.5', port: 8080 }, orig: { ip: '192.168.1.10', port: 30080 } });
    expect(line).toBe(`16:40:20.238 (node)                   tc-node    redirect np_local                     203.0.113.7:51000 -> 10.244.1.5:8080 (asked 192.168.1.10:30080)  balanced to=demo/app-b\n`);
  });
});
