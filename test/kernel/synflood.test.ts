/**
 * tc's inbound state under stress, on the real kernel.
 *
 * A SYN flood against one mesh pod, from another node:
 * 200,000 SYNs with spoofed sources that never complete a handshake. Their
 * tc entries live in the LRU sy_origdst_transient, so they evict each other
 * and never the live connections in sy_origdst, and new connections to the
 * flooded pod and to its neighbour keep being steered to their sidecars.
 *
 *   node-a (10.79.0.0/24)                       node-x (10.79.1.0/24)
 *   ├── victim    mesh, sidecar, echo :8080 ◀── flood: 200k SYNs, spoofed 10.79.1.200-207
 *   └── neighbour mesh, sidecar, echo :8080 ◀── probe: 200 connects, round robin
 *
 * And the end of a connection whose sidecar closed first: its entry outlives
 * the socket in the LRU, so the client's retransmitted FIN (our final ACK
 * lost) still reaches the TIME_WAIT socket instead of the app's port.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { readablePath } from '../../lab/src/readable';
import { NetLab, Pod, sh } from '../../lab/src/netlab';
import { waitUntil } from '../../lab/src/proc';

const FLOOD = readablePath('test/fixtures/syn-flood.py');
const FIN = readablePath('test/fixtures/fin-peer.py');
const PYTHON = '/usr/bin/python3';
const MAP_SIZE = 4096; // small, so that the flood overruns it 50 times

describeKernel('tc under a SYN flood and at the end of a connection', () => {
  let lab: NetLab;
  let dp: Dataplane;
  let victim: Pod, neighbour: Pod, outside: Pod;

  beforeAll(async () => {
    requireKernel();
    lab = new NetLab();
    const nodeA = lab.addNode('node-a', '10.79.0');
    const nodeX = lab.addNode('node-x', '10.79.1');
    lab.linkNodes(nodeA, nodeX);
    victim = lab.addPod(nodeA, 'victim');
    neighbour = lab.addPod(nodeA, 'neighbour');
    outside = lab.addPod(nodeX, 'outside');
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot, mapSizes: { sy_origdst: MAP_SIZE, sy_origdst_transient: MAP_SIZE } });
    for (const p of [victim, neighbour]) {
      dp.registerPod({ netnsPath: p.netnsPath, cgroupPath: p.cgroup, ips: [p.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
      await Promise.all([lab.sidecar(p), lab.server(p, [8080])]);
    }
  });

  afterAll(async () => {
    dp?.close();
    await lab?.cleanup();
  });

  test('200,000 spoofed SYNs: new connections to both pods succeed, established ones flow, the maps stay within their size', async () => {
    // A connection established before the flood, held open through it.
    const held = lab.node(outside, 'test/fixtures/client.js', ['--host', victim.ip, '--port', '8080', '--bytes', '65536', '--hold'], { uid: 1000 });
    await held.waitForJson((o) => o.event === 'held');
    const before = dp.counters();

    const flood = lab.spawn(outside, [PYTHON, FLOOD, 'flood', '--dst', victim.ip, '--port', '8080', '--count', '200000', '--sources', Array.from({ length: 8 }, (_, i) => `10.79.1.${200 + i}`).join(','), '--seconds', '60'], { label: 'flood' });
    const during = lab.spawn(outside, [PYTHON, FLOOD, 'probe', '--targets', `${victim.ip}:8080,${neighbour.ip}:8080`, '--count', '200'], { uid: 1000, label: 'probe during' });
    const [flooded, probedDuring] = await Promise.all([flood.waitForJson((o) => o.event === 'flooded', 90_000), during.waitForJson((o) => o.event === 'probe', 90_000)]);
    const after = lab.spawn(outside, [PYTHON, FLOOD, 'probe', '--targets', `${victim.ip}:8080,${neighbour.ip}:8080`, '--count', '200'], { uid: 1000, label: 'probe after' });
    const probedAfter = await after.waitForJson((o) => o.event === 'probe', 90_000);

    const c = dp.counters();
    const fill = dp.mapFill();
    process.stdout.write(
      `syn flood: ${flooded.sent} SYNs in ${flooded.seconds} s; probes ok during ${probedDuring.ok}/200, after ${probedAfter.ok}/200; ` +
        `tc_inbound_new +${c.SY_C_TC_INBOUND_NEW - before.SY_C_TC_INBOUND_NEW}, tc_dropped_map_full +${c.SY_C_TC_DROPPED_MAP_FULL - before.SY_C_TC_DROPPED_MAP_FULL}; ` +
        `sy_origdst ${fill.sy_origdst.entries}/${fill.sy_origdst.max}, sy_origdst_transient ${fill.sy_origdst_transient.entries}/${fill.sy_origdst_transient.max}\n`,
    );
    expect(flooded.sent).toBe(200000);
    // Every flood SYN reached tc (and was steered), and none was dropped for want of room.
    expect(c.SY_C_TC_INBOUND_NEW - before.SY_C_TC_INBOUND_NEW).toBeGreaterThanOrEqual(200000n);
    expect(c.SY_C_TC_DROPPED_MAP_FULL - before.SY_C_TC_DROPPED_MAP_FULL).toBe(0n);
    expect(probedDuring.ok as number).toBeGreaterThanOrEqual(198);
    expect(probedAfter.ok as number).toBeGreaterThanOrEqual(198);
    expect(fill.sy_origdst.entries).toBeLessThanOrEqual(MAP_SIZE);
    expect(fill.sy_origdst_transient.entries).toBeLessThanOrEqual(MAP_SIZE);

    held.child.stdin!.end();
    await held.wait();
    expect(held.json().pop()).toMatchObject({ intact: true, sent: 65536, received: 65536 });
  });

  /** nft inside a pod's netns (never the host's). */
  function nft(pod: Pod, ruleset: string): void {
    const file = path.join(os.tmpdir(), `sy-nft-${process.pid}-${pod.name}.nft`);
    fs.writeFileSync(file, ruleset);
    try {
      sh('ip', ['netns', 'exec', pod.netns, 'nft', '-f', file]);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }
  const packets = (pod: Pod, counter: string) => Number(/packets (\d+)/.exec(sh('ip', ['netns', 'exec', pod.netns, 'nft', 'list', 'counter', 'inet', 'sy_fin_test', counter]))![1]);

  test('a FIN retransmitted after the sidecar closed first (our final ACK lost) reaches the TIME_WAIT socket: no RST', async () => {
    await lab.spawn(victim, [PYTHON, FIN, 'greet', '--port', '8081'], { uid: 1000, label: 'greeter' }).waitForJson((o) => o.event === 'ready');
    const client = lab.spawn(outside, [PYTHON, FIN, 'client', '--host', victim.ip, '--port', '8081'], { uid: 1000, label: 'fin client' });
    // The app said hi and closed; the sidecar closed towards the client first.
    const eof = await client.waitForJson((o) => o.event === 'eof');
    expect(eof.received).toBe('hi');
    // In the client's netns: from now on the victim's pure ACKs are lost; count the client's FINs and any RST.
    nft(
      outside,
      `table inet sy_fin_test {
        counter fins {}
        counter rsts {}
        chain out { type filter hook output priority 0; ip daddr ${victim.ip} tcp sport ${eof.local_port} tcp flags & fin == fin counter name "fins"; }
        chain in {
          type filter hook input priority 0;
          ip saddr ${victim.ip} tcp dport ${eof.local_port} tcp flags & rst == rst counter name "rsts"
          ip saddr ${victim.ip} tcp dport ${eof.local_port} tcp flags & (fin | syn | rst | ack) == ack drop
        }
      }\n`,
    );
    client.child.stdin!.write('\n');
    await client.waitForJson((o) => o.event === 'closed');
    // The client's own retransmissions are the clock: its third FIN means two went unanswered by an ACK.
    // An RST would end the retransmissions, so it ends the wait too.
    await waitUntil(() => packets(outside, 'fins') >= 3 || packets(outside, 'rsts') > 0, 'the client retransmitted its FIN twice, or got an RST', 15_000);
    expect(packets(outside, 'rsts')).toBe(0);
  });
});
