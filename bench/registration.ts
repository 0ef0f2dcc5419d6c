/**
 * Registration benchmark: CNI ADD start → maps and tc ready (ADD returned) →
 * first redirected connection from inside the pod, with 0, 100 and 1000
 * pods already registered, and with 10 ADDs at once. Counts escapes, and
 * reports agent RSS and BPF map memory at 1000 pods. Prints JSON.
 *
 * The pod's first container is played by test/fixtures/first-connect, started
 * paused in the sandbox before ADD (so process start-up is not timed) and
 * released when ADD returns, as a runtime starts containers after the
 * sandbox's network is set up. Every timestamp is CLOCK_MONOTONIC.
 *
 *   node dist/bench/registration.js [--samples 40] [--concurrent-rounds 4]
 */
import { randomUUID } from 'crypto';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { projectRoot } from '../native';
import { AGENT_NODE_FLAGS } from '../interceptor/src/agent/config';
import { interceptionAnnotations } from '../api/annotations';
import { podSettings } from '../webhook/src/annotations';
import { DEFAULT_CONFIG } from '../webhook/src/config';
import { MANAGED_LABEL } from '../api/contract';
import { CniRuntime, Invocation } from '../lab/src/cni-runtime';
import { FakeApiServer } from '../lab/src/fake-apiserver';
import { NetLab, sh } from '../lab/src/netlab';
import { Proc } from '../lab/src/proc';
import { percentile } from './stats';

const NODE = 'bench-node';
const CNI_BIN = ['/usr/lib/cni', '/opt/cni/bin', path.join(projectRoot(), 'build', 'cni')];
const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const summary = (xs: number[]) => ({ n: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), max: Math.max(...xs) });
const now = () => process.hrtime.bigint();
const msSince = (t0: bigint, t1 = now()) => Number(t1 - t0) / 1e6;

interface Sample {
  addMs: number; // ADD start → chain returned (maps and tc ready)
  switchyardCniMs: number; // switchyard-cni's own exec: process start, agent round trip, exit
  bridgeMs: number; // the bridge plugin's exec (host-local included: bridge runs it)
  chainMs: number; // the plugins' own exec times summed: the chain as a Go runtime sees it
  agentMs: number; // inside the agent: request received → maps and tc ready
  agentLookupMs: number; // of which: API cache and cgroup lookup
  agentKernelMs: number; // of which: map writes and tc attach
  firstConnMs: number; // ADD start → first redirected connection accepted
  attempts: number;
  escaped: boolean;
}

