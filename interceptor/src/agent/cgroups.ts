/**
 * Pod cgroups as the kubelet names them, found by pod UID:
 *   cgroupfs: <root>/kubepods/burstable/pod<uid>
 *   systemd:  <root>/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice
 */
import * as fs from 'fs';
import * as path from 'path';

function matches(name: string, uid: string): boolean {
  const plain = `pod${uid}`;
  const systemd = `pod${uid.replace(/-/g, '_')}`;
  return name === plain || name.endsWith(`-${systemd}.slice`) || name === `${systemd}.slice`;
}

/** Breadth-first, at most `depth` levels below root. */
export function findPodCgroup(root: string, uid: string, depth = 3): string | undefined {
  let level = [root];
  for (let d = 0; d <= depth && level.length; d++) {
    const next: string[] = [];
    for (const dir of level) {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const p = path.join(dir, e.name);
        if (matches(e.name, uid)) return p;
        next.push(p);
      }
    }
    level = next;
  }
  return undefined;
}

/** Any process in the cgroup or its children (containers), to reach the pod's netns through /proc. */
export function anyPid(cgroup: string): number | undefined {
  const stack = [cgroup];
  while (stack.length) {
    const dir = stack.pop()!;
    try {
      const pid = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').find(Boolean);
      if (pid) return Number(pid);
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) stack.push(path.join(dir, e.name));
    } catch {
      /* raced with removal */
    }
  }
  return undefined;
}
