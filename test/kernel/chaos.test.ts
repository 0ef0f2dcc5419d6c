/**
 * Chaos: pods churn through the CNI chain for two minutes while the agent is
 * SIGKILLed at random moments and restarted, at least ten times. Like the
 * kubelet, a worker retries a failed ADD (after a DEL) a few times and then
 * gives the pod up. Whatever the timing:
 *  - 0 escapes: every pod that started has its first connections sent to its
 *    (absent) sidecar, so they are refused and never reach the server;
 *  - after the last reconcile the maps hold exactly the live pods;
 *  - nothing hangs: every ADD and DEL returns.
 * SWITCHYARD_CHAOS_MS shortens the run for development.
 */
import { native } from '../../native';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { AgentNode, TestPod } from '../helpers/agent-node';
import { Proc } from '../../lab/src/proc';

const DURATION_MS = Number(process.env.SWITCHYARD_CHAOS_MS ?? 120_000);
const WORKERS = 3;
const KEEP = 20; // pods left running at the end, for the maps to be compared with
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

describeKernel('chaos: the agent killed at random during pod churn', () => {
  const h = new AgentNode({ nodeSubnet: '10.73.0', podSubnet: '10.74.0.0/16', nodeName: 'node-chaos' });
  let server: TestPod;
  let serverProc: Proc;

  beforeAll(async () => {
    requireKernel();
    await h.start();
    server = h.sandbox('chaos-server', false);
    await h.add(server);
    serverProc = await h.lab.server({ ...server, ip: server.ip!, ip6: '', node: h.node } as never, [8080]);
  });

  afterAll(async () => {
    await h.stop();
  });

  test(`${DURATION_MS / 1000} s of churn with the agent SIGKILLed at random: 0 escapes, maps equal the live pods, nothing stuck`, async () => {
    const deadline = Date.now() + DURATION_MS;
    const stats = { created: 0, started: 0, failedToStart: 0, escapes: 0, deleted: 0, kills: 0 };
    const alive: { pod: TestPod; cookie: bigint }[] = [];
    let seq = 0;

    // The schedule of kills is the chaos itself, so these pauses are the point, not readiness waits.
    const killer = (async () => {
      while (Date.now() < deadline - 3000) {
        await pause(between(2000, 8000));
        await h.agent.stop('SIGKILL');
        stats.kills++;
        await pause(between(50, 1500));
        await h.startAgent();
      }
    })();

    const worker = async () => {
      while (Date.now() < deadline) {
        const pod = h.sandbox(`chaos-${seq++}`, true);
        stats.created++;
        let started = false;
        for (let attempt = 0; attempt < 3 && !started; attempt++) {
          try {
            await h.add(pod);
            started = true;
          } catch {
            await h.runtime.del(pod.inv).catch(() => undefined); // the runtime cleans up a failed ADD
            await pause(100 * (attempt + 1)); // the kubelet's back-off
          }
        }
        if (started) {
          stats.started++;
          // The pod's first container, started the moment ADD returned.
          const first = h.lab.spawn({ netns: pod.netns, cgroup: pod.cgroup }, ['bash', '-c', `for i in 1 2 3; do (exec 3<>/dev/tcp/${server.ip}/8080) 2>/dev/null && echo ESCAPED; done; echo done`], { uid: 1000 });
          await first.wait();
          if (!first.lines.includes('done')) throw new Error(`first connections of ${pod.name} did not finish: ${first.stderr}`);
          if (first.lines.includes('ESCAPED')) stats.escapes++;
          if (alive.length < KEEP && Math.random() < 0.05) {
            alive.push({ pod, cookie: native().netnsCookie(pod.netnsPath) });
            continue;
          }
        } else stats.failedToStart++;
        await h.runtime.del(pod.inv, pod.result);
        h.api.remove(pod.name);
        h.lab.removeNetns(pod.netns);
        await h.lab.removeCgroup(pod.cgroup);
        stats.deleted++;
      }
    };
    await Promise.all([killer, ...Array.from({ length: WORKERS }, worker)]);

    // The last reconcile: a restart reconciles before it reports ready.
    await h.agent.stop('SIGKILL');
    await h.startAgent();
    const pods = h.dp.pods();
    process.stdout.write(
      `chaos: ${stats.kills} agent kills in ${DURATION_MS / 1000} s; pods created ${stats.created}, started ${stats.started}, failed to start ${stats.failedToStart}, ` +
        `deleted ${stats.deleted}, left running ${alive.length}; escapes ${stats.escapes}; sy_pods ${pods.size}, sy_pod_by_ip ${h.dp.mapEntries('sy_pod_by_ip')}, sy_origdst ${h.dp.mapEntries('sy_origdst')}\n`,
    );
    expect(stats.kills).toBeGreaterThanOrEqual(DURATION_MS >= 120_000 ? 10 : 1);
    expect(stats.started).toBeGreaterThan(stats.kills);
    expect(stats.escapes).toBe(0);
    expect(serverProc.json().filter((o) => o.event === 'conn')).toHaveLength(0);
    // The maps are exactly the live mesh pods: no stale entry, none missing.
    expect([...pods.keys()].sort()).toEqual(alive.map((a) => a.cookie).sort());
    for (const a of alive) expect(h.dp.ipOwner(a.pod.ip!)).toBe(a.cookie);
    expect(h.dp.mapEntries('sy_pod_by_ip')).toBe(alive.length);
    expect(h.dp.mapEntries('sy_origdst')).toBe(0);
    expect((await h.agentGet('/v1/status')).pods.map((p: { name: string }) => p.name).sort()).toEqual(alive.map((a) => a.pod.name).sort());
  }, DURATION_MS + 120_000);
});