export async function benchRegistration(samples: number, concurrentRounds: number) {
  const lab = new NetLab();
  NetLab.cleanupOnSignals();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sybench-reg-'));
  const api = new FakeApiServer('/api/v1/pods', 'PodList');
  const procs: Proc[] = [];
  try {
    const node = lab.addNode('node', '10.80.0');
    const kubepods = lab.addCgroupAt('kubepods');
    const url = await api.start();
    const defaults = interceptionAnnotations(podSettings({}, DEFAULT_CONFIG).interception);
    fs.writeFileSync(
      path.join(tmp, 'kubeconfig'),
      `apiVersion: v1\nkind: Config\nclusters: [{name: b, cluster: {server: "${url}"}}]\nusers: [{name: a, user: {}}]\ncontexts: [{name: b, context: {cluster: b, user: a}}]\ncurrent-context: b\n`,
    );
    const socket = path.join(tmp, 'agent.sock');
    fs.writeFileSync(
      path.join(tmp, 'agent.json'),
      JSON.stringify({ nodeName: NODE, cgroupPath: lab.cgroupRoot, podCgroupRoot: kubepods, pinRoot: lab.pinRoot, socketPath: socket, metricsPort: 0, metricsHost: '127.0.0.1', stateDir: path.join(tmp, 'state'), kubeconfig: path.join(tmp, 'kubeconfig'), podWaitMs: 2000, serviceLoadBalancing: false }),
    );
    const agent = lab.spawn({ netns: null, cgroup: null }, [process.execPath, ...AGENT_NODE_FLAGS, path.join(projectRoot(), 'dist/interceptor/src/agent/main.js'), 'run', '--config', path.join(tmp, 'agent.json')], { label: 'agent' });
    procs.push(agent);
    await agent.waitForJson((o) => o.event === 'ready', 30_000);
    // Plugin times from cni-exec (make bench-tools) when built: without it they include nsenter and Node's fork.
    const timer = [path.join(projectRoot(), 'build', 'bench', 'cni-exec')].find((p) => fs.existsSync(p));
    const runtime = new CniRuntime(node.netns, CNI_BIN, {
      cniVersion: '1.0.0',
      name: 'bench-net',
      plugins: [
        { type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', subnet: '10.81.0.0/16', dataDir: path.join(tmp, 'ipam'), routes: [{ dst: '0.0.0.0/0' }] } },
        { type: 'switchyard-cni', agentSocket: socket },
      ],
    }, timer);

    const sandbox = (name: string, mesh = true) => {
      const uid = randomUUID();
      const meta = mesh ? { labels: { [MANAGED_LABEL]: 'true' }, annotations: defaults } : {};
      api.upsert({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'bench', uid, ...meta }, spec: { nodeName: NODE } });
      const cgroup = lab.addCgroupAt('kubepods', `pod${uid}`);
      const netns = lab.addNetns(name);
      const containerId = uid.replace(/-/g, '');
      const inv: Invocation = { containerId, netnsPath: `/var/run/netns/${netns}`, ifname: 'eth0', args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'bench', K8S_POD_NAME: name, K8S_POD_UID: uid } };
      return { name, uid, netns, cgroup, inv };
    };

    // A non-mesh destination the probes aim at. Reaching it would be an escape.
    const target = sandbox('target', false);
    const targetResult = (await runtime.add(target.inv)).pop()!.output as { ips: { address: string }[] };
    const targetIp = targetResult.ips[0].address.split('/')[0];
    const server = lab.node({ netns: target.netns, cgroup: target.cgroup }, 'test/fixtures/echo-server.js', ['--port', '8080', '--name', 'target'], { uid: 1000 });
    procs.push(server);
    await server.waitForJson((o) => o.event === 'ready');

    /** The agent's own account of a registration, from its log line. */
    const agentTimes = (name: string) => {
      const line = [...agent.lines].reverse().find((l) => l.includes(`pod=bench/${name} `) && l.includes('msg="pod registered"')) ?? '';
      const f = (k: string) => Number(new RegExp(`${k}=([\\d.]+)`).exec(line)?.[1] ?? NaN);
      return { agentMs: f('duration_ms'), agentLookupMs: f('lookup_ms'), agentKernelMs: f('kernel_ms') };
    };

    /** One pod, timed end to end; the sandbox exists before t0, as at the kubelet. */
    const measure = async (name: string): Promise<{ sample: Sample; inv: Invocation }> => {
      const sb = sandbox(name);
      const probe = lab.node({ netns: sb.netns, cgroup: sb.cgroup }, 'test/fixtures/first-connect.js', ['--dst', `${targetIp}:8080`], { uid: 1000 });
      procs.push(probe);
      await probe.waitForJson((o) => o.event === 'ready');
      const t0 = now();
      const runs = await runtime.add(sb.inv);
      const tAdd = now();
      probe.child.stdin!.write('go\n');
      const first = await probe.waitForJson((o) => o.event === 'first', 10_000);
      await probe.wait();
      return {
        inv: sb.inv,
        sample: {
          addMs: msSince(t0, tAdd),
          switchyardCniMs: runs.find((r) => r.plugin === 'switchyard-cni')!.ms,
          bridgeMs: runs.find((r) => r.plugin === 'bridge')!.ms,
          chainMs: runs.reduce((a, r) => a + r.ms, 0),
          ...agentTimes(name), firstConnMs: msSince(t0, BigInt(first.tNs as string)), attempts: Number(first.attempts), escaped: first.redirected !== true },
      };
    };

    const post = (p: string, body: unknown) =>
      new Promise<any>((resolve, reject) => {
        const req = http.request({ socketPath: socket, path: p, method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
          let d = '';
          res.on('data', (c) => (d += c)).on('end', () => resolve(d ? JSON.parse(d) : {}));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });

    let fill = 0;
    /** Registers filler pods straight through the agent API (as switchyard-cni would) until `n` are registered. */
    const fillTo = async (n: number) => {
      const batch: Promise<unknown>[] = [];
      for (; fill < n; fill++) {
        const sb = sandbox(`fill-${fill}`);
        sh('ip', ['-n', sb.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
        batch.push(post('/v1/cni/add', { containerId: sb.inv.containerId, netns: sb.inv.netnsPath, ifname: 'eth0', podNamespace: 'bench', podName: sb.name, podUid: sb.uid, ips: [`10.82.${fill >> 8}.${fill & 255}`] }));
        if (batch.length === 16) await Promise.all(batch.splice(0));
      }
      const replies = (await Promise.all(batch)) as { registered?: boolean }[];
      if (replies.some((r) => !r.registered)) throw new Error('a filler pod was not registered');
    };

    const sequential: Record<string, Sample[]> = {};
    let seq = 0;
    for (const level of [0, 100, 1000]) {
      await fillTo(level);
      const out: Sample[] = [];
      for (let i = 0; i < samples; i++) {
        const { sample, inv } = await measure(`m${seq++}`);
        out.push(sample);
        await runtime.del(inv); // keep the registered count at `level`
      }
      sequential[String(level)] = out;
    }

    const concurrent: Sample[] = [];
    for (let r = 0; r < concurrentRounds; r++) {
      const done = await Promise.all(Array.from({ length: 10 }, () => measure(`m${seq++}`)));
      concurrent.push(...done.map((d) => d.sample));
      for (const d of done) await runtime.del(d.inv);
    }

    const rssMiB = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${agent.pid}/status`, 'utf8'))![1]) / 1024;
    const maps = fs.readdirSync(lab.pinRoot).filter((f) => f.startsWith('sy_'));
    const mapMemory: Record<string, number> = {};
    for (const m of maps) {
      const info = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', path.join(lab.pinRoot, m)], { encoding: 'utf8' })) as { bytes_memlock?: number };
      if (info.bytes_memlock !== undefined) mapMemory[m] = info.bytes_memlock;
    }
    const all = [...Object.values(sequential).flat(), ...concurrent];
    const view = (xs: Sample[]) => ({
      add: summary(xs.map((s) => s.addMs)),
      switchyardCni: summary(xs.map((s) => s.switchyardCniMs)),
      /** switchyard-cni's exec less the agent's time inside it: the plugin's own start, request and exit. */
      pluginOwn: summary(xs.map((s) => s.switchyardCniMs - s.agentMs)),
      bridge: summary(xs.map((s) => s.bridgeMs)),
      chain: summary(xs.map((s) => s.chainMs)),
      agent: summary(xs.map((s) => s.agentMs)),
      agentLookup: summary(xs.map((s) => s.agentLookupMs)),
      agentKernel: summary(xs.map((s) => s.agentKernelMs)),
      firstRedirectedConnection: summary(xs.map((s) => s.firstConnMs)),
      escapes: xs.filter((s) => s.escaped).length,
      connectAttemptsMax: Math.max(...xs.map((s) => s.attempts)),
    });
    return {
      registeredBefore: Object.fromEntries(Object.entries(sequential).map(([k, v]) => [k, view(v)])),
      concurrent10: view(concurrent),
      pluginTimer: timer ? 'cni-exec (fork to reaped, in the node netns)' : 'nsenter from Node (includes nsenter and a fork of Node)',
      escapes: all.filter((s) => s.escaped).length,
      atThousandPods: { registered: fill, agentRssMiB: Number(rssMiB.toFixed(1)), bpfMapMemlockBytes: mapMemory, bpfMapMemlockTotalMiB: Number((Object.values(mapMemory).reduce((a, b) => a + b, 0) / 2 ** 20).toFixed(2)) },
      raw: { sequential, concurrent },
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop('SIGTERM')));
    await api.stop();
    await lab.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchRegistration(arg('samples', 40), arg('concurrent-rounds', 4))
    .then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'))
    .catch((e) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exit(1);
    });
}
