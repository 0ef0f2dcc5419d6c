/**
 * Upgrading the agent across a BPF ABI change with traffic flowing.
 *
 * A node runs the dataplane of ABI version 1 (the objects built from
 * test/fixtures/abi-v1, pinned and registered as that agent did) with two
 * mesh pods: a client whose app keeps long-lived connections busy and opens
 * short ones in a loop, and a server; each pod's sidecar is a relay that
 * asks SO_ORIGINAL_DST again before every chunk it forwards. Then the
 * current agent starts on the same pins and upgrades them in place.
 *
 * Asserted after the upgrade, and again after upgrades during which the
 * agent is SIGKILLed 20 times: half at failpoints picked at random
 * (lib/failpoint.ts), half at random moments:
 *  - 0 RSTs: no reset on the wire in either pod refused or ended a
 *    connection (test/helpers/rst-watch.ts), TCP counted no reset or
 *    abort, and every connection ended with FINs at both sidecars;
 *  - 0 escapes: every connection the app opened was accepted by its own
 *    sidecar, then by the server's sidecar, then by the server;
 *  - every long-lived connection keeps answering SO_ORIGINAL_DST with its
 *    original destination, chunk after chunk;
 *  - no old pins: the pin root holds exactly the current objects' maps,
 *    programs and links, every hook and tc filter runs the current
 *    programs, and the record says the current version with the current build.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readablePath } from '../../lab/src/readable';
import { bpfObjectDir, native, projectRoot } from '../../native';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { AgentNode, TestPod } from '../helpers/agent-node';
import { loadAbi1, registerAbi1 } from '../helpers/abi-v1';
import { Proc } from '../../lab/src/proc';
import { RstWatch, tcpCounters } from '../helpers/rst-watch';
import { RecordStore } from '../../interceptor/src/agent/state';
import { DEFAULT_CONFIG } from '../../webhook/src/config';
import { podSettings } from '../../webhook/src/annotations';
import { OBJECTS, PROGRAMS, TC_HANDLE, TC_PRIORITY, buildId, objectFile } from '../../interceptor/src/dataplane/layout';
import { OrigdstHandoff, ensureBpffs, origdstHandoff } from '../../interceptor/src/dataplane/host';
import { ABI_VERSION, Phase, readAbiRecord } from '../../interceptor/src/dataplane/abi-record';
import { sumPerCpu } from '../../interceptor/src/dataplane/abi';

const PYTHON = '/usr/bin/python3';
const RELAY = readablePath('test/fixtures/origdst-relay.py');
const CLIENT = readablePath('test/fixtures/steady-client.py');
const ALT_OBJECT_DIR = path.join(projectRoot(), 'build', 'bpf-alt');
const SIDECAR_UID = 1337;
const APP_UID = 1000;
const HELD = 4;
const KILLS = 20;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TIMED_KILLS = 10;

/**
 * The failpoints (interceptor/src/dataplane/upgrade.ts) that the next agent can still reach
 * in the 1 -> 2 upgrade, one list per phase (prepare, swap-tc, swap-links, delta, commit),
 * and the index of the first one the journal lets it reach: a run resumes at its phase, or
 * starts over after a rollback. The point that completes the upgrade ('commit:record') is
 * left out, so that every kill interrupts it.
 */
function reachablePoints(pinRoot: string): { first: number; phases: string[][] } {
  const next = path.join(pinRoot, 'upgrade-next');
  const rec = fs.existsSync(next) ? readAbiRecord(path.join(next, 'sy_abi')) : null;
  const phase = rec && rec.phase >= Phase.Prepared ? rec.phase : null;
  const staged = fs.existsSync(next) ? fs.readdirSync(next) : [];
  const committing = phase !== null && phase >= Phase.DeltaCopied;
  const commit = [...(committing ? staged : ['sy_counters', 'sy_origdst_transient', 'sy_pods', 'progs']).filter((f) => f !== 'sy_abi' && f !== 'progs').map((f) => `commit:${f}`), 'recorded:Live'];
  if (!committing || staged.includes('sy_counters')) commit.push('commit:retired:sy_counters');
  if (!committing || staged.includes('progs')) commit.push('commit:retired:progs');
  const phases = [
    ['prepare:shared-pinned', ...OBJECTS.map((o) => `prepare:loaded:${o}`), 'recorded:Prepared'],
    ['swap-tc:1', 'swap-tc:2', 'swap-tc:3', 'swap-tc:4', 'recorded:TcSwapped'],
    [...PROGRAMS.flatMap((p) => ('cgroupHook' in p ? [`swap-links:${p.cgroupHook}`] : [])), 'swap-links:sk_msg', 'recorded:LinksSwapped'],
    ['delta:sy_counters', 'recorded:DeltaCopied'],
    commit,
  ];
  return { first: phase === null ? 0 : Math.min(phase, Phase.DeltaCopied), phases };
}
const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)];

