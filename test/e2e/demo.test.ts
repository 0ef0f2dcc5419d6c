/**
 * The main job (README's first command runs `node dist/lab/src/demo.js`
 * after installing): it builds the images, starts two real nodes, installs
 * with kubectl apply -k, and shows traffic through both sidecars on the same
 * node and across; a second run works too; Ctrl-C in the middle leaves
 * nothing behind (netns, cgroups in every hierarchy, node mount points, run
 * directory, control plane and node processes).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import { controlPlaneMissing } from '../../lab/src/controlplane';
import { realClusterMissing } from '../../lab/src/realcluster';
import { gate, kernelTestBlocker } from '../helpers/kernel';
import { distScript } from '../../lab/src/netlab';
import { cgroupMounts, labsWithNodes } from '../../lab/src/sweep';
import { Proc } from '../../lab/src/proc';

const lab = gate('e2e demo test', controlPlaneMissing() ?? realClusterMissing() ?? kernelTestBlocker());

/** Host paths the nodes bind over; the demo creates the missing ones and must remove them. */
const NODE_MOUNT_POINTS = ['/var/lib/kubelet', '/run/containerd', '/etc/cni/net.d', '/opt/cni/bin', '/etc/kubernetes', '/opt/containerd'];
const existingBefore = new Set(NODE_MOUNT_POINTS.filter((p) => fs.existsSync(p)));

/** What a demo process (by pid) could have left: names carry their owner's pid. */
function leftovers(pid: number, controlPlaneDir: string): string[] {
  const tag = `sylab-${pid}p`;
  const found: string[] = [];
  for (const l of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n')) if (l.startsWith(tag)) found.push(`netns ${l}`);
  const dirs = [['pins', '/sys/fs/bpf'], ['run dir', '/run/switchyard-lab'], ...cgroupMounts().map((m) => ['cgroup', m.mount])];
  for (const [where, dir] of dirs) {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (e.startsWith(tag)) found.push(`${where} ${dir}/${e}`);
  }
  // Mount points the nodes made are removed by the last lab with nodes to stop (netlab.ts).
  if (labsWithNodes().length === 0) for (const p of NODE_MOUNT_POINTS) if (fs.existsSync(p) && !existingBefore.has(p)) found.push(`host mount point ${p}`);
  if (controlPlaneDir && fs.existsSync(controlPlaneDir)) found.push(`control plane dir ${controlPlaneDir}`);
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    let cmd = '';
    try {
      cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    // The control plane; the nodes' processes all live in the lab's cgroups, whose removal is checked above.
    if (controlPlaneDir && cmd.includes(controlPlaneDir)) found.push(`process ${p}: ${cmd.split('\0').slice(0, 2).join(' ')}`);
  }
  return found;
}

const controlPlaneDirOf = (lines: string[]) => /kubeconfig (\/\S+)\/admin\.kubeconfig/.exec(lines.join('\n'))?.[1] ?? '';

lab.describe('the demo (main job)', () => {
  beforeAll(() => lab.require());

  test('runs to the end, shows requests through both sidecars on the same node and across, and removes everything', async () => {
    const demo = Proc.start('demo', [process.execPath, distScript('lab/src/demo.js')]);
    expect(await demo.wait()).toBe(0);
    const out = demo.lines.join('\n');
    expect(demo.stderr).toBe('');
    // Installed as users install: the DaemonSet on both nodes, the webhook Deployment behind its Service.
    expect(out).toMatch(/daemon set "switchyard-interceptor" successfully rolled out/);
    expect(out).toMatch(/deployment "switchyard-webhook" successfully rolled out/);
    expect(out.match(/switchyard-interceptor-\S+ +1\/1 +Running +0 .* lab-node[01]/g)).toHaveLength(2);
    expect(out).toMatch(/msg="switchyard-cni installed in the CNI configuration"/);
    // Three pods injected (their webhook log lines) and registered by the agents (their log lines), counted per node.
    expect(out.match(/msg="pod injected" namespace=demo/g)).toHaveLength(3);
    expect(out.match(/msg="pod registered" pod=demo\//g)).toHaveLength(3);
    const registered = [...out.matchAll(/(\d+) pods registered; node:/g)].map((m) => Number(m[1]));
    expect(registered.reduce((a, b) => a + b, 0)).toBe(3);
    // 2 requests via the Service, 1 to the app-b on app-a's node, 1 across.
    expect(out.match(/GET http:\/\/\S+ status=200 body="hello from app-b-/g)).toHaveLength(4);
    expect(out).toContain('same node, other node');
    expect(out).toMatch(/outbound src=127\.0\.0\.1:\d+ dst=10\.96\.\d+\.\d+:80 .*result=ok/);
    // Inbound at app-b's sidecars from app-a's pod IP: one on each node (the subnets differ).
    const inbound = [...out.matchAll(/inbound src=(10\.244\.\d+)\.\d+:\d+ dst=(10\.244\.\d+)\.\d+:8080 .*result=ok/g)];
    expect(new Set(inbound.map((m) => m[2])).size).toBe(2);
    expect(new Set(inbound.map((m) => m[1])).size).toBe(1);
    expect(out).toMatch(/demo\/app-b +10\.96\.\d+\.\d+:80\/TCP +10\.244\.\d+\.\d+:8080,10\.244\.\d+\.\d+:8080/);
    // The plugin tells the same story through the apiserver.
    expect(out).toContain('$ kubectl switchyard check\n');
    expect(out).toContain('All checks passed.');
    expect(out).toMatch(/demo\/app-a-\S+: injected, registered on lab-node\d/);
    expect(out).toContain('Teardown:');
    expect(leftovers(demo.pid, controlPlaneDirOf(demo.lines))).toEqual([]);
  }, 300_000);

  test('a second run works the same, and Ctrl-C with pods running removes everything', async () => {
    const demo = Proc.start('demo', [process.execPath, distScript('lab/src/demo.js'), '--keep']);
    await demo.waitForLine((l) => l.startsWith('7. Requests'), 240_000);
    const cpDir = controlPlaneDirOf(demo.lines);
    expect(cpDir).not.toBe('');
    process.kill(demo.pid, 'SIGINT');
    expect(await demo.wait()).toBe(130);
    expect(demo.stderr).toContain('SIGINT: removing the lab');
    expect(leftovers(demo.pid, cpDir)).toEqual([]);
  }, 300_000);
});
