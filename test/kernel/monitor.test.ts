/**
 * The decision monitor on the real kernel: with the flag map off the
 * programs report nothing; on, every decision the counters record is also
 * one event on the ring buffer, with the pod, tuple and reason the program
 * saw; over the per-CPU rate, events are counted as lost instead.
 *
 *   node (10.74.0.0/24)
 *   ├── client  mesh pod, reference sidecar
 *   ├── server  mesh pod, reference sidecar, echo server on 8080
 *   └── plain   not registered
 *   Service 10.96.0.77:80 → server:8080 (in the maps directly)
 */
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { COUNTERS, CounterName, counterKey } from '../../interceptor/src/dataplane/abi';
import { EventRing, MonitorEvent } from '../../interceptor/src/dataplane/monitor';
import { native } from '../../native';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, Pod } from '../../lab/src/netlab';

const CLIENT = 'test/fixtures/client.js';
const SERVICE_IP = '10.96.0.77';

/** Decisions that are always reported, so their events must equal their counts. */
const REPORTED = [
  'SY_C_CONNECT_REDIRECTED_OUTBOUND',
  'SY_C_CONNECT_REDIRECTED_INBOUND',
  'SY_C_CONNECT_SIDECAR_PASSED',
  'SY_C_CONNECT_EXCLUDED',
  'SY_C_SOCKOPS_ORIGDST_MOVED',
  'SY_C_GETSOCKOPT_ANSWERED',
  'SY_C_TC_INBOUND_NEW',
  'SY_C_LB_TRANSLATED',
] as const satisfies readonly CounterName[];