const events = (p: Proc, event: string, port?: number) => p.json().filter((o) => o.event === event && (port === undefined || o.port === port));

/** A node running ABI version 1 with a client and a server pod, their relays, and traffic flowing. */
class V1Node {
  readonly h: AgentNode;
  readonly handoff: OrigdstHandoff = origdstHandoff();
  client!: TestPod;
  server!: TestPod;
  clientRelay!: Proc;
  serverRelay!: Proc;
  echo!: Proc;
  traffic!: Proc;
  resetsBefore: Record<string, Record<string, number>> = {};
  watches: RstWatch[] = [];
  countersBefore: bigint[] = [];

  constructor(subnet: string, podSubnet: string, name: string) {
    this.h = new AgentNode({ nodeSubnet: subnet, podSubnet, nodeName: name });
  }

  async start(): Promise<void> {
    const h = this.h;
    await h.start({ agent: false });
    ensureBpffs(h.lab.pinRoot);
    loadAbi1(h.lab.pinRoot, h.lab.cgroupRoot, this.handoff);
    const store = new RecordStore(path.join(h.tmp, 'state'));
    const interception = podSettings({}, DEFAULT_CONFIG).interception;
    const pods: TestPod[] = [];
    for (const role of ['client', 'server']) {
      const p = h.sandbox(`${h.nodeName}-${role}`, true);
      const runs = await h.plainRuntime.add(p.inv);
      p.result = runs[runs.length - 1].output as TestPod['result'];
      p.ip = p.result!.ips[0].address.split('/')[0];
      const cookie = registerAbi1(h.lab.pinRoot, { netnsPath: p.netnsPath, cgroupPath: p.cgroup, ips: [p.ip], interception, ifname: 'eth0' });
      // What that agent recorded, so that the next one knows the pod's interface.
      store.put({ containerId: p.inv.containerId, namespace: 'apps', name: p.name, uid: p.uid, netnsPath: p.netnsPath, ifname: 'eth0', ips: [p.ip], cgroupPath: p.cgroup, netnsCookie: String(cookie), interception, registeredAt: new Date().toISOString() });
      pods.push(p);
    }
    [this.client, this.server] = pods;
    const relay = (p: TestPod) => h.lab.spawn(p, [PYTHON, RELAY, '--outbound', String(interception.outboundPort), '--inbound', String(interception.inboundPort)], { uid: SIDECAR_UID, label: `relay(${p.name})` });
    this.clientRelay = relay(this.client);
    this.serverRelay = relay(this.server);
    await Promise.all([this.clientRelay, this.serverRelay].map((r) => r.waitForJson((o) => o.event === 'ready')));
    this.echo = await h.lab.server({ ...this.server, ip: this.server.ip!, ip6: '', node: h.node } as never, [8080], 'echo', APP_UID);
    for (const p of pods) {
      this.resetsBefore[p.netns] = tcpCounters(p.netns);
      this.watches.push(await RstWatch.start(h.lab, p.netns));
    }
    this.traffic = h.lab.spawn(this.client, [PYTHON, CLIENT, '--host', this.server.ip!, '--port', '8080', '--held', String(HELD)], { uid: APP_UID, label: 'app' });
    await this.traffic.waitForJson((o) => o.event === 'started');
    await this.moreConnections(20);
    this.countersBefore = this.counters('sy_counters');
  }

  /** Node-wide counters by index, summed over CPUs, from whatever sy_counters is pinned now. */
  counters(map: string): bigint[] {
    const n = native();
    const fd = n.mapOpen(path.join(this.h.lab.pinRoot, map));
    try {
      const out: bigint[] = [];
      for (let i = 0; i < n.mapInfo(fd).maxEntries; i++) {
        const key = Buffer.alloc(4);
        key.writeUInt32LE(i);
        out.push(sumPerCpu(n.mapLookup(fd, key)!));
      }
      return out;
    } finally {
      n.closeFd(fd);
    }
  }

