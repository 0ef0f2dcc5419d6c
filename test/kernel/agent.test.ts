/**
 * The node agent and switchyard-cni on the real kernel, driven the way a
 * container runtime drives them: Debian's bridge + host-local plugins, then
 * switchyard-cni, with the CNI environment, config on stdin and prevResult
 * chaining. The agent is a real process; the API server is an in-process
 * list/watch server (test/e2e/ runs it on a real kube-apiserver). The node
 * CLI's answers (explain, status, monitor, check) are agent-cli.test.ts's.
 */
import fc from 'fast-check';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { native } from '../../native';
import { ANNOTATIONS } from '../../api/contract';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { encodeAddr } from '../../api/addr';
import { CniPluginError, CniRuntime, execPlugin, Invocation } from '../../lab/src/cni-runtime';
import { FakeApiServer } from '../../lab/src/fake-apiserver';
import { AgentNode, CNI_BIN, TestPod } from '../helpers/agent-node';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, NodeNs, sh } from '../../lab/src/netlab';
import { Proc, waitUntil } from '../../lab/src/proc';
import { accessMatching } from '../helpers/access-log';

const NODE = 'node-a';

describeKernel('interceptor agent and switchyard-cni', () => {
  const h = new AgentNode({ nodeSubnet: '10.70.0', podSubnet: '10.71.0.0/16', nodeName: NODE });
  let lab: NetLab;
  let node: NodeNs;
  let api: FakeApiServer;
  let tmp: string;
  let runtime: CniRuntime;
  let socket: string;
  let dp: Dataplane;
  const sandbox: AgentNode['sandbox'] = (...a) => h.sandbox(...a);
  const add: AgentNode['add'] = (p) => h.add(p);
  const agentGet: AgentNode['agentGet'] = (u) => h.agentGet(u);
  const agentPost: AgentNode['agentPost'] = (u, b) => h.agentPost(u, b);
  const addBody: AgentNode['addBody'] = (...a) => h.addBody(...a);
  const startAgent = () => h.startAgent();

  beforeAll(async () => {
    requireKernel();
    await h.start();
    ({ lab, node, api, tmp, runtime, socket, dp } = h);
  });

  afterAll(async () => {
    await h.stop();
  });

  let plainServer: TestPod;
  let serverProc: Proc;

  test('ADD registers a mesh pod before it returns, passes prevResult through unchanged, and attaches tc', async () => {
    plainServer = sandbox('plain-server', false);
    await add(plainServer);
    serverProc = await lab.server({ ...plainServer, ip: plainServer.ip!, ip6: '', node, netns: plainServer.netns, cgroup: plainServer.cgroup } as never, [8080]);

    const p = sandbox('mesh-1', true);
    const runs = await add(p);
    expect(runs.map((r) => r.plugin)).toEqual(['bridge', 'switchyard-cni']);
    expect(runs[1].output).toEqual(runs[0].output);

    const status = await agentGet('/v1/status/apps/mesh-1');
    expect(status).toMatchObject({ namespace: 'apps', name: 'mesh-1', uid: p.uid, ips: [p.ip], cgroup: p.cgroup, ifname: 'eth0' });
    expect(BigInt(status.netnsCookie)).toBe(native().netnsCookie(p.netnsPath));
    expect(native().tcQuery(p.netnsPath, 'eth0', 'ingress', 1, 0x5359)).not.toBeNull();
    expect(h.agent.lines.some((l) => l.includes('msg="pod registered"') && l.includes('pod=apps/mesh-1') && l.includes(`netns_cookie=${status.netnsCookie}`))).toBe(true);

    // The very first connection from the pod goes to the (absent) sidecar: refused, never to the server.
    const probe = lab.spawn({ netns: p.netns, cgroup: p.cgroup }, ['bash', '-c', `exec 3<>/dev/tcp/${plainServer.ip}/8080 && echo ESCAPED || echo refused`], { uid: 1000 });
    await probe.wait();
    expect(probe.lines).toEqual(['refused']);
    expect(serverProc.json().filter((o) => o.event === 'conn')).toHaveLength(0);
  });

  test('a pod without the managed label returns at once and is not registered', async () => {
    const p = sandbox('plain-1', false);
    const runs = await add(p);
    expect(runs[1].output).toEqual(runs[0].output);
    expect((await agentGet('/v1/status')).pods.map((x: { name: string }) => x.name)).not.toContain('plain-1');
    await h.agent.waitForLine((l) => l.includes('pod=apps/plain-1') && l.includes('reason=not-managed'));
  });

  test('CHECK passes for a registered pod and fails, with a CNI error, when its entry is gone', async () => {
    const p = sandbox('mesh-check', true);
    await add(p);
    await runtime.check(p.inv, p.result);
    dp.unregisterPod(native().netnsCookie(p.netnsPath));
    await expect(runtime.check(p.inv, p.result)).rejects.toMatchObject({ plugin: 'switchyard-cni', error: { code: 104, msg: expect.stringContaining('its sy_pods entry is missing') } });
  });

  test('a repeat ADD that fails leaves the registration as it was; one that succeeds leaves exactly its IPs; CHECK verifies sy_pod_by_ip', async () => {
    const p = sandbox('mesh-readd', true);
    await add(p);
    const cookie = native().netnsCookie(p.netnsPath);
    const registered = dp.pod(cookie);
    expect(dp.ipOwner(p.ip!)).toBe(cookie);

    // The runtime retries ADD for the sandbox; this attempt fails after its map writes (no such interface for tc).
    const failed = await agentPost('/v1/cni/add', addBody(p, [p.ip!, '10.71.250.1'], 'nope0'));
    expect(failed).toMatchObject({ status: 422, body: { code: 102, message: expect.stringContaining('rolled back') } });
    expect(dp.pod(cookie)).toEqual(registered);
    expect(dp.ipOwner(p.ip!)).toBe(cookie);
    expect(dp.ipOwner('10.71.250.1')).toBeNull();
    await runtime.check(p.inv, p.result);

    // Accepted re-ADDs with other IP lists: the pod owns its new set and nothing of the old one.
    expect((await agentPost('/v1/cni/add', addBody(p, [p.ip!, '10.71.250.1']))).body).toMatchObject({ registered: true });
    expect((await agentPost('/v1/cni/add', addBody(p, ['10.71.250.2']))).body).toMatchObject({ registered: true });
    expect([p.ip!, '10.71.250.1', '10.71.250.2'].map((ip) => dp.ipOwner(ip))).toEqual([null, null, cookie]);
    expect(dp.pod(cookie)!.ips).toEqual(['10.71.250.2']);
    expect((await agentPost('/v1/cni/add', addBody(p, [p.ip!]))).body).toMatchObject({ registered: true });
    expect(dp.ipOwner('10.71.250.2')).toBeNull();
    await runtime.check(p.inv, p.result);

    // CHECK looks at every entry it vouches for.
    const byIp = native().mapOpen(path.join(lab.pinRoot, 'sy_pod_by_ip'));
    try {
      native().mapDelete(byIp, encodeAddr(p.ip!));
    } finally {
      native().closeFd(byIp);
    }
    await expect(runtime.check(p.inv, p.result)).rejects.toMatchObject({ plugin: 'switchyard-cni', error: { code: 104, msg: expect.stringContaining(`its sy_pod_by_ip entry for ${p.ip} is missing`) } });
    await runtime.del(p.inv, p.result);
  });

  test('generated requests on the agent API: a clear error, or a whole registration, never half of one', async () => {
    const p = sandbox('mesh-fuzz', true);
    await add(p);
    const cookie = native().netnsCookie(p.netnsPath);
    const pool = [p.ip!, '10.71.250.7', '10.71.250.8', 'fd00::7', '::ffff:10.71.250.9'];
    const othersBefore = [...dp.pods().keys()].filter((c) => c !== cookie);
    const field = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
    const request = fc.record(
      {
        containerId: field(fc.oneof(fc.constant(p.inv.containerId), fc.string({ maxLength: 12 }))),
        netns: field(fc.constantFrom(p.netnsPath, '/proc/self/ns/net', '/var/run/netns/none', '/dev/null', '')),
        ifname: field(fc.constantFrom('eth0', 'nope0', 'lo', '')),
        podNamespace: field(fc.constant('apps')),
        podName: field(fc.constantFrom('mesh-fuzz', 'plain-1')),
        podUid: field(fc.constant(p.uid)),
        ips: field(fc.array(fc.oneof(fc.constantFrom(...pool), fc.string({ maxLength: 8 })), { maxLength: 3 })),
      },
      { requiredKeys: [] },
    );
    // Requests the runtime could really send for this pod, with other IPs and interfaces.
    const plausible = fc.record({
      containerId: fc.constant(p.inv.containerId),
      netns: fc.constant(p.netnsPath),
      ifname: fc.constantFrom('eth0', 'nope0', 'lo'),
      podNamespace: fc.constant('apps'),
      podName: fc.constant('mesh-fuzz'),
      podUid: fc.constant(p.uid),
      ips: fc.array(fc.constantFrom(...pool), { minLength: 1, maxLength: 3 }),
    });
    const payload = fc.oneof(
      { weight: 4, arbitrary: plausible },
      { weight: 5, arbitrary: request },
      { weight: 1, arbitrary: fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))) },
    );
    const owners = () => pool.map((ip) => dp.ipOwner(ip));
    const counts = { registered: 0, otherOk: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('add', 'del', 'check'), payload, async (verb, body) => {
        const before = { pod: dp.pod(cookie), owners: owners() };
        const r = await agentPost(`/v1/cni/${verb}`, body);
        if (r.status !== 200) {
          expect([400, 422, 503]).toContain(r.status);
          expect(typeof r.body.code).toBe('number');
          expect(r.body.message.length).toBeGreaterThan(0);
          // Nothing half-done: a refused request leaves the pod's entries as they were.
          expect({ pod: dp.pod(cookie), owners: owners() }).toEqual(before);
          counts.refused++;
        } else if (verb === 'add' && r.body.registered) {
          const ips = (body as { ips: string[] }).ips;
          // Compared as addresses: a v4-mapped IPv6 address is stored as the IPv4 one.
          expect(dp.pod(cookie)!.ips.map((ip) => encodeAddr(ip).toString('hex'))).toEqual(ips.map((ip) => encodeAddr(ip).toString('hex')));
          for (const ip of pool) expect(dp.ipOwner(ip)).toBe(ips.some((x) => encodeAddr(x).equals(encodeAddr(ip))) ? cookie : null);
          counts.registered++;
        } else counts.otherOk++;
      }),
      { numRuns: 1000, endOnFailure: true },
    );
    process.stdout.write(`agent API fuzz: 1000 requests: ${counts.registered} registered, ${counts.otherOk} other answers, ${counts.refused} refused\n`);
    expect(counts.registered).toBeGreaterThan(0);
    expect(counts.refused).toBeGreaterThan(0);
    expect(h.agent.exitCode).toBeNull();
    expect([...dp.pods().keys()].filter((c) => c !== cookie)).toEqual(othersBefore);
    await runtime.del(p.inv, p.result);
  });

  test('DEL removes every entry; DEL again, and DEL after the netns is gone, succeed', async () => {
    const p = sandbox('mesh-del', true);
    await add(p);
    const cookie = native().netnsCookie(p.netnsPath);
    expect(dp.pod(cookie)).not.toBeNull();
    await runtime.del(p.inv, p.result);
    expect(dp.pod(cookie)).toBeNull();
    expect(dp.podCounters(cookie)).toBeNull();
    expect(dp.pods().has(cookie)).toBe(false);
    await runtime.del(p.inv, p.result);
    lab.removeNetns(p.netns);
    await runtime.del(p.inv, p.result);
    expect((await agentGet('/v1/status')).pods.map((x: { name: string }) => x.name)).not.toContain('mesh-del');
  });

  describe('bad CNI input: a spec-conformant error and nothing half-registered', () => {
    const plugin = (command: string, inv: Invocation, conf: Record<string, unknown> | string) =>
      execPlugin(node.netns, CNI_BIN, 'switchyard-cni', command, inv, typeof conf === 'string' ? conf : JSON.stringify(conf));
    const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.71.9.9/16', interface: 0 }] };
    const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'lab-net', type: 'switchyard-cni', agentSocket: socket, prevResult, ...extra });
    let before: number;
    beforeEach(() => (before = dp.pods().size));
    afterEach(() => expect(dp.pods().size).toBe(before));

    test('garbage on stdin', async () => {
      const p = sandbox('bad-garbage', true);
      const r = await plugin('ADD', p.inv, '{"cniVersion": "1.0.0", garbage');
      expect(r.code).toBe(1);
      // The CNI library rejects it before our code runs, with the spec's decoding-failure code.
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 6, msg: expect.stringContaining('unmarshal') });
    });

    test('a missing netns', async () => {
      const p = sandbox('bad-netns', true);
      const r = await plugin('ADD', { ...p.inv, netnsPath: '/var/run/netns/does-not-exist' }, conf());
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 3, msg: expect.stringContaining("network namespace '/var/run/netns/does-not-exist' of apps/bad-netns does not exist") });
    });

    test('an unknown pod', async () => {
      const p = sandbox('bad-unknown', true, { inApi: false });
      const r = await plugin('ADD', p.inv, conf());
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 11, msg: expect.stringContaining("apps/bad-unknown") });
    });

    test('no prevResult (not chained)', async () => {
      const p = sandbox('bad-chain', true);
      const r = await plugin('ADD', p.inv, { cniVersion: '1.0.0', name: 'lab-net', type: 'switchyard-cni', agentSocket: socket });
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('must be chained after a plugin that assigns IPs') });
    });

    test('the agent unreachable: fail-closed by default, fail-open passes prevResult through', async () => {
      const p = sandbox('bad-agent', true);
      const closed = await plugin('ADD', p.inv, conf({ agentSocket: path.join(tmp, 'nobody.sock') }));
      expect(JSON.parse(closed.stdout)).toMatchObject({ code: 100, msg: expect.stringContaining('the Switchyard interceptor is not reachable') });
      const open = await plugin('ADD', p.inv, conf({ agentSocket: path.join(tmp, 'nobody.sock'), failOpen: true, logFile: path.join(tmp, 'cni.log') }));
      expect(open.code).toBe(0);
      expect(JSON.parse(open.stdout)).toEqual(prevResult);
      expect(fs.readFileSync(path.join(tmp, 'cni.log'), 'utf8')).toContain('apps/bad-agent: FAIL-OPEN');
      // DEL never fails on an unreachable agent: reconcile cleans up.
      expect((await plugin('DEL', p.inv, conf({ agentSocket: path.join(tmp, 'nobody.sock') }))).code).toBe(0);
    });

    test('invalid interception annotations on a mesh pod fail ADD', async () => {
      const p = sandbox('bad-annotations', true, { annotations: { [ANNOTATIONS.excludeOutboundCidrs]: 'not-a-cidr' } });
      const r = await plugin('ADD', p.inv, conf());
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 103, msg: expect.stringContaining("'not-a-cidr' is not a CIDR") });
    });

    test('VERSION', async () => {
      const r = await plugin('VERSION', sandbox('bad-version', false).inv, { cniVersion: '1.0.0' });
      expect(JSON.parse(r.stdout).supportedVersions).toEqual(['0.4.0', '1.0.0']);
    });
  });

  test('200 pods: a tight connect loop started as soon as ADD returns never escapes the sidecar', async () => {
    const pods: TestPod[] = [];
    const loops: Proc[] = [];
    const addMs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const p = sandbox(`burst-${i}`, true);
      const t0 = process.hrtime.bigint();
      await add(p);
      addMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      // Started the moment ADD returned, as the runtime would start the first container.
      loops.push(lab.spawn({ netns: p.netns, cgroup: p.cgroup }, ['bash', '-c', `for i in 1 2 3 4 5; do (exec 3<>/dev/tcp/${plainServer.ip}/8080) 2>/dev/null && echo ESCAPED; done; echo done`], { uid: 1000 }));
      pods.push(p);
    }
    await Promise.all(loops.map((l) => l.wait()));
    const escaped = loops.filter((l) => l.lines.includes('ESCAPED')).length;
    expect(loops.every((l) => l.lines.includes('done'))).toBe(true);
    expect(escaped).toBe(0);
    expect(serverProc.json().filter((o) => o.event === 'conn')).toHaveLength(0);
    for (const p of pods) expect(dp.podCounters(native().netnsCookie(p.netnsPath))!.redirected_outbound).toBe(5n);
    process.stdout.write(`chain ADD (bridge + switchyard-cni) for 200 pods: p50 ${addMs.sort((a, b) => a - b)[100].toFixed(1)} ms, p99 ${addMs[198].toFixed(1)} ms\n`);
    for (const p of pods) await runtime.del(p.inv, p.result);
  });

  test('restart: traffic keeps flowing and stays intercepted while the agent is down; the new agent adopts and reconciles', async () => {
    const p = sandbox('mesh-restart', true);
    await add(p);
    const pod = { name: p.name, netns: p.netns, netnsPath: p.netnsPath, cgroup: p.cgroup, ip: p.ip!, ip6: '', node };
    const sidecar = await lab.sidecar(pod);
    const held = lab.node(pod, 'test/fixtures/client.js', ['--host', plainServer.ip!, '--port', '8080', '--bytes', '65536', '--hold'], { uid: 1000 });
    await held.waitForJson((o) => o.event === 'held');

    const gone = sandbox('mesh-gone', true);
    await add(gone);
    const goneCookie = native().netnsCookie(gone.netnsPath);

    await h.agent.stop('SIGKILL');
    // Agent down: new connections are still redirected (pinned programs and maps).
    const during = await lab.run(pod, 'test/fixtures/client.js', ['--host', plainServer.ip!, '--port', '8080', '--bytes', '100000'], { uid: 1000 });
    expect(during).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });
    // And a pod is deleted while nobody watches.
    api.remove('mesh-gone');

    await startAgent();
    await h.agent.waitForLine((l) => l.includes('msg="interceptor ready"'));
    expect(h.agent.lines.some((l) => l.includes('adopted the pinned dataplane'))).toBe(true);
    expect(dp.pod(goneCookie)).toBeNull();
    expect((await agentGet('/v1/status')).pods.map((x: { name: string }) => x.name)).toContain('mesh-restart');

    held.child.stdin!.end();
    await held.wait();
    expect(held.json().pop()).toMatchObject({ intact: true, sent: 65536, received: 65536 });
    await sidecar.waitForLine(accessMatching((a) => a.sent === 65536 && a.received === 65536));
    await sidecar.stop();
  });

  test('annotation changes update the map entry; deleting the pod unregisters it', async () => {
    const p = sandbox('mesh-update', true);
    await add(p);
    const cookie = native().netnsCookie(p.netnsPath);
    const obj = api.get('mesh-update')!;
    api.upsert({ ...obj, metadata: { ...obj.metadata, annotations: { ...(obj.metadata.annotations as object), [ANNOTATIONS.excludeOutboundPorts]: '5432,6379' } } } as never);
    await waitUntil(() => dp.pod(cookie)?.excludeOutboundPorts.join(',') === '5432,6379', 'settings pushed to sy_pods');
    await h.agent.waitForLine((l) => l.includes('msg="pod settings updated"') && l.includes('pod=apps/mesh-update'));
    api.remove('mesh-update');
    await waitUntil(() => dp.pod(cookie) === null, 'pod unregistered on delete');
  });

  test('a mesh pod that runs but is missing from the maps is re-registered through /proc', async () => {
    const p = sandbox('mesh-missed', true);
    await add(p);
    const cookie = native().netnsCookie(p.netnsPath);
    // A process in the pod, and the API's view of its IP, as after a real start.
    const sleeper = lab.spawn({ netns: p.netns, cgroup: p.cgroup }, ['sleep', '600']);
    await waitUntil(() => fs.readFileSync(path.join(p.cgroup, 'cgroup.procs'), 'utf8').trim() !== '', 'pod process started');
    const obj = api.get('mesh-missed')!;
    api.upsert({ ...obj, status: { podIP: p.ip, podIPs: [{ ip: p.ip }] } } as never);
    await h.agent.stop('SIGKILL');
    dp.unregisterPod(cookie); // lost while the agent was down
    fs.rmSync(path.join(tmp, 'state', `${p.inv.containerId}.json`));
    await startAgent();
    await waitUntil(() => dp.pod(cookie) !== null, 're-registered by reconcile');
    expect(h.agent.lines.some((l) => l.includes('pod=apps/mesh-missed') && l.includes('reason=reconcile-missing'))).toBe(true);
    await sleeper.stop();
  });

  test('1000 pods registered at once', async () => {
    const pods: TestPod[] = [];
    for (let i = 0; i < 1000; i++) {
      const p = sandbox(`scale-${i}`, true);
      sh('ip', ['-n', p.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
      pods.push(p);
    }
    const post = (p: TestPod, i: number) =>
      new Promise<any>((resolve, reject) => {
        const req = http.request({ socketPath: socket, path: '/v1/cni/add', method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
          let d = '';
          res.on('data', (c) => (d += c)).on('end', () => resolve(JSON.parse(d)));
        });
        req.on('error', (e) => reject(new Error(`ADD ${p.name}: ${e.message}; agent exit ${h.agent.exitCode} ${h.agent.stderr.slice(-1500)} ${h.agent.lines.slice(-5).join('\n')}`)));
        req.end(JSON.stringify({ containerId: p.inv.containerId, netns: p.netnsPath, ifname: 'eth0', podNamespace: 'apps', podName: p.name, podUid: p.uid, ips: [`10.72.${i >> 8}.${i & 255}`] }));
      });
    // ADDs arrive at bounded concurrency (the kubelet's sandbox workers), here 16 in flight.
    const replies: any[] = [];
    for (let i = 0; i < pods.length; i += 16) replies.push(...(await Promise.all(pods.slice(i, i + 16).map((p, j) => post(p, i + j)))));
    expect(replies.filter((r) => r.registered)).toHaveLength(1000);
    expect((await agentGet('/v1/status')).pods.filter((x: { name: string }) => x.name.startsWith('scale-'))).toHaveLength(1000);
    expect(dp.mapFill().sy_pods.entries).toBeGreaterThanOrEqual(1000);
    const rss = Number(fs.readFileSync(`/proc/${h.agent.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;
    process.stdout.write(`agent RSS with ${dp.mapFill().sy_pods.entries} pods registered: ${rss.toFixed(0)} MiB\n`);
    for (const p of pods) await new Promise((r) => http.request({ socketPath: socket, path: '/v1/cni/del', method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => res.resume().on('end', r)).end(JSON.stringify({ containerId: p.inv.containerId, netns: p.netnsPath, ifname: 'eth0', podNamespace: 'apps', podName: p.name })));
    expect(dp.pods().size).toBeLessThan(50);
  });

  test('CniPluginError is what a failing plugin produces', () => {
    expect(new CniPluginError('x', 1, { code: 7, msg: 'm' }, '').message).toContain('code 7: m');
  });
});
