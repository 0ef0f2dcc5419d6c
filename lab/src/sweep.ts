/**
 * Leftovers of lab runs whose process died before its cleanup (a kill -9, a
 * crashed test worker): netns, pins, run directories and cgroups (in every
 * hierarchy: real nodes make theirs in the v1 ones too) named after a pid
 * that is gone are removed; live labs are never touched. Also the host
 * mount points real nodes had to create, once no lab with nodes is left.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { LAB_PREFIX, LAB_RUN_ROOT } from './names';
import { sh } from './netlab';

/** A lab name's owner is gone (or it predates owner pids): its leftovers may go. */
export function isStale(name: string): boolean {
  if (!name.startsWith(`${LAB_PREFIX}-`)) return false;
  const m = new RegExp(`^${LAB_PREFIX}-(\\d+)p[0-9a-f]+`).exec(name);
  if (!m) return true;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false; // a running test file, demo or bench owns it
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Removes leftovers of labs whose process died before its cleanup; live labs are left alone. */
export function sweepStaleLabs(): string[] {
  const removed: string[] = [];
  let netns = '';
  try {
    netns = sh('ip', ['netns', 'list']);
  } catch {
    return removed;
  }
  for (const line of netns.split('\n')) {
    const name = line.split(' ')[0];
    if (isStale(name)) {
      sh('ip', ['netns', 'del', name]);
      removed.push(`netns ${name}`);
    }
  }
  for (const dir of fs.existsSync('/sys/fs/bpf') ? fs.readdirSync('/sys/fs/bpf') : []) {
    if (isStale(dir)) {
      Dataplane.removePins(path.join('/sys/fs/bpf', dir));
      removed.push(`pins ${dir}`);
    }
  }
  // The lab cluster's run directory (/run/switchyard-lab/sylab-<pid>p<id>: node directories, logs, certs).
  const runRoot = LAB_RUN_ROOT;
  for (const dir of fs.existsSync(runRoot) ? fs.readdirSync(runRoot) : []) {
    if (isStale(dir)) {
      fs.rmSync(path.join(runRoot, dir), { recursive: true, force: true });
      removed.push(`run dir ${dir}`);
    }
  }
  removeMadeMountPoints();
  // Every hierarchy: real lab nodes (kubenodes.ts) make their cgroups in the v1 ones too.
  for (const { mount, v2 } of cgroupMounts()) {
    for (const dir of fs.readdirSync(mount)) {
      if (!isStale(dir)) continue;
      const root = path.join(mount, dir);
      // A busy cgroup (its killed processes not reaped yet) is retried next run.
      if (removeCgroupTree(root, v2).length === 0) removed.push(`cgroup ${root}`);
    }
  }
  return removed;
}

/**
 * Kills every process anywhere in a cgroup tree (cgroup.kill on cgroup2, one
 * by one on v1) and removes its cgroups, children first. Returns those still
 * busy: killed processes leave their cgroup only once they are reaped.
 */
export function removeCgroupTree(root: string, v2: boolean): string[] {
  if (!fs.existsSync(root)) return [];
  if (v2 && fs.existsSync(path.join(root, 'cgroup.kill'))) fs.writeFileSync(path.join(root, 'cgroup.kill'), '1');
  const tree: string[] = [];
  const walk = (d: string) => {
    tree.push(d);
    for (const c of fs.readdirSync(d, { withFileTypes: true })) if (c.isDirectory()) walk(path.join(d, c.name));
  };
  walk(root);
  for (const cg of tree) {
    for (const pid of fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  const busy: string[] = [];
  for (const cg of tree.reverse()) {
    try {
      fs.rmdirSync(cg);
    } catch {
      busy.push(cg);
    }
  }
  return busy;
}

/**
 * Real lab nodes bind their own directories over fixed host paths
 * (/var/lib/kubelet, …) in their mount namespaces. The mount points they had
 * to create on the host are listed in MOUNT_POINTS_LIST (one list for all
 * labs: a lab may use a mount point another one made). They are removed,
 * deepest first and only while empty, once no live lab is left: removing one
 * would detach it from a running lab's nodes.
 */
export const MOUNT_POINTS_LIST = `${LAB_RUN_ROOT}/made-mount-points`;

export function recordMadeMountPoint(p: string): void {
  fs.mkdirSync(path.dirname(MOUNT_POINTS_LIST), { recursive: true });
  fs.appendFileSync(MOUNT_POINTS_LIST, `${p}\n`);
}

/** Run directories of live labs that have real nodes (their mount points are in use). */
export function labsWithNodes(): string[] {
  if (!fs.existsSync(LAB_RUN_ROOT)) return [];
  return fs.readdirSync(LAB_RUN_ROOT).filter((d) => d.startsWith(`${LAB_PREFIX}-`) && !isStale(d) && fs.existsSync(path.join(LAB_RUN_ROOT, d, 'nodes')));
}

export function removeMadeMountPoints(): void {
  if (!fs.existsSync(MOUNT_POINTS_LIST)) return;
  if (labsWithNodes().length) return;
  const list = [...new Set(fs.readFileSync(MOUNT_POINTS_LIST, 'utf8').split('\n').filter(Boolean))];
  for (const p of list.sort((a, b) => b.length - a.length)) {
    try {
      fs.rmdirSync(p);
    } catch {
      /* gone, or no longer empty: not ours to remove */
    }
  }
  fs.rmSync(MOUNT_POINTS_LIST);
}

/** Every cgroup hierarchy mounted here (v1 controllers and the v2 one), from mountinfo. */
export function cgroupMounts(): { mount: string; v2: boolean }[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .map((f) => ({ f, sep: f.indexOf('-') }))
    .filter(({ f, sep }) => sep > 0 && (f[sep + 1] === 'cgroup' || f[sep + 1] === 'cgroup2'))
    .map(({ f, sep }) => ({ mount: f[4], v2: f[sep + 1] === 'cgroup2' }));
}
