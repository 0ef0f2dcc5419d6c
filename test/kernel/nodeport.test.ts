/**
 * Node frontends (NodePort, external IPs) on the real kernel: a client
 * outside the cluster, two nodes on one L2 segment, backends behind them.
 *
 *   outside 192.168.77.100 ─┐            ┌─ n1 192.168.77.1 ── br0 10.82.1.0/24: be1
 *                           └─ lan0 ─────┤
 *                                        └─ n2 192.168.77.2 ── br0 10.82.2.0/24: be2a, be2b, mesh
 *
 * Each node runs its own dataplane (its own pin root); sy_nodeport sits on
 * each node's ext0. The client dials N1; the backends answer with the
 * address they saw, so "the backend sees the client's IP" is what they say.
 */
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import type { NodeServiceOptions } from '../../interceptor/src/dataplane/nodeport';
import type { CounterName, LbBackend } from '../../interceptor/src/dataplane/abi';
import { accessMatching } from '../helpers/access-log';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { Lan, LanMember } from '../../lab/src/lan';
import { NetLab, NodeNs, Pod, sh } from '../../lab/src/netlab';
import { Proc, waitUntil } from '../../lab/src/proc';
import { readablePath } from '../../lab/src/readable';

const PEER = readablePath('test/fixtures/np-peer.py');
const PYTHON = '/usr/bin/python3';
const N1 = '192.168.77.1';
const N2 = '192.168.77.2';
const CLIENT = '192.168.77.100';
const EXTERNAL_IP = '203.0.113.10';
const MB = 1_000_000;