  /** Waits for evidence that n more connections went through the client's sidecar. */
  async moreConnections(n: number): Promise<void> {
    const target = events(this.clientRelay, 'accept').length + n;
    await this.clientRelay.readyWhen(`${n} more connections through the client's sidecar`, () => events(this.clientRelay, 'accept').length >= target, 30_000, 20);
  }

  /** Stops the traffic and checks everything the upgrade must not have disturbed. */
  async finish(build: string): Promise<void> {
    await this.moreConnections(300); // the new programs carry traffic, too
    this.traffic.child.stdin!.write('stop\n');
    await this.traffic.wait();
    const summary = events(this.traffic, 'summary')[0] as Record<string, number> & { errors: string[] };
    expect(summary).toMatchObject({ short_failed: 0, held_failed: 0, errors: [] });
    expect(summary.short_ok).toBeGreaterThan(70);

    // Every connection ended at both sidecars (all FIN, no reset) and reached the server.
    const OUT = 15001;
    const IN = 15003;
    const settled = (r: Proc, port: number) => r.readyWhen('every connection closed', () => events(r, 'closed', port).length === events(r, 'accept', port).length, 15_000, 20);
    await settled(this.clientRelay, OUT);
    await settled(this.serverRelay, IN);
    await this.echo.readyWhen('every connection seen', () => events(this.echo, 'conn').length === events(this.serverRelay, 'accept', IN).length, 15_000, 20);

    // 0 escapes: the app's every connect went app -> its sidecar -> the server's sidecar -> the server.
    expect(events(this.clientRelay, 'accept', OUT)).toHaveLength(summary.connections);
    expect(events(this.serverRelay, 'accept', IN)).toHaveLength(summary.connections);
    expect(events(this.echo, 'conn')).toHaveLength(summary.connections);
    expect(events(this.clientRelay, 'no-origdst')).toEqual([]);
    expect(events(this.serverRelay, 'no-origdst')).toEqual([]);

    // Long-lived connections kept their original destination, asked before every chunk.
    for (const r of [this.clientRelay, this.serverRelay]) {
      expect(events(r, 'origdst-changed')).toEqual([]);
      for (const c of events(r, 'closed')) expect(c.mismatches).toBe(0);
    }
    expect(this.clientRelay.stderr + this.serverRelay.stderr).toBe('');
    const held = events(this.clientRelay, 'closed', OUT).filter((c) => (c.queries as number) > 10);
    expect(held).toHaveLength(HELD);
    for (const c of held) expect(c.origdst).toBe(`${this.server.ip}:8080`);

    // 0 RSTs in either pod: none on the wire that refused or ended a connection, and TCP counted no reset or abort.
    for (const p of [this.client, this.server]) expect([p.name, tcpCounters(p.netns)]).toEqual([p.name, this.resetsBefore[p.netns]]);
    const seen = await Promise.all(this.watches.map((w) => w.stop()));
    expect(seen.flatMap((s) => s.harmful)).toEqual([]);
    const afterEnd = seen.reduce((n, s) => n + s.resets.length, 0);

    // Counters came across: nothing counted before the upgrade is lost.
    const after = this.counters('sy_counters');
    this.countersBefore.forEach((v, i) => expect([i, after[i] >= v]).toEqual([i, true]));

    this.expectCurrentPins(build);
    process.stdout.write(
      `upgrade: ${summary.connections} connections (${HELD} held, ${summary.held_rounds} rounds on each), ${summary.short_ok} short ones; ` +
        `0 resets of a live connection (${afterEnd} answered a segment after both FINs), 0 escapes, ` +
        `${held.map((c) => c.queries).join('/')} SO_ORIGINAL_DST answers on the held ones; ` +
        `${[this.clientRelay, this.serverRelay].flatMap((r) => events(r, 'closed')).reduce((n, c) => n + (c.eagain as number), 0)} EAGAINs from blocking recv() on sockmap sockets\n`,
    );
  }

