/**
 * sy_np_ingress and sy_np_egress on crafted packets (BPF_PROG_TEST_RUN): what
 * each path writes into the packet and the maps, checksums included. The
 * topology test (nodeport.test.ts) runs the same programs on real traffic.
 */
import * as path from 'path';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import type { CounterName } from '../../interceptor/src/dataplane/abi';
import { native } from '../../native';
import { encodeAddr } from '../../api/addr';
import { upgradeSnatEntry } from '../../interceptor/src/dataplane/abi-nodeport';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { dsrOption, frame, parse } from '../helpers/packets';
import { NetLab } from '../../lab/src/netlab';

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const FRONTEND = '192.0.2.1';
const CLIENT = '198.51.100.9';
const BACKEND = '10.90.2.10';

describeKernel('node frontends on crafted packets (BPF_PROG_TEST_RUN)', () => {
  let lab: NetLab;
  let dp: Dataplane;
  const run = (prog: 'sy_np_ingress' | 'sy_np_egress', pkt: Buffer) => native().progTestRun(path.join(lab.pinRoot, 'progs', prog), pkt);
  const count = (c: CounterName) => dp.counters()[c];

  beforeAll(() => {
    requireKernel();
    lab = new NetLab();
    dp = Dataplane.load({ cgroupPath: lab.addCgroup('scope'), pinRoot: lab.pinRoot });
    dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61000, snatPortMax: 61003 });
    dp.setNodeService(1, { ip: FRONTEND, port: 30080, protocol: 'TCP' }, [{ ip: BACKEND, port: 8080 }], { mode: 'dsr', local: false, affinityTimeoutSeconds: 0 });
    dp.setNodeService(2, { ip: FRONTEND, port: 30081, protocol: 'TCP' }, [{ ip: BACKEND, port: 8080 }], { mode: 'snat', local: false, affinityTimeoutSeconds: 0 });
    dp.setNodeService(3, { ip: FRONTEND, port: 30053, protocol: 'UDP' }, [{ ip: BACKEND, port: 5353 }], { mode: 'hybrid', local: false, affinityTimeoutSeconds: 0 });
  });

  afterAll(async () => {
    dp?.close();
    await lab?.cleanup();
  });

  test('dsr: the SYN gets DNAT and the option {frontend, nodePort}; the next packet of the flow only DNAT', () => {
    const before = count('SY_C_NP_DSR');
    const syn = run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 40000, dport: 30080, syn: true }));
    expect([TC_ACT_OK, TC_ACT_REDIRECT]).toContain(syn.retval);
    const s = parse(syn.packet);
    expect({ src: s.src, dst: s.dst, dport: s.dport, ihl: s.ihl, ip: s.ipChecksumOk, l4: s.l4ChecksumOk }).toEqual({ src: CLIENT, dst: BACKEND, dport: 8080, ihl: 28, ip: true, l4: true });
    expect(s.options.equals(dsrOption(FRONTEND, 30080))).toBe(true);
    expect(count('SY_C_NP_DSR')).toBe(before + 1n);

    const ack = parse(run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 40000, dport: 30080, ack: true })).packet);
    expect({ dst: ack.dst, dport: ack.dport, ihl: ack.ihl, l4: ack.l4ChecksumOk }).toEqual({ dst: BACKEND, dport: 8080, ihl: 20, l4: true });
  });

  test("the backend's node reads the option, and its egress gives the reply the frontend's address", () => {
    const before = count('SY_C_NP_DSR_RECORDED');
    const arriving = frame({ src: CLIENT, dst: BACKEND, proto: 'TCP', sport: 40001, dport: 8080, syn: true, options: dsrOption(FRONTEND, 30080) });
    const r = run('sy_np_ingress', arriving);
    expect(r.retval).toBe(TC_ACT_OK);
    expect(r.packet.equals(arriving)).toBe(true); // recorded, not changed: plain routing takes it to the pod
    expect(count('SY_C_NP_DSR_RECORDED')).toBe(before + 1n);

    const reply = parse(run('sy_np_egress', frame({ src: BACKEND, dst: CLIENT, proto: 'TCP', sport: 8080, dport: 40001, syn: true, ack: true })).packet);
    expect({ src: reply.src, sport: reply.sport, dst: reply.dst, ip: reply.ipChecksumOk, l4: reply.l4ChecksumOk }).toEqual({ src: FRONTEND, sport: 30080, dst: CLIENT, ip: true, l4: true });
    // Another client's packet from the same backend port is not touched.
    const other = parse(run('sy_np_egress', frame({ src: BACKEND, dst: CLIENT, proto: 'TCP', sport: 8080, dport: 40002, ack: true })).packet);
    expect(other.src).toBe(BACKEND);
  });

  test('snat: source becomes the node and a port from its range; the reply goes back to the client from the frontend', () => {
    const out = parse(run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 40010, dport: 30081, syn: true })).packet);
    expect({ src: out.src, dst: out.dst, dport: out.dport, ihl: out.ihl, ip: out.ipChecksumOk, l4: out.l4ChecksumOk }).toEqual({ src: FRONTEND, dst: BACKEND, dport: 8080, ihl: 20, ip: true, l4: true });
    expect(out.sport).toBeGreaterThanOrEqual(61000);
    expect(out.sport).toBeLessThanOrEqual(61003);

    const back = parse(run('sy_np_ingress', frame({ src: BACKEND, dst: FRONTEND, proto: 'TCP', sport: 8080, dport: out.sport, syn: true, ack: true })).packet);
    expect({ src: back.src, sport: back.sport, dst: back.dst, dport: back.dport, l4: back.l4ChecksumOk }).toEqual({ src: FRONTEND, sport: 30081, dst: CLIENT, dport: 40010, l4: true });
  });

  test('snat ports run out: a new flow is dropped and counted, never given a port in use', () => {
    const before = count('SY_C_NP_SNAT_PORTS_EXHAUSTED');
    const verdicts = [40020, 40021, 40022, 40023, 40024, 40025].map((sport) => run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport, dport: 30081, syn: true })).retval);
    // The range holds 4 ports, one taken above: at most 3 more flows, the rest dropped.
    expect(verdicts.filter((v) => v === TC_ACT_SHOT).length).toBeGreaterThanOrEqual(3);
    expect(count('SY_C_NP_SNAT_PORTS_EXHAUSTED') - before).toBe(BigInt(verdicts.filter((v) => v === TC_ACT_SHOT).length));
  });

  test('a snat port comes back when its flow is over: at once after a reset, after the grace after FINs; a retransmitted SYN keeps it', () => {
    // One port, so every flow wants the same one.
    dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61010, snatPortMax: 61010, snatClosedGraceSeconds: 3600 });
    const tcp = (sport: number, flags: { syn?: boolean; ack?: boolean; fin?: boolean; rst?: boolean }) =>
      run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport, dport: 30081, ...flags }));
    const fromBackend = (flags: { ack?: boolean; fin?: boolean; rst?: boolean }) =>
      parse(run('sy_np_ingress', frame({ src: BACKEND, dst: FRONTEND, proto: 'TCP', sport: 8080, dport: 61010, ...flags })).packet);
    try {
      const a = tcp(41000, { syn: true });
      expect(parse(a.packet).sport).toBe(61010);
      expect(parse(tcp(41000, { syn: true }).packet).sport).toBe(61010); // the same SYN again: the same flow, not a second port
      expect(tcp(41001, { syn: true }).retval).toBe(TC_ACT_SHOT); // taken by a live flow

      tcp(41000, { rst: true, ack: true }); // the client resets: the port is free at once
      const b = tcp(41001, { syn: true });
      expect([b.retval === TC_ACT_SHOT, parse(b.packet).sport]).toEqual([false, 61010]);

      tcp(41001, { fin: true, ack: true }); // only the client has closed
      expect(tcp(41002, { syn: true }).retval).toBe(TC_ACT_SHOT);
      expect(fromBackend({ fin: true, ack: true }).dport).toBe(41001); // the backend's FIN still reaches the client
      expect(tcp(41002, { syn: true }).retval).toBe(TC_ACT_SHOT); // both closed, but within the grace
      dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61010, snatPortMax: 61010, snatClosedGraceSeconds: 0 });
      const c = tcp(41002, { syn: true });
      expect([c.retval === TC_ACT_SHOT, parse(c.packet).sport]).toEqual([false, 61010]);
      expect(fromBackend({ ack: true }).dport).toBe(41002); // replies now go to the new flow's client
    } finally {
      dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61000, snatPortMax: 61003 });
    }
  });

  test("a snat port whose backend closed first waits out the backend's TIME_WAIT; under pressure the oldest one is reused and counted", () => {
    // Two ports, no grace: only who closed first decides.
    const config = (snatTimeWaitSeconds: number) =>
      dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61020, snatPortMax: 61021, snatClosedGraceSeconds: 0, snatTimeWaitSeconds });
    const tcp = (sport: number, flags: { syn?: boolean; ack?: boolean; fin?: boolean; rst?: boolean }) =>
      run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport, dport: 30081, ...flags }));
    const fromBackend = (nat: number, flags: { ack?: boolean; fin?: boolean }) =>
      parse(run('sy_np_ingress', frame({ src: BACKEND, dst: FRONTEND, proto: 'TCP', sport: 8080, dport: nat, ...flags })).packet);
    const open = (sport: number) => {
      const r = tcp(sport, { syn: true });
      return r.retval === TC_ACT_SHOT ? 0 : parse(r.packet).sport;
    };
    config(600);
    try {
      const [a, b] = [open(42000), open(42001)];
      expect(new Set([a, b])).toEqual(new Set([61020, 61021]));
      fromBackend(a, { fin: true, ack: true }); // a's backend closes first: it will sit in TIME_WAIT
      tcp(42000, { fin: true, ack: true });
      tcp(42001, { fin: true, ack: true }); // b's client closes first: its backend ends in LAST_ACK, no TIME_WAIT
      fromBackend(b, { fin: true, ack: true });

      const before = count('SY_C_NP_SNAT_TIME_WAIT_REUSED');
      expect(open(42002)).toBe(b); // b is free at once; a is held
      expect(count('SY_C_NP_SNAT_TIME_WAIT_REUSED')).toBe(before);
      // The only port left is a, within its TIME_WAIT: reused rather than dropped, and counted.
      expect(open(42003)).toBe(a);
      expect(count('SY_C_NP_SNAT_TIME_WAIT_REUSED')).toBe(before + 1n);
      expect(fromBackend(a, { ack: true }).dport).toBe(42003);

      // A client port used again moves its flow on; the port it had still waits for its backend.
      fromBackend(a, { fin: true, ack: true });
      tcp(42003, { fin: true, ack: true });
      expect(open(42003)).toBe(a); // a held by TIME_WAIT and b by a live flow: a again, counted again
      expect(count('SY_C_NP_SNAT_TIME_WAIT_REUSED')).toBe(before + 2n);

      // With no TIME_WAIT to wait for, a port closed that way is simply free.
      fromBackend(a, { fin: true, ack: true });
      tcp(42003, { fin: true, ack: true });
      config(0);
      expect(open(42004)).toBe(a);
      expect(count('SY_C_NP_SNAT_TIME_WAIT_REUSED')).toBe(before + 2n);
    } finally {
      dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61000, snatPortMax: 61003 });
    }
  });

  test('a snat entry converted from ABI 5 turns replies back as one the programs wrote', () => {
    const fd = native().mapOpen(path.join(lab.pinRoot, 'sy_np_snat'));
    try {
      const key = Buffer.alloc(24);
      encodeAddr(BACKEND).copy(key, 0);
      key.writeUInt16LE(8080, 16);
      key.writeUInt16LE(61030, 18);
      key.writeUInt8(6, 20);
      const v5 = Buffer.alloc(40);
      encodeAddr(CLIENT).copy(v5, 0);
      encodeAddr(FRONTEND).copy(v5, 16);
      v5.writeUInt16LE(43000, 32);
      v5.writeUInt16LE(30081, 34);
      v5.writeUInt32LE(2, 36);
      const [k, v] = upgradeSnatEntry(key, v5);
      native().mapUpdate(fd, k, v);
      dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61030, snatPortMax: 61030 });
      const back = parse(run('sy_np_ingress', frame({ src: BACKEND, dst: FRONTEND, proto: 'TCP', sport: 8080, dport: 61030, ack: true })).packet);
      expect({ src: back.src, sport: back.sport, dst: back.dst, dport: back.dport, l4: back.l4ChecksumOk }).toEqual({ src: FRONTEND, sport: 30081, dst: CLIENT, dport: 43000, l4: true });
      native().mapDelete(fd, k);
    } finally {
      native().closeFd(fd);
      dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61000, snatPortMax: 61003 });
    }
  });

  test('the monitor reports each decision with the counter it moved: client, frontend asked for, backend', () => {
    dp.setNodeService(4, { ip: FRONTEND, port: 30090, protocol: 'TCP' }, [], { mode: 'snat', local: false, affinityTimeoutSeconds: 0 });
    dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61040, snatPortMax: 61043 }); // ports no earlier test holds
    const ring = dp.openEvents();
    try {
      ring.read();
      const before = dp.counters();
      dp.setMonitor(true);
      run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 44000, dport: 30081, syn: true })); // snat
      run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 44001, dport: 30080, syn: true })); // dsr
      run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 44002, dport: 30090, syn: true })); // no backend
      run('sy_np_ingress', frame({ src: CLIENT, dst: BACKEND, proto: 'TCP', sport: 44003, dport: 8080, syn: true, options: dsrOption(FRONTEND, 30080) }));
      dp.setMonitor(false);
      run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 44004, dport: 30081, syn: true })); // off: counted only
      const after = dp.counters();
      const events = ring.read().map((e) => ({ hook: e.hook, verdict: e.verdict, reason: e.reason, balanced: e.balanced, src: e.src, dst: e.dst, orig: e.orig }));
      const at = (ip: string, port: number) => ({ ip, port });
      expect(events).toEqual([
        { hook: 'tc-node', verdict: 'redirect', reason: 'np_snat', balanced: true, src: at(CLIENT, 44000), dst: at(BACKEND, 8080), orig: at(FRONTEND, 30081) },
        { hook: 'tc-node', verdict: 'redirect', reason: 'np_dsr', balanced: true, src: at(CLIENT, 44001), dst: at(BACKEND, 8080), orig: at(FRONTEND, 30080) },
        { hook: 'tc-node', verdict: 'drop', reason: 'np_no_backend', balanced: false, src: at(CLIENT, 44002), dst: at(FRONTEND, 30090), orig: at(FRONTEND, 30090) },
        { hook: 'tc-node', verdict: 'pass', reason: 'np_dsr_recorded', balanced: false, src: at(CLIENT, 44003), dst: at(BACKEND, 8080), orig: at(FRONTEND, 30080) },
      ]);
      const moved = (c: CounterName) => after[c] - before[c];
      expect([moved('SY_C_NP_SNAT'), moved('SY_C_NP_DSR'), moved('SY_C_NP_NO_BACKEND'), moved('SY_C_NP_DSR_RECORDED')]).toEqual([2n, 1n, 1n, 1n]);
    } finally {
      dp.setMonitor(false);
      ring.close();
      dp.deleteNodeService(4, { ip: FRONTEND, port: 30090, protocol: 'TCP' });
      dp.setNodePortConfig({ snatAddress: FRONTEND, snatPortMin: 61000, snatPortMax: 61003 });
    }
  });

  test('hybrid UDP goes by snat, and a datagram without a checksum keeps none', () => {
    const out = parse(run('sy_np_ingress', frame({ src: CLIENT, dst: FRONTEND, proto: 'UDP', sport: 5000, dport: 30053, noUdpChecksum: true })).packet);
    expect({ src: out.src, dst: out.dst, dport: out.dport, ihl: out.ihl, csum: out.l4Checksum }).toEqual({ src: FRONTEND, dst: BACKEND, dport: 5353, ihl: 20, csum: 0 });
  });

  test('fragments, other protocols and other addresses pass untouched', () => {
    for (const pkt of [
      frame({ src: CLIENT, dst: FRONTEND, proto: 'UDP', sport: 5001, dport: 30053, fragment: true }),
      frame({ src: CLIENT, dst: '192.0.2.99', proto: 'TCP', sport: 40030, dport: 30080, syn: true }),
      frame({ src: CLIENT, dst: FRONTEND, proto: 'TCP', sport: 40031, dport: 22, syn: true }),
    ]) {
      const r = run('sy_np_ingress', pkt);
      expect([r.retval, r.packet.equals(pkt)]).toEqual([TC_ACT_OK, true]);
    }
  });
});