describeKernel('NodePort and external IPs at the node: snat, dsr, Local', () => {
  let lab: NetLab;
  let n1: NodeNs, n2: NodeNs;
  let dp1: Dataplane, dp2: Dataplane;
  let m1: LanMember;
  let outside: { netns: string; cgroup: null };
  let be1: Pod, be2a: Pod, be2b: Pod, mesh: Pod;
  let meshSidecar: Proc;
  let nextId = 1;

  const serve = async (pod: Pod) => {
    const p = lab.spawn(pod, [PYTHON, PEER, 'serve', '--name', pod.name, '--tcp', '8080', '--udp', '5353'], { uid: 1000, label: `np-peer(${pod.name})` });
    await p.waitForJson((o) => o.event === 'ready');
  };
  const client = async (args: string[]) => {
    const p = lab.spawn(outside, [PYTHON, PEER, ...args], { label: `client ${args.join(' ')}` });
    await p.wait();
    const out = p.json().find((o) => o.event === 'result');
    if (!out) throw new Error(`client ${args.join(' ')} gave no result: ${p.stderr}`);
    return out as { reply?: { name: string; peer: string }; peername?: string; from?: string; bytes?: number; sha256_ok?: boolean; error?: string; path_mtu?: number };
  };
  const be = (p: Pod, local = false): LbBackend => ({ ip: p.ip, port: 8080, ...(local ? { local } : {}) });
  const udpBe = (p: Pod): LbBackend => ({ ip: p.ip, port: 5353 });
  const opts = (mode: NodeServiceOptions['mode'], local = false): NodeServiceOptions => ({ mode, local, affinityTimeoutSeconds: 0 });
  const hostOf = (addr?: string) => addr?.split(':')[0];
  const counter = (dp: Dataplane, name: CounterName) => dp.counters()[name];

  beforeAll(async () => {
    requireKernel();
    lab = new NetLab();
    n1 = lab.addNode('n1', '10.82.1');
    n2 = lab.addNode('n2', '10.82.2');
    outside = { netns: lab.addNetns('outside'), cgroup: null };
    const lan = new Lan(lab, '192.168.77');
    lan.join(outside.netns, 100);
    m1 = lan.join(n1.netns, 1);
    const m2 = lan.join(n2.netns, 2);
    lan.routePodSubnets([{ node: n1, member: m1 }, { node: n2, member: m2 }]);
    sh('ip', ['-n', outside.netns, 'route', 'add', '203.0.113.0/24', 'via', N1]);
    // kube-proxy's KUBE-FORWARD on every node drops what conntrack calls INVALID (a reply whose flow it never saw begin).
    for (const n of [n1, n2]) sh('ip', ['netns', 'exec', n.netns, 'iptables', '-w', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
    be1 = lab.addPod(n1, 'be1');
    be2a = lab.addPod(n2, 'be2a');
    be2b = lab.addPod(n2, 'be2b');
    mesh = lab.addPod(n2, 'mesh');
    for (const [dp, node, addr] of [[1, n1, N1], [2, n2, N2]] as const) {
      // N2's socket programs cover the lab's pods (the mesh pod's sidecar needs them); N1's an empty cgroup.
      const d = Dataplane.load({ cgroupPath: dp === 2 ? lab.cgroupRoot : lab.addCgroup('n1-scope'), pinRoot: lab.addPinRoot(`n${dp}`) });
      d.attachNodeDevice({ netnsPath: `/var/run/netns/${node.netns}`, ifname: 'ext0' });
      d.setNodePortConfig({ snatAddress: addr, snatPortMin: 61000, snatPortMax: 65535 });
      if (dp === 1) dp1 = d;
      else dp2 = d;
    }
    dp2.registerPod({ netnsPath: mesh.netnsPath, cgroupPath: mesh.cgroup, ips: [mesh.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
    meshSidecar = await lab.sidecar(mesh);
    await Promise.all([be1, be2a, be2b, mesh].map(serve));
  });

  afterAll(async () => {
    dp1?.close();
    dp2?.close();
    await lab?.cleanup();
  });

  test('snat: the backend sees N1, the client sees N1:nodePort, and the reply crosses N1', async () => {
    dp1.setNodeService(nextId++, { ip: N1, port: 30080, protocol: 'TCP' }, [be(be2a)], opts('snat'));
    const who = await client(['tcp', N1, '30080', 'who']);
    expect(who.reply?.name).toBe('be2a');
    expect(hostOf(who.reply?.peer)).toBe(N1);
    expect(who.peername).toBe(`${N1}:30080`);

    const before = Lan.counters(m1);
    const dl = await client(['tcp', N1, '30080', 'download', String(20 * MB)]);
    expect([dl.bytes, dl.sha256_ok]).toEqual([20 * MB, true]);
    expect(Lan.counters(m1).rxBytes - before.rxBytes).toBeGreaterThan(20 * MB); // the reply came back through N1
    expect(counter(dp1, 'SY_C_NP_SNAT_REPLIES')).toBeGreaterThan(0n);
  });

  test('dsr, TCP: the backend sees the client, 100 MB arrive intact, and no reply byte crosses N1', async () => {
    dp1.setNodeService(nextId++, { ip: N1, port: 30081, protocol: 'TCP' }, [be(be2a), be(be2b)], opts('dsr'));
    const names = new Set<string>();
    for (let i = 0; i < 8; i++) {
      // Two backends: a packet after the SYN that went elsewhere would reset the connection.
      const who = await client(['tcp', N1, '30081', 'who']);
      expect(hostOf(who.reply?.peer)).toBe(CLIENT);
      expect(who.peername).toBe(`${N1}:30081`);
      names.add(who.reply!.name);
    }
    expect([...names].every((n) => n === 'be2a' || n === 'be2b')).toBe(true);

    const before = Lan.counters(m1);
    const dl = await client(['tcp', N1, '30081', 'download', String(100 * MB)]);
    expect([dl.bytes, dl.sha256_ok, dl.peername]).toEqual([100 * MB, true, `${N1}:30081`]);
    const after = Lan.counters(m1);
    // N1 carries the client's ACKs both ways (about 3 MB); the 100 MB go from N2 to the client directly.
    expect(after.rxBytes - before.rxBytes).toBeLessThan(10 * MB);
    expect(after.txBytes - before.txBytes).toBeLessThan(10 * MB);
    expect(counter(dp2, 'SY_C_NP_DSR_RECORDED')).toBeGreaterThan(0n);
    expect(counter(dp2, 'SY_C_NP_REPLIES_REWRITTEN')).toBeGreaterThan(0n);
  });

  test('dsr keeps a flow on its backend through an endpoint change that keeps it', async () => {
    const id = nextId++;
    const fe = { ip: N1, port: 30082, protocol: 'TCP' as const };
    dp1.setNodeService(id, fe, [be(be2a)], opts('dsr'));
    const p = lab.spawn(outside, [PYTHON, PEER, 'tcp', N1, '30082', 'download', String(200 * MB)], { label: 'long download' });
    await waitUntil(() => dp1.nodeServices().find((s) => s.serviceId === id)!.counters.dsr > 0n, 'the download connected', 10_000);
    // Another backend joins in front of it while the download runs.
    dp1.setNodeService(id, fe, [be(be2b), be(be2a)], opts('dsr'));
    expect(p.exitCode).toBeNull();
    await p.wait();
    const out = p.json().find((o) => o.event === 'result');
    expect([out?.bytes, out?.sha256_ok]).toEqual([200 * MB, true]);
  });

  test('dsr, UDP: the backend sees the client; the reply comes from N1:nodePort; hybrid leaves UDP to snat', async () => {
    dp1.setNodeService(nextId++, { ip: N1, port: 30053, protocol: 'UDP' }, [udpBe(be2a)], opts('dsr'));
    const dsr = await client(['udp', N1, '30053']);
    expect([hostOf(dsr.reply?.peer), dsr.from]).toEqual([CLIENT, `${N1}:30053`]);

    dp1.setNodeService(nextId++, { ip: N1, port: 30054, protocol: 'UDP' }, [udpBe(be2a)], opts('hybrid'));
    const hybrid = await client(['udp', N1, '30054']);
    expect([hostOf(hybrid.reply?.peer), hybrid.from]).toEqual([N1, `${N1}:30054`]);
  });

  test('dsr: a DF datagram that the option would push over the MTU gets ICMP fragmentation needed', async () => {
    dp1.setNodeService(nextId++, { ip: N1, port: 30055, protocol: 'UDP' }, [udpBe(be2a)], opts('dsr'));
    const before = counter(dp1, 'SY_C_NP_ICMP_TOO_BIG');
    const big = await client(['udp', N1, '30055', '--size', '1472', '--df']); // 1500 bytes on the wire, 1508 with the option
    expect([big.error, big.path_mtu]).toEqual(['EMSGSIZE', 1492]);
    expect(counter(dp1, 'SY_C_NP_ICMP_TOO_BIG')).toBe(before + 1n);
    const fits = await client(['udp', N1, '30055', '--size', '1464', '--df']);
    expect(hostOf(fits.reply?.peer)).toBe(CLIENT);
  });

  test('an external IP routed to N1 is balanced like a NodePort, client IP kept', async () => {
    dp1.setNodeService(nextId++, { ip: EXTERNAL_IP, port: 80, protocol: 'TCP' }, [be(be2b)], opts('dsr'));
    const who = await client(['tcp', EXTERNAL_IP, '80', 'who']);
    expect([who.reply?.name, hostOf(who.reply?.peer), who.peername]).toEqual(['be2b', CLIENT, `${EXTERNAL_IP}:80`]);
  });

  test('externalTrafficPolicy Local: a local backend keeps the client IP in snat mode; a node without one drops', async () => {
    dp1.setNodeService(nextId++, { ip: N1, port: 30090, protocol: 'TCP' }, [be(be1, true)], opts('snat', true));
    const local = await client(['tcp', N1, '30090', 'who']);
    expect([local.reply?.name, hostOf(local.reply?.peer), local.peername]).toEqual(['be1', CLIENT, `${N1}:30090`]);
    expect(counter(dp1, 'SY_C_NP_REPLIES_REWRITTEN')).toBeGreaterThan(0n);

    const id = nextId++;
    dp1.setNodeService(id, { ip: N1, port: 30091, protocol: 'TCP' }, [], opts('snat', true));
    const none = await client(['tcp', N1, '30091', 'who', '--timeout', '1']);
    expect(none.error).toBe('ETIMEDOUT');
    expect(dp1.nodeServices().find((s) => s.serviceId === id)!.counters.no_backend).toBeGreaterThan(0n);
  });

  test('a mesh backend: its sidecar gets the connection with the outside client as source', async () => {
    dp1.setNodeService(nextId++, { ip: N1, port: 30100, protocol: 'TCP' }, [{ ip: mesh.ip, port: 8080 }], opts('dsr'));
    const who = await client(['tcp', N1, '30100', 'who']);
    // The app behind the sidecar sees its sidecar; the sidecar saw the client.
    expect([who.reply?.name, who.peername]).toEqual(['mesh', `${N1}:30100`]);
    await waitUntil(() => meshSidecar.lines.some(accessMatching((a) => a.direction === 'inbound' && hostOf(a.src) === CLIENT)), 'the sidecar logged the client', 5000);
  });

  test('1000 NodePort Services: every one programmed and answering, and the map memory reported', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 1000; i++) {
      ids.push(nextId);
      dp1.setNodeService(nextId++, { ip: N1, port: 31000 + i, protocol: 'TCP' }, [be(be2a), be(be2b), be(be1, true)], opts('dsr'));
    }
    const programmed = dp1.nodeServices().filter((s) => s.frontend.port >= 31000 && s.frontend.port < 32000);
    expect(programmed.length).toBe(1000);
    expect(programmed.every((s) => s.backends.length === 3)).toBe(true);
    const who = await client(['tcp', N1, '31999', 'who']);
    expect(['be1', 'be2a', 'be2b']).toContain(who.reply?.name);
    const fill = dp1.mapFill();
    const kib = (m: string) => Math.round(fill[m].memlockBytes / 1024);
    process.stdout.write(`1000 node frontends: sy_lb_external ${fill.sy_lb_external.entries} entries, ${kib('sy_lb_external')} KiB; flows ${kib('sy_np_flows')} KiB, snat ${kib('sy_np_snat')} KiB, revnat ${kib('sy_np_revnat')} KiB\n`);
    expect(fill.sy_lb_external.entries).toBeGreaterThanOrEqual(1000);
  });

  test('everything else passes: a server on N1 itself sees the client', async () => {
    const own = lab.spawn({ netns: n1.netns, cgroup: null }, [PYTHON, PEER, 'serve', '--name', 'n1-itself', '--tcp', '9000', '--udp', '9001'], { label: 'np-peer(n1)' });
    await own.waitForJson((o) => o.event === 'ready');
    const who = await client(['tcp', N1, '9000', 'who']);
    expect([who.reply?.name, hostOf(who.reply?.peer)]).toEqual(['n1-itself', CLIENT]);
  });
});
