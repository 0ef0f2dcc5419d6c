/**
 * Traffic through the lab cluster: the real control plane (scheduler and
 * controller-manager included), the webhook and interceptor as processes on
 * their ServiceAccounts' tokens, and the lab node playing kubelet on the real
 * kernel (netns, cgroup2, Debian's CNI plugins, switchyard-cni, BPF).
 * Outside CI a missing control plane or kernel capability skips with the
 * reason; in CI it fails.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LabCluster } from '../../lab/src/cluster';
import { controlPlaneMissing } from '../../lab/src/controlplane';
import { LAB_IMAGES } from '../../lab/src/images';
import { run as cli } from '../../cli/main';
import { projectRoot } from '../../native';
import type { ServiceStatus } from '../../interceptor/src/lb/controller';
import { gate, kernelTestBlocker } from '../helpers/kernel';
import { eventually } from '../../lab/src/proc';

const lab = gate('e2e lab tests', controlPlaneMissing() ?? kernelTestBlocker());

async function sw(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await cli(args, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

lab.describe('the lab cluster: pods, CNI, sidecars and traffic on a real control plane', () => {
  let c: LabCluster;
  const nodeLog: string[] = [];
  let a: any;
  let bs: any[];
  let clusterIP: string;

  const kjson = (args: string[]) => JSON.parse(c.kubectl([...args, '-o', 'json']));
  const readyPods = (selector: string, n: number) =>
    eventually(`${n} Ready pods with ${selector}`, () => {
      const items = (kjson(['get', 'pods', '-n', 'demo', '-l', selector]).items as any[]).filter(
        (p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((x: any) => x.type === 'Ready' && x.status === 'True'),
      );
      return items.length === n ? items : undefined;
    });
  const logs = async (pod: string, container: string) => {
    const r = await sw(['logs', pod, '-n', 'demo', '-c', container, '--log-dir', path.dirname(c.dir)]);
    expect(r.err).toBe('');
    return r.out.split('\n').filter(Boolean);
  };
  /** A sidecar writes its access-log line when the connection closes, a moment after the client has its answer. */
  const linesOnceThere = async (pod: string, container: string, match: (l: string) => boolean, n: number) => {
    await eventually(`${n} matching lines in ${pod}/${container}`, async () => ((await logs(pod, container)).filter(match).length >= n ? true : undefined), 10_000);
    return (await logs(pod, container)).filter(match);
  };
  const status = async () => JSON.parse((await sw(['status', '-o', 'json', '--socket', c.agentSocket])).out) as { pods: { name: string; ips: string[]; counters: Record<string, string> }[]; node: Record<string, string> };
  const counter = async (pod: string, k: string) => Number((await status()).pods.find((p) => p.name === pod)?.counters[k] ?? NaN);
  const services = async () => (JSON.parse((await sw(['status', 'services', '-o', 'json', '--socket', c.agentSocket])).out) as { services: ServiceStatus[] }).services;
  const get = async (url: string) => {
    const r = await c.node.exec('demo', a.metadata.name, 'app', [...LAB_IMAGES['switchyard-lab/http-get'].entrypoint, url]);
    expect({ url, code: r.code }).toEqual({ url, code: 0 });
    return r.output.trim();
  };

  beforeAll(async () => {
    lab.require();
    c = new LabCluster((line) => nodeLog.push(line));
    await c.start();
    c.kubectl(['create', 'namespace', 'demo']);
    c.kubectl(['label', 'namespace', 'demo', 'switchyard.dev/injection=enabled']);
    c.kubectl(['apply', '-f', path.join(projectRoot(), 'lab', 'demo', 'apps.yaml')]);
    [a] = await readyPods('app=app-a', 1);
    bs = await readyPods('app=app-b', 2);
    for (const p of [a, ...bs]) await eventually(`${p.metadata.name} listening`, async () => ((await logs(p.metadata.name, 'app')).some((l) => l.includes('listening on :8080')) ? true : undefined));
    clusterIP = kjson(['get', 'service', 'app-b', '-n', 'demo']).spec.clusterIP;
    await eventually('app-b programmed with 2 backends', async () => ((await services()).some((s) => s.service === 'demo/app-b' && s.backends.length === 2) ? true : undefined));
  }, 180_000);

  afterAll(async () => {
    const dir = c?.dir;
    const id = c?.netlab.id;
    await c?.stop();
    if (id) {
      // Nothing of the lab is left: netns, cgroups, pins, run directory.
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(id);
      expect(fs.existsSync(c.netlab.cgroupRoot)).toBe(false);
      expect(fs.existsSync(c.netlab.pinRoot)).toBe(false);
      expect(fs.existsSync(dir)).toBe(false);
    }
  }, 60_000);

  test('every pod was injected, scheduled to the lab node, given an IP by the CNI chain and registered before its containers started', async () => {
    const st = await status();
    for (const p of [a, ...bs]) {
      expect(p.spec.nodeName).toBe('switchyard-lab-node');
      expect(p.metadata.labels['switchyard.dev/managed']).toBe('true');
      expect(p.spec.initContainers.map((x: any) => [x.name, x.restartPolicy])).toEqual([['switchyard-proxy', 'Always']]);
      expect(p.status.podIP).toMatch(/^10\.244\.0\./);
      expect(p.status.initContainerStatuses[0]).toMatchObject({ name: 'switchyard-proxy', ready: true, started: true });
      expect(st.pods.find((x) => x.name === p.metadata.name)?.ips).toEqual([p.status.podIP]);
      // The agent registered the pod during CNI ADD, before the node started any container.
      const registered = nodeLog.findIndex((l) => l.includes('pod network ready') && l.includes(p.metadata.name));
      const firstContainer = nodeLog.findIndex((l) => l.includes('container started') && l.includes(p.metadata.name));
      expect(registered).toBeGreaterThanOrEqual(0);
      expect(firstContainer).toBeGreaterThan(registered);
    }
    expect(c.agent!.lines.filter((l) => l.includes('msg="pod registered"') && l.includes('pod=demo/'))).toHaveLength(3);
  });

  test('app A → app B by pod IP goes through both sidecars: access logs and counters', async () => {
    const b = bs[0];
    const [aOut, bIn] = [await counter(a.metadata.name, 'redirected_outbound'), await counter(b.metadata.name, 'redirected_inbound')];
    const reply = await get(`http://${b.status.podIP}:8080/`);
    expect(reply).toContain(`status=200 body="hello from ${b.metadata.name}"`);
    expect(await linesOnceThere(a.metadata.name, 'switchyard-proxy', (l) => l.includes(`outbound src=127.0.0.1:`) && l.includes(`dst=${b.status.podIP}:8080`) && l.includes('result=ok'), 1)).toHaveLength(1);
    expect(await linesOnceThere(b.metadata.name, 'switchyard-proxy', (l) => l.includes(`inbound src=${a.status.podIP}:`) && l.includes(`dst=${b.status.podIP}:8080`) && l.includes('result=ok'), 1)).toHaveLength(1);
    expect(await counter(a.metadata.name, 'redirected_outbound')).toBe(aOut + 1);
    expect(await counter(b.metadata.name, 'redirected_inbound')).toBe(bIn + 1);
    // The app saw the request come from app-a's sidecar, not from the node.
    expect((await logs(b.metadata.name, 'app')).some((l) => l.includes('GET / from='))).toBe(true);
  });

  test('app A → app B by the Service: socket-level load balancing over both pods, each request through both sidecars', async () => {
    const before = (await services()).find((s) => s.service === 'demo/app-b')!;
    const n = 20;
    const served = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const m = /body="hello from ([^"]+)"/.exec(await get(`http://${clusterIP}/`));
      expect(m).not.toBeNull();
      served.set(m![1], (served.get(m![1]) ?? 0) + 1);
    }
    expect([...served.keys()].sort()).toEqual(bs.map((b) => b.metadata.name).sort());
    // Outbound: app-a's sidecar saw the ClusterIP as the original destination.
    expect(await linesOnceThere(a.metadata.name, 'switchyard-proxy', (l) => l.includes(`dst=${clusterIP}:80`) && l.includes('result=ok'), n)).toHaveLength(n);
    // Inbound: each app-b sidecar logged exactly the requests its app answered (+ the pod-IP request of the test above for the first).
    for (const b of bs) {
      const expected = (served.get(b.metadata.name) ?? 0) + (b === bs[0] ? 1 : 0);
      expect(await linesOnceThere(b.metadata.name, 'switchyard-proxy', (l) => l.includes(`inbound src=${a.status.podIP}:`) && l.includes('result=ok'), expected)).toHaveLength(expected);
    }
    const after = (await services()).find((s) => s.service === 'demo/app-b')!;
    // Each connect is translated once: by the sidecar's upstream connect (the app's own is deferred to its sidecar).
    expect(Number(after.translations) - Number(before.translations)).toBe(n);
  });

  test('deleting a pod stops it, CNI DEL unregisters it, and the ReplicaSet replacement is registered and balanced to', async () => {
    const victim = bs[1];
    const netnsBefore = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    // kubectl runs synchronously here, in the process that also runs the lab node: it must not wait.
    c.kubectl(['delete', 'pod', victim.metadata.name, '-n', 'demo', '--wait=false']);
    // Gone from the API means the node finished: containers stopped, CNI DEL, sandbox removed, object deleted.
    await eventually(`${victim.metadata.name} gone from the API`, async () => ((await c.cp.request('GET', `/api/v1/namespaces/demo/pods/${victim.metadata.name}`)).status === 404 ? true : undefined));
    expect((await status()).pods.map((p) => p.name)).not.toContain(victim.metadata.name);
    expect(c.agent!.lines.some((l) => l.includes('msg="pod unregistered"') && l.includes(`pod=demo/${victim.metadata.name}`) && l.includes('reason=cni-del'))).toBe(true);
    const sandbox = `${c.netlab.id}-pod-${victim.metadata.uid.slice(0, 8)}`;
    expect(netnsBefore).toContain(sandbox);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(sandbox);
    expect(fs.existsSync(path.join(c.netlab.cgroupRoot, 'kubepods', `pod${victim.metadata.uid}`))).toBe(false);

    const now = await readyPods('app=app-b', 2);
    const replacement = now.find((p) => p.metadata.name !== bs[0].metadata.name)!;
    expect(replacement.metadata.name).not.toBe(victim.metadata.name);
    expect((await status()).pods.map((p) => p.name)).toContain(replacement.metadata.name);
    await eventually(`${replacement.metadata.name} listening`, async () => ((await logs(replacement.metadata.name, 'app')).some((l) => l.includes('listening on')) ? true : undefined));
    await eventually('the Service to balance to the replacement', async () => {
      const s = (await services()).find((x) => x.service === 'demo/app-b')!;
      return s.backends.includes(`${replacement.status.podIP}:8080`) && s.backends.length === 2 ? true : undefined;
    });
    const reply = await get(`http://${replacement.status.podIP}:8080/`);
    expect(reply).toContain(`hello from ${replacement.metadata.name}`);
    bs = [bs[0], replacement];
  });

  test('interceptor down: a new mesh pod is not started (fail-closed), its status says why, and it starts once the interceptor is back', async () => {
    await c.stopAgent();
    const asked = await sw(['status', '--socket', c.agentSocket]);
    expect(asked.code).not.toBe(0); // the socket went with the agent
    // Traffic of registered pods keeps flowing: the programs and maps stay pinned.
    expect(await get(`http://${clusterIP}/`)).toContain('status=200');
    c.kubectl(['run', 'while-down', '-n', 'demo', '--image=switchyard-lab/http-echo']);
    const waiting = await eventually('while-down to report its sandbox error', () => {
      const p = kjson(['get', 'pod', 'while-down', '-n', 'demo']);
      const w = p.status?.initContainerStatuses?.[0]?.state?.waiting;
      return w?.reason === 'CreatePodSandboxError' ? w : undefined;
    });
    expect(waiting.message).toMatch(/switchyard-cni/);
    expect(waiting.message).toMatch(/agent/);
    expect(nodeLog.some((l) => l.includes('pod network failed; CNI DEL, then retrying') && l.includes('demo/while-down'))).toBe(true);
    // kubectl describe / get events tell the same story, as for a kubelet.
    await eventually('a FailedCreatePodSandBox event', () =>
      (kjson(['get', 'events', '-n', 'demo', '--field-selector', 'involvedObject.name=while-down']).items as any[]).some((e) => e.reason === 'FailedCreatePodSandBox' && e.type === 'Warning' && /switchyard-cni/.test(e.message)) ? true : undefined,
    );
    // No container of it ever ran unregistered.
    expect(nodeLog.some((l) => l.includes('container started') && l.includes('demo/while-down'))).toBe(false);

    await c.startAgent();
    expect(c.agent!.lines.some((l) => l.includes('adopted the pinned dataplane'))).toBe(true);
    const [p] = await readyPods('run=while-down', 1);
    expect((await status()).pods.map((x) => x.name)).toContain(p.metadata.name);
  });

  test('a container the lab cannot run waits with ImageNotAvailable and a message that says what to do', async () => {
    c.kubectl(['run', 'unknown-image', '-n', 'demo', '--image=registry.example/team/app:1.2', '--restart=Never']);
    const st = await eventually('the unknown-image status', () => {
      const p = kjson(['get', 'pod', 'unknown-image', '-n', 'demo']);
      return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImageNotAvailable' ? p : undefined;
    });
    expect(st.status.containerStatuses[0].state.waiting.message).toMatch(/give the container a command, or use one of switchyard\/proxy/);
    // The sidecar the webhook added still runs, and the pod is not Ready.
    expect(st.status.initContainerStatuses[0]).toMatchObject({ name: 'switchyard-proxy', started: true });
    expect(st.status.conditions.find((x: any) => x.type === 'Ready').status).toBe('False');
  });

  test('an exiting container is restarted with back-off; switchyard logs shows the current and -p the previous run', async () => {
    c.kubectl(['run', 'crasher', '-n', 'demo', '--image=any', '--restart=Always', '--command', '--', 'sh', '-c', 'echo "run at $(date +%s%N)"; exit 3']);
    const p = await eventually('crasher restarted', () => {
      const x = kjson(['get', 'pod', 'crasher', '-n', 'demo']);
      const cs = x.status?.containerStatuses?.[0];
      return cs?.restartCount >= 1 && cs?.lastState?.terminated ? x : undefined;
    }, 30_000);
    expect(p.status.containerStatuses[0].lastState.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
    const dir = path.dirname(c.dir);
    const current = await sw(['logs', 'crasher', '-n', 'demo', '-c', 'crasher', '--log-dir', dir]);
    const previous = await sw(['logs', 'crasher', '-n', 'demo', '-c', 'crasher', '-p', '--log-dir', dir]);
    expect(previous.out).toMatch(/^run at \d+\n$/);
    expect(current.out === '' || /^run at \d+\n$/.test(current.out)).toBe(true);
    expect(current.out).not.toBe(previous.out);
  });

  const applyPod = (namespace: string, name: string, spec: object, annotations?: Record<string, string>) =>
    c.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, ...(annotations ? { annotations } : {}) }, spec }));
  const events = (ns: string, name: string) => kjson(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`]).items as { reason: string; type: string; message: string }[];
  const nodeLine = (pod: string, msg: string, container: string) =>
    nodeLog.findIndex((l) => l.includes(`msg="${msg}"`) && l.includes(`pod=${pod} `) && new RegExp(`(^| )container=${container}( |$)`).test(l));

  test("classic sidecar mode: the app starts only once the sidecar's postStart hook (wait-ready) has returned, and its first request goes through the sidecar", async () => {
    applyPod('demo', 'classic', { restartPolicy: 'OnFailure', containers: [{ name: 'app', image: 'switchyard-lab/http-get', args: [`http://${clusterIP}/`] }] }, { 'switchyard.dev/sidecar-mode': 'classic' });
    const p = await eventually('the classic pod\'s app finished', () => {
      const x = kjson(['get', 'pod', 'classic', '-n', 'demo']);
      return x.status?.containerStatuses?.find((s: any) => s.name === 'app')?.state?.terminated ? x : undefined;
    }, 30_000);
    expect(p.spec.initContainers ?? []).toEqual([]);
    expect(p.spec.containers.map((x: any) => x.name)).toEqual(['switchyard-proxy', 'app']);
    expect(p.spec.containers[0].lifecycle.postStart.exec.command).toEqual(['switchyard-sidecar', 'wait-ready', '--admin-port', '15021']);
    // The first and only run of the app succeeded: its very first connect found the proxy listening.
    expect(p.status.containerStatuses.find((s: any) => s.name === 'app')).toMatchObject({ restartCount: 0, state: { terminated: { exitCode: 0 } } });
    const [sidecarStarted, hookDone, appStarted] = [nodeLine('demo/classic', 'container started', 'switchyard-proxy'), nodeLine('demo/classic', 'postStart hook done', 'switchyard-proxy'), nodeLine('demo/classic', 'container started', 'app')];
    expect(sidecarStarted).toBeGreaterThanOrEqual(0);
    expect(hookDone).toBeGreaterThan(sidecarStarted);
    expect(appStarted).toBeGreaterThan(hookDone);
    expect(await linesOnceThere('classic', 'switchyard-proxy', (l) => l.includes('outbound src=127.0.0.1:') && l.includes(`dst=${clusterIP}:80`) && l.includes('result=ok'), 1)).toHaveLength(1);
    expect((await logs('classic', 'app')).join('\n')).toMatch(/status=200 body="hello from app-b-/);
  });

  test('liveness: after failureThreshold failures the container is stopped (preStop first) and restarted, and the events say why', async () => {
    const marker = path.join(c.dir, 'unlive-prestop');
    applyPod('default', 'unlive', {
      terminationGracePeriodSeconds: 2,
      containers: [{
        name: 'app',
        image: 'switchyard-lab/pause',
        livenessProbe: { exec: { command: ['test', '-e', path.join(c.dir, 'no-such-file')] }, periodSeconds: 1, failureThreshold: 2 },
        lifecycle: { preStop: { exec: { command: ['sh', '-c', `echo "preStop $HOSTNAME" >> ${marker}`] } } },
      }],
    });
    const p = await eventually('unlive restarted', () => {
      const x = kjson(['get', 'pod', 'unlive', '-n', 'default']);
      const cs = x.status?.containerStatuses?.[0];
      return cs?.restartCount >= 1 && cs?.lastState?.terminated ? x : undefined;
    }, 30_000);
    expect(p.status.containerStatuses[0].lastState.terminated.exitCode).toBe(128 + 15); // SIGTERM, after preStop
    expect(fs.readFileSync(marker, 'utf8').split('\n')[0]).toBe('preStop unlive');
    const ev = await eventually('liveness events', () => {
      const e = events('default', 'unlive');
      return e.some((x) => x.reason === 'Killing' && x.message === 'Container app failed liveness probe, will be restarted') ? e : undefined;
    });
    expect(ev.filter((x) => x.reason === 'Unhealthy' && x.type === 'Warning').map((x) => x.message)).toContain(`Liveness probe failed: command ["test","-e","${path.join(c.dir, 'no-such-file')}"] exited 1`);
    expect(nodeLine('default/unlive', 'liveness probe failed; restarting the container', 'app')).toBeGreaterThanOrEqual(0);
    c.kubectl(['delete', 'pod', 'unlive', '-n', 'default', '--wait=false']);
  });

  test('deletion runs the preStop hook before SIGTERM; a failing postStart hook kills the container and says so', async () => {
    const marker = path.join(c.dir, 'graceful-prestop');
    applyPod('default', 'graceful', { containers: [{ name: 'app', image: 'switchyard-lab/pause', lifecycle: { preStop: { exec: { command: ['sh', '-c', `echo "preStop $HOSTNAME" > ${marker}`] } } } }] });
    await eventually('graceful running', () => kjson(['get', 'pod', 'graceful', '-n', 'default']).status?.containerStatuses?.[0]?.state?.running);
    c.kubectl(['delete', 'pod', 'graceful', '-n', 'default', '--wait=false']);
    await eventually('graceful gone', () => (c.kubectl(['get', 'pod', 'graceful', '-n', 'default', '--ignore-not-found', '-o', 'name']).trim() === '' ? true : undefined));
    expect(fs.readFileSync(marker, 'utf8')).toBe('preStop graceful\n');
    const [hookDone, exited] = [nodeLine('default/graceful', 'preStop hook done', 'app'), nodeLine('default/graceful', 'container exited', 'app')];
    expect(hookDone).toBeGreaterThanOrEqual(0);
    expect(exited).toBeGreaterThan(hookDone);

    applyPod('default', 'bad-hook', { containers: [{ name: 'app', image: 'switchyard-lab/pause', lifecycle: { postStart: { exec: { command: ['sh', '-c', 'echo not ready >&2; exit 4'] } } } }] });
    const e = await eventually('FailedPostStartHook', () => {
      const x = events('default', 'bad-hook').filter((y) => y.reason === 'FailedPostStartHook');
      return x.length ? x : undefined;
    });
    expect(e[0]).toMatchObject({ type: 'Warning', message: 'PostStartHook failed: command ["sh","-c","echo not ready >&2; exit 4"] exited 4: not ready' });
    const p = await eventually('bad-hook killed', () => {
      const x = kjson(['get', 'pod', 'bad-hook', '-n', 'default']);
      return x.status?.containerStatuses?.[0]?.lastState?.terminated ? x : undefined;
    }, 30_000);
    expect(p.status.containerStatuses[0].lastState.terminated.exitCode).toBe(128 + 9);
    c.kubectl(['delete', 'pod', 'bad-hook', '-n', 'default', '--wait=false']);
  });

  test('a pod deleted while a postStart hook hangs is torn down at once, hook included; the next container never starts', async () => {
    applyPod('default', 'hung-hook', {
      terminationGracePeriodSeconds: 1,
      containers: [
        { name: 'first', image: 'switchyard-lab/pause', lifecycle: { postStart: { exec: { command: ['sleep', '600'] } } } },
        { name: 'second', image: 'switchyard-lab/pause' },
      ],
    });
    await eventually('first running', () => kjson(['get', 'pod', 'hung-hook', '-n', 'default']).status?.containerStatuses?.find((x: any) => x.name === 'first')?.state?.running);
    c.kubectl(['delete', 'pod', 'hung-hook', '-n', 'default', '--wait=false']);
    // Far less than the hook's 600 s, or the lab's 120 s bound on hooks: teardown does not wait for it.
    await eventually('hung-hook gone', () => (c.kubectl(['get', 'pod', 'hung-hook', '-n', 'default', '--ignore-not-found', '-o', 'name']).trim() === '' ? true : undefined), 20_000);
    expect(nodeLine('default/hung-hook', 'container started', 'second')).toBe(-1);
    expect(nodeLine('default/hung-hook', 'postStart hook done', 'first')).toBe(-1);
  });

  test('switchyard logs picks the app container by default, as kubectl does, and names the choices on bad input', async () => {
    const dir = path.dirname(c.dir);
    const dflt = await sw(['logs', a.metadata.name, '-n', 'demo', '--log-dir', dir]);
    expect(dflt.code).toBe(0);
    expect(dflt.err).toBe('Defaulted container "app" out of: switchyard-proxy (init), app\n');
    expect(dflt.out).toContain('listening on :8080');
    const badContainer = await sw(['logs', a.metadata.name, '-n', 'demo', '-c', 'nope', '--log-dir', dir]);
    expect(badContainer.code).toBe(2);
    expect(badContainer.err).toContain('container nope is not valid for pod');
    const badPod = await sw(['logs', 'nope', '-n', 'demo', '--log-dir', dir]);
    expect(badPod.code).toBe(2);
    expect(badPod.err).toContain(`pod demo/nope has no logs in the lab; pods in demo: `);
    const empty = await sw(['logs', 'x', '--log-dir', path.join(c.dir, 'nothing-here')]);
    expect(empty.err).toContain('no lab pod logs under');
  });
});
