/**
 * Which sockets sk_msg splices, on the real kernel. Bytes that sk_msg queues
 * on a socket's ingress are invisible to splice(2), so only the two ends of
 * an app <-> sidecar connection may enter the sockhash: an app's own loopback
 * traffic and the sidecar's internal connections must reach a splice reader,
 * and a pod whose proxy or app reads with splice opts out with
 * switchyard.dev/sockmap-acceleration: "false".
 */
import { DEFAULT_INTERCEPTION, Interception } from '../../api/interception';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { CounterName } from '../../interceptor/src/dataplane/abi';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { readablePath } from '../../lab/src/readable';
import { NetLab, NodeNs, Pod } from '../../lab/src/netlab';

const PEER = readablePath('test/fixtures/splice-peer.py');
// Debian's interpreter by path: a PATH shim under root's home is not executable for the app and sidecar uids.
const PYTHON = '/usr/bin/python3';
const APP = 1000;
const SIDECAR = DEFAULT_INTERCEPTION.sidecarUid;

interface Transfer {
  received: number;
  stalled: boolean;
  visible_to_recv: number;
  delta: Partial<Record<CounterName, bigint>>;
}

describeKernel('sockmap: only app <-> sidecar pairs, and a way out for splice readers', () => {
  let lab: NetLab;
  let node: NodeNs;
  let dp: Dataplane;
  let mesh: Pod, optOut: Pod;
  let port = 9000;

  const register = (pod: Pod, interception: Interception) =>
    dp.registerPod({ netnsPath: pod.netnsPath, cgroupPath: pod.cgroup, ips: [pod.ip], interception, ifname: 'eth0' });

  beforeAll(() => {
    requireKernel();
    lab = new NetLab();
    node = lab.addNode('node', '10.77.0');
    mesh = lab.addPod(node, 'mesh');
    optOut = lab.addPod(node, 'optout');
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
    register(mesh, DEFAULT_INTERCEPTION);
    register(optOut, { ...DEFAULT_INTERCEPTION, sockmap: false });
  });

  afterAll(async () => {
    dp?.close();
    await lab?.cleanup();
  });

  /** One connection inside a pod: a server that reads 1000 bytes (by splice unless told), and a client that sends them. */
  async function transfer(pod: Pod, o: { serverUid: number; clientUid: number; listen?: string; connect?: string; listenPort?: number; read?: 'splice' | 'recv' }): Promise<Transfer> {
    const listenPort = o.listenPort ?? ++port;
    const before = dp.counters();
    const server = lab.spawn(pod, [PYTHON, PEER, 'serve', '--host', o.listen ?? '127.0.0.1', '--port', String(listenPort), '--read', o.read ?? 'splice', '--timeout', '2'], { uid: o.serverUid, label: `serve(${pod.name})` });
    await server.waitForJson((x) => x.event === 'listening');
    const client = lab.spawn(pod, [PYTHON, PEER, 'send', '--host', o.connect ?? '127.0.0.1', '--port', String(o.listenPort ?? listenPort)], { uid: o.clientUid, label: `send(${pod.name})` });
    const done = (await server.waitForJson((x) => x.event === 'done', 15_000)) as unknown as Transfer;
    await client.wait();
    await server.wait();
    const after = dp.counters();
    const delta = Object.fromEntries((['SY_C_SOCKMAP_INSERTED', 'SY_C_SOCKMAP_SKIPPED', 'SY_C_SKMSG_REDIRECTED'] as CounterName[]).map((k) => [k, after[k] - before[k]]));
    return { ...done, delta };
  }

  test("an app's own loopback connection is never spliced: a splice reader gets every byte", async () => {
    const r = await transfer(mesh, { serverUid: APP, clientUid: APP });
    expect(r).toMatchObject({ received: 1000, stalled: false });
    expect(r.delta).toEqual({ SY_C_SOCKMAP_INSERTED: 0n, SY_C_SOCKMAP_SKIPPED: 2n, SY_C_SKMSG_REDIRECTED: 0n });
  });

  test("the sidecar's internal connections are never spliced", async () => {
    const r = await transfer(mesh, { serverUid: SIDECAR, clientUid: SIDECAR });
    expect(r).toMatchObject({ received: 1000, stalled: false });
    expect(r.delta.SY_C_SKMSG_REDIRECTED).toBe(0n);
    expect(r.delta.SY_C_SOCKMAP_SKIPPED).toBe(1n);
  });

  test('sidecar -> app (inbound delivery) is spliced for a recv reader: both ends join', async () => {
    const r = await transfer(mesh, { serverUid: APP, clientUid: SIDECAR, listen: '0.0.0.0', connect: mesh.ip, read: 'recv' });
    expect(r).toMatchObject({ received: 1000, stalled: false });
    expect(r.delta.SY_C_SOCKMAP_INSERTED).toBe(2n);
    expect(r.delta.SY_C_SKMSG_REDIRECTED).toBeGreaterThan(0n);
  });

  test('app -> sidecar (a redirected connect) is spliced for a recv reader: both ends join', async () => {
    const r = await transfer(mesh, { serverUid: SIDECAR, clientUid: APP, listen: '::', listenPort: DEFAULT_INTERCEPTION.outboundPort, connect: '10.77.9.9', read: 'recv' });
    expect(r).toMatchObject({ received: 1000, stalled: false });
    expect(r.delta.SY_C_SOCKMAP_INSERTED).toBe(2n);
    expect(r.delta.SY_C_SKMSG_REDIRECTED).toBeGreaterThan(0n);
  });

  test('a splice reader on either end of an app <-> sidecar pair stalls with sockmap on; the bytes sit where only recv sees them', async () => {
    const atSidecar = await transfer(mesh, { serverUid: SIDECAR, clientUid: APP, listen: '::', listenPort: DEFAULT_INTERCEPTION.outboundPort, connect: '10.77.9.9' });
    expect(atSidecar).toMatchObject({ received: 0, stalled: true, visible_to_recv: 1000 });
    const atApp = await transfer(mesh, { serverUid: APP, clientUid: SIDECAR, listen: '0.0.0.0', connect: mesh.ip });
    expect(atApp).toMatchObject({ received: 0, stalled: true, visible_to_recv: 1000 });
  });

  test('with sockmap-acceleration "false" the pod keeps interception, and splice readers on both ends get every byte', async () => {
    const atSidecar = await transfer(optOut, { serverUid: SIDECAR, clientUid: APP, listen: '::', listenPort: DEFAULT_INTERCEPTION.outboundPort, connect: '10.77.9.9' });
    expect(atSidecar).toMatchObject({ received: 1000, stalled: false });
    const atApp = await transfer(optOut, { serverUid: APP, clientUid: SIDECAR, listen: '0.0.0.0', connect: optOut.ip });
    expect(atApp).toMatchObject({ received: 1000, stalled: false });
    for (const r of [atSidecar, atApp]) expect(r.delta).toMatchObject({ SY_C_SOCKMAP_INSERTED: 0n, SY_C_SKMSG_REDIRECTED: 0n });
    expect(dp.podCounters(BigInt([...dp.pods()].find(([, c]) => c.ips.includes(optOut.ip))![0]))!.redirected_outbound).toBe(1n);
  });
});
