/**
 * The dataplane on the real kernel: real programs, sockets, network
 * namespaces, veth pairs and cgroup2 directories.
 *
 *   node1 (10.77.0.0/24)                       node2 (10.78.0.0/24)
 *   ├── client  mesh, sidecar uid 1337         └── remote  not registered
 *   ├── server  mesh, sidecar, app on 8080/8082/9090 (9090 excluded inbound)
 *   └── plain   not registered, app on 8080/7070
 */
import * as fs from 'fs';
import { native } from '../../native';
import { DEFAULT_INTERCEPTION, Interception } from '../../api/interception';
import { Dataplane, TC_HANDLE, TC_PRIORITY } from '../../interceptor/src/dataplane/dataplane';
import { CounterName, Origin } from '../../interceptor/src/dataplane/abi';
import { accessMatching } from '../helpers/access-log';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, NodeNs, Pod, sh } from '../../lab/src/netlab';
import { Proc, waitUntil } from '../../lab/src/proc';
import { freePort } from '../../lab/src/ports';

const CLIENT = 'test/fixtures/client.js';
const APP_UID = 1000;

describeKernel('dataplane on the real kernel', () => {
  let lab: NetLab;
  let dp: Dataplane;
  let node1: NodeNs, node2: NodeNs;
  let client: Pod, server: Pod, plain: Pod, remote: Pod;
  let clientSidecar: Proc, serverSidecar: Proc, serverApp: Proc, serverSink: Proc;
  let clientReg: bigint, serverReg: bigint;

  const register = (pod: Pod, interception: Partial<Interception> = {}) =>
    dp.registerPod({
      netnsPath: pod.netnsPath,
      cgroupPath: pod.cgroup,
      ips: [pod.ip, pod.ip6],
      interception: { ...DEFAULT_INTERCEPTION, ...interception },
      ifname: 'eth0',
    });

  /** Counter growth while fn runs. */
  async function counting<T>(fn: () => Promise<T>): Promise<[T, (c: CounterName) => bigint]> {
    const before = dp.counters();
    const result = await fn();
    const after = dp.counters();
    return [result, (c) => after[c] - before[c]];
  }

  const run = (pod: Pod, args: string[], uid = APP_UID) => lab.run(pod, CLIENT, args, { uid });

  beforeAll(async () => {
    requireKernel();
    lab = new NetLab();
    node1 = lab.addNode('node1', '10.77.0');
    node2 = lab.addNode('node2', '10.78.0');
    lab.linkNodes(node1, node2);
    client = lab.addPod(node1, 'client');
    server = lab.addPod(node1, 'server');
    plain = lab.addPod(node1, 'plain');
    remote = lab.addPod(node2, 'remote');

    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
    clientReg = register(client).netnsCookie;
    serverReg = register(server, { excludeInboundPorts: [9090] }).netnsCookie;

    [clientSidecar, serverSidecar] = await Promise.all([lab.sidecar(client), lab.sidecar(server)]);
    [serverApp, serverSink] = await Promise.all([
      lab.server(server, [8080, 9090]),
      lab.server(server, [8082], 'sink'),
      lab.server(plain, [8080, 7070]),
      lab.server(remote, [8080]),
    ]);
  });

  afterAll(async () => {
    dp?.close();
    await lab?.cleanup();
  });

  test('1. outbound: the app reaches another pod through its sidecar, which learns the original destination', async () => {
    const bytes = 1_048_576 + 1;
    const [r, delta] = await counting(() => run(client, ['--host', plain.ip, '--port', '8080', '--bytes', String(bytes)]));

    expect(r).toMatchObject({ intact: true, sent: bytes, received: bytes });
    expect(r.error).toBeUndefined();
    // getpeername() shows where the kernel really connected the app: its sidecar.
    expect(r.peer).toBe('127.0.0.1:15001');
    await clientSidecar.waitForLine(
      accessMatching((a) => a.direction === 'outbound' && a.src === r.local && a.dst === `${plain.ip}:8080` && a.sent === bytes && a.received === bytes && a.result === 'ok'),
    );
    expect(delta('SY_C_CONNECT_REDIRECTED_OUTBOUND')).toBeGreaterThanOrEqual(1n);
    expect(delta('SY_C_GETSOCKOPT_ANSWERED')).toBeGreaterThanOrEqual(1n);
    expect(delta('SY_C_GETSOCKOPT_MISS')).toBe(0n);
  });

  test('2. the sidecar\'s own upstream connection is not redirected', async () => {
    const [r, delta] = await counting(() => run(client, ['--host', plain.ip, '--port', '8080', '--bytes', '1000'], 1337));
    expect(r).toMatchObject({ intact: true, peer: `${plain.ip}:8080` });
    expect(delta('SY_C_CONNECT_SIDECAR_PASSED')).toBe(1n);
    expect(delta('SY_C_CONNECT_REDIRECTED_OUTBOUND')).toBe(0n);
  });

  test('3. non-mesh pods, host processes and foreign processes in a pod netns are untouched', async () => {
    const [fromPlain, d1] = await counting(() => run(plain, ['--host', remote.ip, '--port', '8080']));
    expect(fromPlain).toMatchObject({ intact: true, peer: `${remote.ip}:8080` });
    expect(d1('SY_C_CONNECT_NOT_MESH')).toBe(1n);

    // A host-netns process inside the attached cgroup subtree.
    const hostPort = await freePort();
    const hostServer = lab.node({ netns: null, cgroup: null }, 'test/fixtures/echo-server.js', ['--port', String(hostPort)]);
    await hostServer.waitForJson((o) => o.event === 'ready');
    const hostCgroup = lab.addCgroup('host-procs');
    const [fromHost, d2] = await counting(() =>
      lab.run({ netns: null, cgroup: hostCgroup }, CLIENT, ['--host', '127.0.0.1', '--port', String(hostPort)]),
    );
    expect(fromHost).toMatchObject({ intact: true, peer: `127.0.0.1:${hostPort}` });
    expect(d2('SY_C_CONNECT_REDIRECTED_OUTBOUND')).toBe(0n);
    await hostServer.stop();

    // Someone entering the mesh pod's netns from outside its cgroup (nsenter, a CNI plugin).
    const intruder = lab.addCgroup('intruder');
    const [fromIntruder, d3] = await counting(() =>
      lab.run({ netns: client.netns, cgroup: intruder }, CLIENT, ['--host', plain.ip, '--port', '8080']),
    );
    expect(fromIntruder).toMatchObject({ intact: true, peer: `${plain.ip}:8080` });
    expect(d3('SY_C_CONNECT_FOREIGN_CGROUP')).toBe(1n);
  });

  test('4. excluded outbound ports and CIDRs, and excluded inbound ports, bypass the sidecar', async () => {
    register(client, { excludeOutboundPorts: [7070], excludeOutboundCidrs: [`${node2.subnet}.0/24`] });
    try {
      const [byPort, d1] = await counting(() => run(client, ['--host', plain.ip, '--port', '7070']));
      expect(byPort).toMatchObject({ intact: true, peer: `${plain.ip}:7070` });
      expect(d1('SY_C_CONNECT_EXCLUDED')).toBe(1n);

      const byCidr = await run(client, ['--host', remote.ip, '--port', '8080']);
      expect(byCidr).toMatchObject({ intact: true, peer: `${remote.ip}:8080` });

      const control = await run(client, ['--host', plain.ip, '--port', '8080']);
      expect(control).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });
    } finally {
      register(client);
    }

    // Inbound 9090 is excluded on the server: the app sees the remote client itself, not its sidecar.
    const [direct, d2] = await counting(() => run(remote, ['--host', server.ip, '--port', '9090', '--bytes', '999']));
    expect(direct).toMatchObject({ intact: true, peer: `${server.ip}:9090` });
    await serverApp.waitForJson((o) => o.local === `${server.ip}:9090` && o.peer === direct.local && o.bytes === 999);
    expect(d2('SY_C_TC_EXCLUDED')).toBe(1n);
    expect(d2('SY_C_TC_INBOUND_NEW')).toBe(0n);
  });

  test('5. same-node inbound: the client sidecar\'s connect lands on the server pod\'s inbound port', async () => {
    const bytes = 4321;
    const [r, delta] = await counting(() => run(client, ['--host', server.ip, '--port', '8080', '--bytes', String(bytes)]));
    expect(r).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });
    const out = await clientSidecar.waitForLine(accessMatching((a) => a.src === r.local && a.direction === 'outbound'));
    expect(out).toContain(`dst=${server.ip}:8080`);
    // The server sidecar accepted on 15003 and still knows the app asked for :8080.
    await serverSidecar.waitForLine(
      accessMatching((a) => a.direction === 'inbound' && a.src.startsWith(`${client.ip}:`) && a.dst === `${server.ip}:8080` && a.sent === bytes),
    );
    // The app's peer is its own sidecar (connecting from the pod IP).
    await serverApp.waitForJson((o) => o.local === `${server.ip}:8080` && String(o.peer).startsWith(`${server.ip}:`) && o.bytes === bytes);
    expect(delta('SY_C_CONNECT_REDIRECTED_INBOUND')).toBe(1n);
    expect(delta('SY_C_TC_INBOUND_NEW')).toBe(0n);
  });

  test('per-pod counters attribute traffic to the right pod', () => {
    const [c, s] = [dp.podCounters(clientReg), dp.podCounters(serverReg)];
    expect(c!.redirected_outbound).toBeGreaterThanOrEqual(2n); // tests 1 and 5
    expect(c!.sidecar_passed).toBeGreaterThanOrEqual(1n); // test 2
    expect(s!.redirected_inbound).toBeGreaterThanOrEqual(1n); // test 5 landed on the server
    expect(s!.redirected_outbound).toBe(0n); // the server pod's app never dialled out
    expect(dp.podCounters(424242n)).toBeNull();
  });

  test('6. cross-node inbound: tc steers new connections to 15003, replies keep the original port, 100 MB arrive intact', async () => {
    const bytes = 100 * 1024 * 1024;
    const [r, delta] = await counting(() =>
      run(remote, ['--host', server.ip, '--port', '8082', '--mode', 'sink', '--bytes', String(bytes), '--timeout-ms', '90000']),
    );
    expect(r.error).toBeUndefined();
    // The client only ever saw :8082, and the sink's SHA-256 of what arrived matches what was sent.
    expect(r).toMatchObject({ intact: true, peer: `${server.ip}:8082`, sent: bytes });
    await serverSidecar.waitForLine(
      accessMatching((a) => a.direction === 'inbound' && a.src === r.local && a.dst === `${server.ip}:8082` && a.sent === bytes),
    );
    await serverSink.waitForJson((o) => o.local === `${server.ip}:8082` && o.bytes === bytes);
    expect(delta('SY_C_TC_INBOUND_NEW')).toBe(1n);
    expect(delta('SY_C_TC_INBOUND_PACKETS')).toBeGreaterThan(100n);
    expect(delta('SY_C_TC_OUTBOUND_PACKETS')).toBeGreaterThan(10n);

    // State dies with the connection: no tc entry is left for this client.
    const [ip, port] = [String(r.local).split(':')[0], Number(String(r.local).split(':')[1])];
    const leftover = () => dp.connections().filter((c) => c.origin === Origin.TcInbound && c.clientIp === ip && c.clientPort === port);
    await waitUntil(() => leftover().length === 0, 'tc origdst entry removed after close');
  });

  test('7. sockmap splices app <-> sidecar: redirect counters grow and random sizes from 1 B to 1 MB arrive intact', async () => {
    const [r, delta] = await counting(() => run(client, ['--host', plain.ip, '--port', '8080', '--pingpong', '60', '--seed', '7']));
    expect(r).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });
    expect(delta('SY_C_SOCKMAP_INSERTED')).toBeGreaterThanOrEqual(2n);
    expect(delta('SY_C_SKMSG_REDIRECTED')).toBeGreaterThan(0n);
  });

  test('8. two pods with identical loopback 4-tuples do not interfere', async () => {
    const bind = ['--bind', '127.0.0.1:40000', '--hold'];
    const a = lab.node(client, CLIENT, ['--host', plain.ip, '--port', '8080', ...bind], { uid: APP_UID });
    const b = lab.node(server, CLIENT, ['--host', remote.ip, '--port', '8080', ...bind], { uid: APP_UID });
    await Promise.all([a.waitForJson((o) => o.event === 'held'), b.waitForJson((o) => o.event === 'held')]);

    // The same client tuple 127.0.0.1:40000 -> 127.0.0.1:15001, twice, told apart by netns cookie.
    const held = dp.connections().filter((c) => c.clientIp === '127.0.0.1' && c.clientPort === 40000);
    expect(held).toHaveLength(2);
    expect(new Set(held.map((c) => c.netnsCookie)).size).toBe(2);
    expect(held.map((c) => `${c.address}:${c.port}`).sort()).toEqual([`${plain.ip}:8080`, `${remote.ip}:8080`].sort());

    a.child.stdin!.end();
    b.child.stdin!.end();
    await Promise.all([a.wait(), b.wait()]);
    expect(a.json().pop()).toMatchObject({ intact: true });
    expect(b.json().pop()).toMatchObject({ intact: true });
    await clientSidecar.waitForLine(accessMatching((x) => x.src === '127.0.0.1:40000' && x.dst === `${plain.ip}:8080`));
    await serverSidecar.waitForLine(accessMatching((x) => x.src === '127.0.0.1:40000' && x.dst === `${remote.ip}:8080`));
  });

  test('IPv6 and v4-mapped connects are redirected through connect6, and tc handles IPv6 inbound', async () => {
    const [v6, d1] = await counting(() => run(client, ['--host', plain.ip6, '--port', '8080', '--bytes', '6006']));
    expect(v6).toMatchObject({ intact: true, peer: '::1:15001' });
    await clientSidecar.waitForLine(accessMatching((a) => a.direction === 'outbound' && a.dst === `[${plain.ip6}]:8080` && a.sent === 6006));
    expect(d1('SY_C_CONNECT_REDIRECTED_OUTBOUND')).toBe(1n);

    // An AF_INET6 socket to ::ffff:a.b.c.d stays v4-mapped: sidecar at ::ffff:127.0.0.1, origdst over SOL_IP.
    const mapped = await run(client, ['--host', `::ffff:${plain.ip}`, '--port', '8080', '--bytes', '6007']);
    expect(mapped).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });
    await clientSidecar.waitForLine(accessMatching((a) => a.dst === `${plain.ip}:8080` && a.sent === 6007));

    const bytes = 3 * 1024 * 1024;
    const [fromRemote, d2] = await counting(() =>
      run(remote, ['--host', server.ip6, '--port', '8082', '--mode', 'sink', '--bytes', String(bytes)]),
    );
    expect(fromRemote).toMatchObject({ intact: true, peer: `${server.ip6}:8082` });
    await serverSidecar.waitForLine(accessMatching((a) => a.direction === 'inbound' && a.dst === `[${server.ip6}]:8082` && a.sent === bytes));
    expect(d2('SY_C_TC_INBOUND_NEW')).toBe(1n);
  });

  test('a connect that never establishes (its sidecar is not listening) leaves no connection entry behind', async () => {
    const lonely = lab.addPod(node1, 'lonely');
    const cookie = register(lonely).netnsCookie;
    const [r, delta] = await counting(() => run(lonely, ['--host', plain.ip, '--port', '8080', '--timeout-ms', '5000']));
    expect(String(r.error)).toMatch(/ECONNREFUSED/);
    expect(delta('SY_C_CONNECT_REDIRECTED_OUTBOUND')).toBe(1n);
    // Moved to the tuple at TCP_CONNECT_CB, and removed again when the RST closed the socket in SYN_SENT.
    expect(delta('SY_C_SOCKOPS_ORIGDST_MOVED')).toBe(1n);
    expect(delta('SY_C_SOCKOPS_ORIGDST_CLEANED')).toBe(1n);
    expect(dp.connections().filter((c) => c.netnsCookie === cookie)).toEqual([]);
    dp.unregisterPod(cookie);
  });

  test('9. unload leaves no pins, cgroup attachments or qdiscs, and traffic flows directly again', async () => {
    dp.unload();
    expect(fs.existsSync(lab.pinRoot)).toBe(false);
    for (const hook of ['connect4', 'connect6', 'sock_ops', 'getsockopt'] as const) {
      expect(native().cgroupPrograms(lab.cgroupRoot, hook)).toEqual([]);
    }
    for (const pod of [client, server]) {
      expect(native().tcQuery(pod.netnsPath, 'eth0', 'ingress', TC_PRIORITY, TC_HANDLE)).toBeNull();
      expect(sh('tc', ['-n', pod.netns, 'qdisc', 'show', 'dev', 'eth0'])).not.toContain('clsact');
    }
    const r = await run(client, ['--host', plain.ip, '--port', '8080']);
    expect(r).toMatchObject({ intact: true, peer: `${plain.ip}:8080` });
  });
});
