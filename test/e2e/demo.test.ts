/**
 * The main job (README's first command runs `node dist/lab/src/demo.js`
 * after installing): it runs to the end and shows traffic through both
 * sidecars; a second run works too; Ctrl-C in the middle leaves nothing
 * behind (netns, cgroups, pins, run directory, control plane processes).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import { controlPlaneMissing } from '../../lab/src/controlplane';
import { findCgroup2Mount } from '../../interceptor/src/dataplane/host';
import { gate, kernelTestBlocker } from '../helpers/kernel';
import { distScript } from '../../lab/src/netlab';
import { Proc } from '../../lab/src/proc';

const lab = gate('e2e demo test', controlPlaneMissing() ?? kernelTestBlocker());

/** What a demo process (by pid) could have left: names carry their owner's pid. */
function leftovers(pid: number, controlPlaneDir: string): string[] {
  const tag = `sylab-${pid}p`;
  const found: string[] = [];
  for (const l of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n')) if (l.startsWith(tag)) found.push(`netns ${l}`);
  for (const [where, dir] of [['pins', '/sys/fs/bpf'], ['cgroup', findCgroup2Mount()], ['run dir', '/run/switchyard-lab']]) {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (e.startsWith(tag)) found.push(`${where} ${e}`);
  }
  if (controlPlaneDir && fs.existsSync(controlPlaneDir)) found.push(`control plane dir ${controlPlaneDir}`);
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    let cmd = '';
    try {
      cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (controlPlaneDir && cmd.includes(controlPlaneDir)) found.push(`process ${p}: ${cmd.split('\0').slice(0, 2).join(' ')}`);
  }
  return found;
}

const controlPlaneDirOf = (lines: string[]) => /kubeconfig (\/\S+)\/admin\.kubeconfig/.exec(lines.join('\n'))?.[1] ?? '';

lab.describe('the demo (main job)', () => {
  beforeAll(() => lab.require());

  test('runs to the end, shows the request through both sidecars, and removes everything', async () => {
    const demo = Proc.start('demo', [process.execPath, distScript('lab/src/demo.js')]);
    expect(await demo.wait()).toBe(0);
    const out = demo.lines.join('\n');
    expect(demo.stderr).toBe('');
    expect(out).toMatch(/3 pods registered/);
    expect(out.match(/GET http:\/\/\S+ status=200 body="hello from app-b-/g)).toHaveLength(3);
    expect(out).toMatch(/outbound src=127\.0\.0\.1:\d+ dst=10\.96\.\d+\.\d+:80 .*result=ok/);
    expect(out).toMatch(/inbound src=10\.244\.0\.\d+:\d+ dst=10\.244\.0\.\d+:8080 .*result=ok/);
    expect(out).toMatch(/demo\/app-b +10\.96\.\d+\.\d+:80\/TCP +10\.244\.0\.\d+:8080,10\.244\.0\.\d+:8080/);
    expect(out).toContain('Teardown:');
    expect(leftovers(demo.pid, controlPlaneDirOf(demo.lines))).toEqual([]);
  }, 240_000);

  test('a second run works the same, and Ctrl-C with pods running removes everything', async () => {
    const demo = Proc.start('demo', [process.execPath, distScript('lab/src/demo.js'), '--keep']);
    await demo.waitForLine((l) => l.startsWith('6. A request'), 180_000);
    const cpDir = controlPlaneDirOf(demo.lines);
    expect(cpDir).not.toBe('');
    process.kill(demo.pid, 'SIGINT');
    expect(await demo.wait()).toBe(130);
    expect(demo.stderr).toContain('SIGINT: removing the lab');
    expect(leftovers(demo.pid, cpDir)).toEqual([]);
  }, 240_000);
});