  /** The pin root holds exactly what the current objects pin, and the kernel runs those programs. */
  expectCurrentPins(build: string): void {
    const root = this.h.lab.pinRoot;
    const n = native();
    const maps = new Set(OBJECTS.flatMap((o) => n.objectMaps(objectFile(bpfObjectDir(), o, this.handoff), {}).filter((m) => m.pinned).map((m) => m.name)));
    expect(fs.readdirSync(root).sort()).toEqual([...maps, 'links', 'progs', 'sy_abi'].sort());
    expect(fs.readdirSync(path.join(root, 'progs')).sort()).toEqual(PROGRAMS.map((p) => p.name).sort());
    expect(readAbiRecord(path.join(root, 'sy_abi'))).toMatchObject({ version: ABI_VERSION, phase: Phase.Live, build });
    const id = (name: string) => n.progInfo(path.join(root, 'progs', name)).id;
    for (const p of PROGRAMS) {
      if ('cgroupHook' in p) expect([p.cgroupHook, n.cgroupPrograms(this.h.lab.cgroupRoot, p.cgroupHook)]).toEqual([p.cgroupHook, [id(p.name)]]);
    }
    for (const pod of [this.client, this.server]) {
      for (const dir of ['ingress', 'egress'] as const) {
        expect([pod.name, dir, n.tcQuery(pod.netnsPath, 'eth0', dir, TC_PRIORITY, TC_HANDLE)]).toEqual([pod.name, dir, id(`sy_tc_${dir}`)]);
      }
    }
  }
}

describeKernel('upgrading the agent across a BPF ABI change, with traffic flowing', () => {
  beforeAll(() => requireKernel());

  test('version 1 pins are upgraded in place: 0 resets, 0 escapes, SO_ORIGINAL_DST intact, no old pins', async () => {
    const node = new V1Node('10.91.0', '10.92.0.0/16', 'node-upgrade');
    try {
      await node.start();
      await node.h.startAgent();
      const upgraded = await node.h.agent.waitForLine((l) => l.includes('upgraded the pinned dataplane in place'));
      expect(upgraded).toContain(`abi_from=1 abi_to=${ABI_VERSION}`);
      expect(upgraded).toContain('sy_counters:add');
      expect(upgraded).toMatch(/tc_filters_swapped=4/);
      await node.finish(buildId(bpfObjectDir(), node.handoff));
      expect(readAbiRecord(path.join(node.h.lab.pinRoot, 'sy_abi'))?.from).toBe(1);
    } finally {
      await node.h.stop();
    }
  }, 120_000);

  test(`the agent SIGKILLed at ${KILLS} random failpoints of one upgrade and ${TIMED_KILLS} random moments of others: each restart resumes or rolls back, with the same guarantees`, async () => {
    const node = new V1Node('10.93.0', '10.94.0.0/16', 'node-upgrade-kill');
    const dirs = [bpfObjectDir(), ALT_OBJECT_DIR];
    const builds = dirs.map((d) => buildId(d, node.handoff));
    expect(builds[0]).not.toBe(builds[1]);
    const stats = { failpointKills: 0, timedKills: 0, resumed: 0, rolledBack: 0, killedAt: {} as Record<string, number> };
    const step = (l: string) => l.includes('dataplane upgrade step');
    const ready = (l: string) => l.includes('"event":"ready"');
    const tally = (agent: Proc, at: string) => {
      stats.killedAt[at] = (stats.killedAt[at] ?? 0) + 1;
      if (agent.lines.some((l) => l.includes('step=resume'))) stats.resumed++;
      if (agent.lines.some((l) => l.includes('step=rollback'))) stats.rolledBack++;
    };
    try {
      await node.start();
      // The 1 -> 2 upgrade, crashed 20 times over at random points, four in each phase as far as
      // the journal allows (a crash in prepare rolls back; later ones resume where the journal
      // says): every restart must first resume or roll back what it finds.
      while (stats.failpointKills < KILLS) {
        const { first, phases } = reachablePoints(node.h.lab.pinRoot);
        const candidates = phases[Math.max(first, Math.floor((stats.failpointKills * phases.length) / KILLS))];
        // The first kill lands inside prepare, before its record: the next start must roll it back. (Drawn
        // at 'recorded:Prepared', every later start would resume instead and no rollback would be seen.)
        const point = pick(stats.failpointKills === 0 ? candidates.filter((c) => c !== 'recorded:Prepared') : candidates);
        const agent = node.h.spawnAgent({ SWITCHYARD_FAILPOINT: point });
        const outcome = await agent.waitForLine(ready, 30000).then(
          () => 'ready',
          () => `exited ${agent.exitCode}`,
        );
        if (outcome === 'ready') await agent.stop('SIGTERM');
        expect([point, outcome]).toEqual([point, `exited ${128 + 9}`]); // died by its own SIGKILL there, never ready
        stats.failpointKills++;
        tally(agent, point);
      }
      expect(readAbiRecord(path.join(node.h.lab.pinRoot, 'sy_abi'))?.version ?? 1).toBe(1); // still not done
      // Then upgrades between two builds of the current version, each killed at a random moment after a
      // random step line (wherever the agent has got to by then).
      let target = 0;
      while (stats.timedKills < TIMED_KILLS) {
        const rec = readAbiRecord(path.join(node.h.lab.pinRoot, 'sy_abi'));
        if (rec?.build === builds[target] && !fs.existsSync(path.join(node.h.lab.pinRoot, 'upgrade-next'))) target ^= 1;
        const agent = node.h.spawnAgent({ SWITCHYARD_BPF_DIR: dirs[target] });
        const k = 1 + Math.floor(Math.random() * 3);
        const line = await agent.waitForLine((l) => ready(l) || agent.lines.filter(step).length >= k, 30000);
        if (ready(line)) {
          await agent.stop('SIGTERM'); // done before the k-th step: nothing left to interrupt
          continue;
        }
        await pause(Math.random() * 20); // the chaos itself: somewhere after that step began
        await agent.stop('SIGKILL');
        stats.timedKills++;
        tally(agent, `after ${/step=(\S+)/.exec(agent.lines.filter(step).pop()!)![1]}`);
      }
      await node.h.startAgent({ SWITCHYARD_BPF_DIR: dirs[target] });
      process.stdout.write(`upgrade kills: ${JSON.stringify(stats)}\n`);
      expect(stats.resumed).toBeGreaterThan(0);
      expect(stats.rolledBack).toBeGreaterThan(0);
      await node.finish(builds[target]);
    } finally {
      await node.h.stop();
    }
  }, 300_000);
});

