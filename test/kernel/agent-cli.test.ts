/**
 * The node CLI against a running agent (the agent is a real process on the
 * real kernel, its pods registered through switchyard-cni as a runtime
 * does): explain, held to the kernel on the shared case table; status and
 * metrics; the decision monitor and the node check. test/kernel/agent.test.ts
 * covers the agent and the plugin themselves.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { ANNOTATIONS } from '../../api/contract';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { run as cli } from '../../cli/main';
import { CniRuntime } from '../../lab/src/cni-runtime';
import { AgentNode, TestPod } from '../helpers/agent-node';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, NodeNs } from '../../lab/src/netlab';
import { waitUntil } from '../../lab/src/proc';
import { EXPLAIN_CASES, ExplainWorld } from '../helpers/explain-cases';

const NODE = 'node-cli';

describeKernel('the node CLI against a running agent', () => {
  const h = new AgentNode({ nodeSubnet: '10.72.0', podSubnet: '10.73.0.0/16', nodeName: NODE });
  let lab: NetLab;
  let node: NodeNs;
  let tmp: string;
  let runtime: CniRuntime;
  let socket: string;
  let dp: Dataplane;
  let plainServer: TestPod;
  const sandbox: AgentNode['sandbox'] = (...a) => h.sandbox(...a);
  const add: AgentNode['add'] = (p) => h.add(p);
  const agentGet: AgentNode['agentGet'] = (u) => h.agentGet(u);

  beforeAll(async () => {
    requireKernel();
    await h.start();
    ({ lab, node, tmp, runtime, socket, dp } = h);
    plainServer = sandbox('plain-server', false);
    await add(plainServer);
    await lab.server({ ...plainServer, ip: plainServer.ip!, ip6: '', node, netns: plainServer.netns, cgroup: plainServer.cgroup } as never, [8080]);
  });

  afterAll(async () => {
    await h.stop();
  });

  test('explain agrees with the kernel on every case of the shared table: verdict, and exactly the counters the connect moves', async () => {
    const p = sandbox('mesh-explain', true, { annotations: { [ANNOTATIONS.excludeOutboundPorts]: '7070', [ANNOTATIONS.excludeOutboundCidrs]: '10.71.255.0/24' } });
    const peer = sandbox('mesh-explain-peer', true);
    await add(p);
    await add(peer);
    const w: ExplainWorld = { pod: p.ip!, peer: peer.ip!, plain: plainServer.ip!, excludedCidr: '10.71.255.7', svc: '10.96.200.10', svcToPeer: '10.96.200.11', svcExcluded: '10.96.200.12', svcEmpty: '10.96.200.13' };
    const services: [number, string, number, { ip: string; port: number }[]][] = [
      [9001, w.svc, 80, [{ ip: w.plain, port: 8080 }]],
      [9002, w.svcToPeer, 80, [{ ip: w.peer, port: 8080 }]],
      [9003, w.svcExcluded, 7070, [{ ip: w.plain, port: 8080 }]],
      [9004, w.svcEmpty, 80, []],
    ];
    for (const [id, ip, port, backends] of services) dp.setService(id, { ip, port, protocol: 'TCP' }, backends);
    // A process in the pod's netns but not in its cgroup, as nsenter or a CNI plugin would be.
    const foreign = lab.addCgroupAt('kubepods', 'explain-foreign');
    const uid = { app: 1000, sidecar: 1337, foreign: 1000 };
    const decisions = /^SY_C_(CONNECT|LB)_/;
    try {
      for (const c of EXPLAIN_CASES) {
        const d = c.dst(w);
        const e = await agentGet(`/v1/explain?pod=apps/mesh-explain&dst=${encodeURIComponent(`${d.ip.includes(':') ? `[${d.ip}]` : d.ip}:${d.port}`)}&uid=${uid[c.from]}${c.from === 'foreign' ? '&foreign=true' : ''}`);
        expect({ case: c.name, verdict: e.verdict, counters: e.counters }).toEqual({ case: c.name, verdict: c.verdict, counters: c.counters });
        const before = dp.counters();
        // One connect from that caller; the decision is made in connect4/6, so a refused or unanswered connect counts too.
        const probe = lab.spawn({ netns: p.netns, cgroup: c.from === 'foreign' ? foreign : p.cgroup }, ['timeout', '1', 'bash', '-c', `(exec 3<>/dev/tcp/${d.ip}/${d.port}) 2>/dev/null; echo done`], { uid: uid[c.from] });
        await probe.wait();
        const after = dp.counters();
        const moved = Object.entries(after).filter(([k, v]) => decisions.test(k) && v !== before[k as keyof typeof before]).map(([k, v]) => [k, v - before[k as keyof typeof before]]);
        expect({ case: c.name, moved: Object.fromEntries(moved) }).toEqual({ case: c.name, moved: Object.fromEntries(c.counters.map((k) => [k, 1n])) });
      }
    } finally {
      for (const [id, ip, port] of services) dp.deleteService(id, { ip, port, protocol: 'TCP' });
    }
    const out: string[] = [];
    const code = await cli(['explain', 'apps/mesh-explain', `${plainServer.ip}:7070`, '--uid', '1000', '--socket', socket], (s) => out.push(s), (s) => out.push(s));
    expect(code).toBe(0);
    expect(out.join('')).toContain('NOT redirected');
    expect(out.join('')).toContain('port 7070 is in the pod\'s excluded outbound ports');
  });

  test('status on the CLI and metrics on the port tell an operator what happened', async () => {
    const p = sandbox('mesh-status', true);
    await add(p);
    const probe = lab.spawn({ netns: p.netns, cgroup: p.cgroup }, ['bash', '-c', `(exec 3<>/dev/tcp/${plainServer.ip}/8080) 2>/dev/null; echo done`], { uid: 1000 });
    await probe.wait();
    const out: string[] = [];
    const code = await cli(['status', '--socket', socket], (s) => out.push(s), (s) => out.push(s));
    if (code !== 0) throw new Error(`switchyard status failed: ${out.join('')}\nagent exit ${h.agent.exitCode}: ${h.agent.stderr.slice(-2000)}`);
    expect(out.join('')).toMatch(/NAMESPACE\s+POD\s+IPS\s+NETNS-COOKIE/);
    expect(out.join('')).toMatch(new RegExp(`apps\\s+mesh-status\\s+${p.ip!.replace(/\./g, '\\.')}\\s+\\d+\\s+1\\s`));
    const detail: string[] = [];
    expect(await cli(['status', 'apps/mesh-status', '--socket', socket], (s) => detail.push(s), (s) => detail.push(s))).toBe(0);
    expect(detail.join('')).toContain('Ports:          outbound 15001, inbound 15003, sidecar uid 1337');
    const json: string[] = [];
    await cli(['status', '-o', 'json', '--socket', socket], (s) => json.push(s), () => undefined);
    expect(JSON.parse(json.join('')).pods.length).toBeGreaterThan(0);
    const missing: string[] = [];
    expect(await cli(['status', '--socket', path.join(tmp, 'none.sock')], () => undefined, (s) => missing.push(s))).toBe(1);
    expect(missing.join('')).toContain('the Switchyard interceptor is not running on this node');

    // One failure of our own making, so the failure counter has something to show.
    const unknown = sandbox('mesh-unknown', true, { inApi: false });
    await expect(runtime.add(unknown.inv)).rejects.toMatchObject({ error: { code: 11 } });
    const metrics = await new Promise<string>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: h.metricsPort, path: '/metrics' }, (res) => {
        let d = '';
        res.on('data', (c) => (d += c)).on('end', () => resolve(d));
      }).on('error', reject),
    );
    expect(metrics).toMatch(/switchyard_interceptor_registered_pods \d+/);
    expect(metrics).toContain('switchyard_interceptor_registration_duration_seconds_bucket');
    expect(metrics).toMatch(/switchyard_interceptor_pod_bpf_events\{namespace="apps",pod="mesh-status",counter="redirected_outbound"\} 1/);
    expect(metrics).toMatch(/switchyard_interceptor_map_entries\{map="sy_pods",kind="max"\} 4096/);
    expect(metrics).toMatch(/switchyard_interceptor_registrations_total\{result="failed",reason="pod-unknown"\} 1/);
  });

  test('monitor: reporting is on only while someone watches, each line names the pod, the program and the reason; check: the node, line by line', async () => {
    const p = sandbox('mesh-monitor', true);
    await add(p);
    expect(dp.monitorEnabled()).toBe(false);
    const watch = async (args: string[]) => {
      const out: string[] = [];
      const done = cli(['monitor', ...args, '--socket', socket], (s) => out.push(s), (s) => out.push(s));
      await waitUntil(() => dp.monitorEnabled(), 'the agent turned the monitor on');
      const probe = lab.spawn({ netns: p.netns, cgroup: p.cgroup }, ['bash', '-c', `(exec 3<>/dev/tcp/${plainServer.ip}/8080) 2>/dev/null; echo done`], { uid: 1000 });
      await probe.wait();
      expect(await done).toBe(0);
      // The client is gone: the agent turns reporting off again.
      await waitUntil(() => !dp.monitorEnabled(), 'the agent turned the monitor off');
      return out.join('');
    };
    const json = JSON.parse(await watch(['apps/mesh-monitor', '--type', 'redirect', '--count', '1', '-o', 'json']));
    expect(json).toMatchObject({ node: NODE, pod: 'apps/mesh-monitor', hook: 'connect4', verdict: 'redirect', reason: 'connect_redirected_outbound', orig: { ip: plainServer.ip, port: 8080 }, dst: { ip: '127.0.0.1', port: 15001 }, uid: 1000 });
    const text = await watch(['apps/mesh-monitor', '--count', '1']);
    expect(text).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} apps/mesh-monitor +connect4 +redirect +connect_redirected_outbound +${plainServer.ip!.replace(/\./g, '\\.')}:8080 => 127\\.0\\.0\\.1:15001  pid=\\d+ uid=1000\\n$`));

    const check: string[] = [];
    expect(await cli(['check', '--socket', socket], (s) => check.push(s), (s) => check.push(s))).toBe(0);
    expect(check.join('')).toMatch(/^✓ kernel \S+ \(5\.15 or later\)\n✓ kernel BTF .*\n✓ cgroup v2 at .*\n✓ bpffs at .*\n✓ all 10 BPF hooks and helpers the programs use \(origdst hand-off: task-storage\)\n✓ CNI chain in 10-lab\.conflist: bridge → switchyard-cni\n$/);
    fs.writeFileSync(path.join(tmp, 'net.d', '05-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'bridge' }] }));
    const broken: string[] = [];
    try {
      expect(await cli(['check', '--socket', socket], (s) => broken.push(s), (s) => broken.push(s))).toBe(1);
    } finally {
      fs.rmSync(path.join(tmp, 'net.d', '05-other.conflist'));
    }
    expect(broken.join('')).toContain('✗ CNI chain in 05-other.conflist is bridge: switchyard-cni is missing\n    pods started now are not registered');

    const bad: string[] = [];
    expect(await cli(['monitor', '--type', 'nope', '--socket', socket], () => undefined, (s) => bad.push(s))).toBe(2);
    expect(bad.join('')).toContain('--type nope: use one of redirect, pass, drop');
    expect(dp.monitorEnabled()).toBe(false);
  });
});