describeKernel('the decision monitor', () => {
  let lab: NetLab;
  let dp: Dataplane;
  let ring: EventRing;
  let client: Pod, server: Pod, plain: Pod;
  let cookie: Record<string, string>;

  beforeAll(async () => {
    requireKernel();
    lab = new NetLab();
    const node = lab.addNode('node', '10.74.0');
    client = lab.addPod(node, 'client');
    server = lab.addPod(node, 'server');
    plain = lab.addPod(node, 'plain');
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
    for (const p of [client, server]) dp.registerPod({ netnsPath: p.netnsPath, cgroupPath: p.cgroup, ips: [p.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
    dp.setService(77, { ip: SERVICE_IP, port: 80, protocol: 'TCP' }, [{ ip: server.ip, port: 8080 }]);
    cookie = Object.fromEntries([client, server, plain].map((p) => [p.name, String(native().netnsCookie(p.netnsPath))]));
    ring = dp.openEvents();
    await Promise.all([lab.sidecar(client), lab.sidecar(server), lab.server(server, [8080])]);
  });

  afterAll(async () => {
    ring?.close();
    dp?.close();
    await lab?.cleanup();
  });

  /** Runs the traffic, and returns the events it produced and the counters it moved. */
  async function traffic(run: () => Promise<void>): Promise<{ events: MonitorEvent[]; counted: Record<string, bigint> }> {
    ring.read(); // anything left from setup
    const before = dp.counters();
    await run();
    const after = dp.counters();
    const counted = Object.fromEntries(COUNTERS.map((c) => [counterKey(c), after[c] - before[c]]));
    return { events: ring.read(), counted };
  }

  const connect = async (from: Pod, host: string, port: number) => {
    const r = await lab.run(from, CLIENT, ['--host', host, '--port', String(port), '--bytes', '1000'], { uid: 1000 });
    expect(r).toMatchObject({ intact: true });
  };

  test('off (the default): connections are intercepted and nothing is reported', async () => {
    expect(dp.monitorEnabled()).toBe(false);
    const { events, counted } = await traffic(() => connect(client, server.ip, 8080));
    expect(counted.connect_redirected_outbound).toBe(1n);
    expect(events).toEqual([]);
  });

  test('on: one event per decision, with the pod, the tuple and the reason', async () => {
    dp.setMonitor(true);
    const { events, counted } = await traffic(async () => {
      await connect(client, server.ip, 8080); // mesh → mesh on this node
      await connect(plain, server.ip, 8080); // outside the mesh → tc steers it
      await connect(plain, SERVICE_IP, 80); // a ClusterIP: balanced at connect, then tc
    });
    dp.setMonitor(false);

    const byReason = (r: string) => events.filter((e) => e.reason === r);
    for (const c of REPORTED) expect([c, BigInt(byReason(counterKey(c)).length)]).toEqual([c, counted[counterKey(c)]]);
    expect(counted.connect_redirected_outbound).toBe(1n);
    expect(counted.tc_inbound_new).toBe(2n);
    expect(counted.lb_translated).toBe(1n);

    expect(byReason('connect_redirected_outbound')[0]).toMatchObject({
      hook: 'connect4',
      verdict: 'redirect',
      netnsCookie: cookie.client,
      orig: { ip: server.ip, port: 8080 },
      dst: { ip: '127.0.0.1', port: 15001 },
      uid: 1000,
    });
    expect(byReason('connect_redirected_outbound')[0].pid).toBeGreaterThan(0);
    // The client's sidecar dials the server's inbound port; sock_ops then knows the whole tuple.
    expect(byReason('connect_redirected_inbound')[0]).toMatchObject({ netnsCookie: cookie.client, dst: { ip: server.ip, port: 15003 }, orig: { ip: server.ip, port: 8080 }, uid: 1337 });
    const moved = byReason('sockops_origdst_moved').find((e) => e.podNetnsCookie === cookie.server);
    expect(moved).toMatchObject({ hook: 'sock_ops', netnsCookie: cookie.client, src: { ip: client.ip }, dst: { ip: server.ip, port: 15003 }, orig: { port: 8080 } });
    // Both sidecars learned the original destination.
    expect(byReason('getsockopt_answered').map((e) => [e.netnsCookie, e.orig.port, e.uid])).toEqual(
      expect.arrayContaining([
        [cookie.client, 8080, 1337],
        [cookie.server, 8080, 1337],
      ]),
    );
    // tc on the server's interface steered the plain pod's two SYNs, one of them for the Service.
    const tc = byReason('tc_inbound_new');
    expect(tc.map((e) => [e.netnsCookie, e.src?.ip, e.dst.port, e.orig.port])).toEqual([
      [cookie.server, plain.ip, 15003, 8080],
      [cookie.server, plain.ip, 15003, 8080],
    ]);
    expect(byReason('lb_translated')).toEqual([
      expect.objectContaining({ hook: 'connect4', verdict: 'redirect', balanced: true, netnsCookie: cookie.plain, orig: { ip: SERVICE_IP, port: 80 }, dst: { ip: server.ip, port: 8080 } }),
    ]);
    // The server's sidecar reaching its own app is left alone: a pass.
    expect(byReason('connect_sidecar_passed').every((e) => e.verdict === 'pass' && e.netnsCookie === cookie.server)).toBe(true);
    // The plain pod's own connects are no decision of the mesh: not reported.
    expect(events.filter((e) => e.netnsCookie === cookie.plain && e.hook === 'connect4').length).toBe(1);
  });

  test('off again: nothing more is reported', async () => {
    const { events, counted } = await traffic(() => connect(client, server.ip, 8080));
    expect(counted.connect_redirected_outbound).toBe(1n);
    expect(events).toEqual([]);
  });

  test('over the per-CPU rate, events are counted as lost rather than reported', async () => {
    const lostBefore = dp.monitorLost();
    dp.setMonitor(true, 1);
    const { events, counted } = await traffic(async () => {
      for (let i = 0; i < 3; i++) await connect(client, server.ip, 8080);
    });
    dp.setMonitor(false);
    const decisions = REPORTED.reduce((n, c) => n + counted[counterKey(c)], 0n);
    const lost = dp.monitorLost() - lostBefore;
    expect(decisions).toBeGreaterThanOrEqual(18n); // 3 connections, 6 reported decisions each at least
    expect(lost).toBeGreaterThan(0n);
    expect(BigInt(events.length) + lost).toBeGreaterThanOrEqual(decisions);
    expect(events.length).toBeLessThan(Number(decisions));
  });
});