describeKernel('refusing what an upgrade cannot do', () => {
  beforeAll(() => requireKernel());

  test('pins of a newer ABI version are refused with what to do, and left as they are', async () => {
    const { NetLab } = await import('../../lab/src/netlab');
    const { Dataplane } = await import('../../interceptor/src/dataplane/dataplane');
    const { writeAbiRecord } = await import('../../interceptor/src/dataplane/abi-record');
    const lab = new NetLab();
    try {
      Dataplane.load({ pinRoot: lab.pinRoot, cgroupPath: lab.cgroupRoot }).close();
      const rec = readAbiRecord(path.join(lab.pinRoot, 'sy_abi'))!;
      writeAbiRecord(path.join(lab.pinRoot, 'sy_abi'), { ...rec, version: ABI_VERSION + 1 });
      const before = fs.readdirSync(lab.pinRoot).sort();
      const links = PROGRAMS.flatMap((p) => ('cgroupHook' in p ? [native().linkProgId(path.join(lab.pinRoot, 'links', p.cgroupHook))] : []));
      expect(() => Dataplane.open({ pinRoot: lab.pinRoot, cgroupPath: lab.cgroupRoot, tcTargets: [] })).toThrow(
        new RegExp(`follows BPF ABI version ${ABI_VERSION + 1}, newer than this agent's ${ABI_VERSION}: .*Run an agent of version ${ABI_VERSION + 1} or later`),
      );
      expect(() => Dataplane.adopt({ pinRoot: lab.pinRoot, cgroupPath: lab.cgroupRoot })).toThrow(/run an agent of that version or later/);
      expect(fs.readdirSync(lab.pinRoot).sort()).toEqual(before);
      expect(PROGRAMS.flatMap((p) => ('cgroupHook' in p ? [native().linkProgId(path.join(lab.pinRoot, 'links', p.cgroupHook))] : []))).toEqual(links);
    } finally {
      await lab.cleanup();
    }
  });
});
