/**
 * The local dataplane demo (README's main command).
 *
 * Builds two mesh "pods" on this machine's kernel, each a network namespace
 * with a veth on a bridge and its own cgroup2 directory, loads Switchyard's
 * BPF programs on their parent cgroup, starts the reference sidecar in each,
 * and sends a request from app-a to app-b. The output shows the request going
 * app-a -> sidecar(a) -> sidecar(b) -> app-b with no iptables anywhere.
 */
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane, PROGRAMS } from '../../interceptor/src/dataplane/dataplane';
import { counterKey } from '../../interceptor/src/dataplane/abi';
import { accessMatching } from '../helpers/access-log';
import { NetLab, sh } from '../../lab/src/netlab';
import { sweepStaleLabs } from '../../lab/src/sweep';

const say = (s = '') => process.stdout.write(s + '\n');
const step = (n: number, s: string) => say(`\n\x1b[1m${n}. ${s}\x1b[0m`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo creates network namespaces and loads BPF: run it as root');
  sweepStaleLabs();
  const lab = new NetLab();
  let dp: Dataplane | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      try {
        dp?.unload();
      } catch {
        /* lab.cleanup removes the pins too */
      }
      await lab.cleanup();
    })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      say(`\n${sig}: cleaning up`);
      void cleanup().then(() => process.exit(130));
    });
  }

  try {
    step(1, 'Two pods on one node: netns + veth on a bridge + cgroup2 directory each');
    const node = lab.addNode('node', '10.99.0');
    const a = lab.addPod(node, 'app-a');
    const b = lab.addPod(node, 'app-b');
    for (const p of [a, b]) say(`   ${p.name.padEnd(6)} ip ${p.ip}  netns ${p.netns}  cgroup ${p.cgroup}`);

    step(2, 'Load the BPF programs and attach them to the pods\' parent cgroup (no iptables)');
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
    for (const p of PROGRAMS) say(`   ${p.name.padEnd(14)} from ${p.object}.bpf.o`);
    say(`   pinned under ${lab.pinRoot}`);

    step(3, 'Register both pods (netns cookie, cgroup, IP, ports) and attach tc to their eth0');
    for (const p of [a, b]) {
      const reg = dp.registerPod({ netnsPath: p.netnsPath, cgroupPath: p.cgroup, ips: [p.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
      say(`   ${p.name.padEnd(6)} netns cookie ${reg.netnsCookie}  cgroup id ${reg.cgroupId}  outbound :${reg.config.outboundPort} inbound :${reg.config.inboundPort} sidecar uid ${reg.config.sidecarUid}`);
    }
    const rules = sh('ip', ['netns', 'exec', a.netns, 'sh', '-c', '(iptables-save 2>/dev/null || true) | grep -c "^-A" || true']).trim();
    say(`   iptables rules in app-a's netns: ${rules || 0}`);

    step(4, 'Start the reference sidecar in each pod (uid 1337) and an echo server in app-b on :8080');
    const [sidecarA, sidecarB] = await Promise.all([lab.sidecar(a), lab.sidecar(b)]);
    await lab.server(b, [8080]);
    say('   sidecars listen on :15001 (outbound) and :15003 (inbound); app-b listens on :8080');

    step(5, `app-a (uid 1000) connects to app-b at ${b.ip}:8080 and sends 4096 bytes`);
    const r = await lab.run(a, 'test/fixtures/client.js', ['--host', b.ip, '--port', '8080', '--bytes', '4096'], { uid: 1000 });
    say(`   app-a asked for ${b.ip}:8080; the kernel connected it to ${r.peer} (getpeername)`);
    say(`   echo came back intact: ${r.intact}`);

    step(6, 'What the sidecars saw (their access logs)');
    const out = await sidecarA.waitForLine(accessMatching((x) => x.direction === 'outbound' && x.src === r.local));
    const inn = await sidecarB.waitForLine(accessMatching((x) => x.direction === 'inbound' && x.dst === `${b.ip}:8080`));
    say(`   sidecar(app-a): ${out.replace(/^\S+ /, '')}`);
    say(`   sidecar(app-b): ${inn.replace(/^\S+ /, '')}`);

    step(7, 'BPF counters (node-wide, summed over CPUs)');
    for (const [name, value] of Object.entries(dp.counters())) {
      if (value > 0n) say(`   ${counterKey(name as never).padEnd(30)} ${value}`);
    }

    say('\n\x1b[1mSummary\x1b[0m');
    say(`   app-a -> sidecar(app-a) :15001 -> sidecar(app-b) :15003 -> app-b :8080`);
    say('   redirected at connect() by cgroup/connect4, original destination from getsockopt(SO_ORIGINAL_DST),');
    say('   app<->sidecar bytes spliced by sk_msg on a sockhash. Tearing down.');
  } finally {
    await cleanup();
  }
  say('   done: no namespaces, cgroups or pins left behind.');
}

main().catch((e: Error) => {
  process.stderr.write(`demo failed: ${e.message}\n`);
  process.exit(1);
});
