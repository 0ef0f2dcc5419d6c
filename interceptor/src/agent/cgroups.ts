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

/** Where the kubelet puts a pod's cgroup, for each QoS class and cgroup driver, below `root`. */
function wellKnown(root: string, uid: string): string[] {
  const u = uid.replace(/-/g, '_');
  const out: string[] = [];
  for (const base of ['', 'kubepods']) {
    out.push(path.join(root, base, `pod${uid}`));
    for (const qos of ['burstable', 'besteffort']) out.push(path.join(root, base, qos, `pod${uid}`));
  }
  for (const base of ['', 'kubepods.slice']) {
    out.push(path.join(root, base, `kubepods-pod${u}.slice`));
    for (const qos of ['burstable', 'besteffort']) out.push(path.join(root, base, `kubepods-${qos}.slice`, `kubepods-${qos}-pod${u}.slice`));
  }
  return out;
}

/**
 * The kubelet's well-known paths first (constant time, whatever the pod
 * count), then breadth-first, at most `depth` levels below root.
 */
export function findPodCgroup(root: string, uid: string, depth = 3): string | undefined {
  const known = wellKnown(root, uid).find((p) => fs.existsSync(p));
  if (known) return known;
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
