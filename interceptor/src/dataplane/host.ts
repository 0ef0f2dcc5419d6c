/**
 * Facts about the node that the dataplane depends on: where cgroup2 is
 * mounted, whether bpffs is, and which BPF features the kernel has. Each
 * missing piece becomes one error that names it and says what to do.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Helper, ProgType, native } from '../../../native';

export class HostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostError';
  }
}

interface Mount {
  mountPoint: string;
  fsType: string;
  /** The directory of the filesystem that is mounted there ('/' unless a subtree is bind-mounted). */
  root: string;
}

export function parseMountinfo(text: string): Mount[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
      const [left, right] = line.split(' - ');
      const fields = left.split(' ');
      const decode = (s: string) => s.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
      return { mountPoint: decode(fields[4]), fsType: (right ?? '').split(' ')[0], root: decode(fields[3]) };
    });
}

/**
 * The cgroup2 mount: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified
 * on a hybrid one. Read from mountinfo, never guessed.
 */
export function findCgroup2Mount(mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): string {
  const mounts = parseMountinfo(mountinfo).filter((m) => m.fsType === 'cgroup2');
  if (mounts.length === 0) {
    throw new HostError(
      'no cgroup2 filesystem is mounted: Switchyard attaches its socket programs to cgroup v2. ' +
        'Boot with systemd.unified_cgroup_hierarchy=1 or mount one: mount -t cgroup2 none /sys/fs/cgroup/unified',
    );
  }
  return (mounts.find((m) => m.mountPoint === '/sys/fs/cgroup') ?? mounts[0]).mountPoint;
}

/**
 * The cgroup that the cgroup2 mount shows as its top: '/' for the whole
 * hierarchy, a deeper path when a subtree is bind-mounted there (a node
 * whose cgroups are a slice of the machine's, as in kind or the lab).
 */
export function cgroup2MountRoot(mount: string, mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): string {
  const m = parseMountinfo(mountinfo)
    .filter((x) => x.fsType === 'cgroup2' && x.mountPoint === mount)
    .pop();
  const root = m?.root ?? '/';
  if (root.startsWith('/..')) {
    throw new HostError(`the cgroup2 mount ${mount} starts outside this process's cgroup namespace (${root}): run the agent in the host's cgroup namespace`);
  }
  return root;
}

/**
 * Depth of a cgroup below the cgroup2 root (root = 0), as
 * bpf_get_current_ancestor_cgroup_id counts: the depth of the mount's own
 * top plus the depth below the mount.
 */
export function cgroupLevel(cgroupPath: string, mount = findCgroup2Mount(), mountRoot = cgroup2MountRoot(mount)): number {
  const rel = path.relative(mount, path.resolve(cgroupPath));
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new HostError(`${cgroupPath} is not inside the cgroup2 mount ${mount}`);
  }
  const depth = (p: string) => p.split('/').filter(Boolean).length;
  return depth(mountRoot) + (rel === '' ? 0 : rel.split(path.sep).length);
}

/**
 * Makes sure the pin root's parent is a bpffs, mounting one at /sys/fs/bpf
 * when the pin root lives there and nothing is mounted yet.
 */
export function ensureBpffs(pinRoot: string, mountPoint = '/sys/fs/bpf'): void {
  const n = native();
  const parent = path.dirname(path.resolve(pinRoot));
  if (fs.existsSync(parent) && n.isBpffs(parent)) return;
  if (!path.resolve(pinRoot).startsWith(mountPoint + '/')) {
    throw new HostError(
      `the pin root ${pinRoot} is not on a bpffs: choose a path under ${mountPoint}, or mount one with 'mount -t bpf bpf ${parent}'`,
    );
  }
  if (!n.isBpffs(mountPoint)) {
    try {
      fs.mkdirSync(mountPoint, { recursive: true });
      execFileSync('mount', ['-t', 'bpf', 'bpf', mountPoint], { stdio: 'pipe' });
    } catch (e) {
      throw new HostError(
        `bpffs is not mounted at ${mountPoint} and mounting it failed (${(e as Error).message.trim()}): ` +
          `run 'mount -t bpf bpf ${mountPoint}' as root, or give the agent CAP_SYS_ADMIN and a hostPath mount of ${mountPoint}`,
      );
    }
  }
  fs.mkdirSync(parent, { recursive: true });
}

/** Everything the programs use, with the kernel that first offered it. */
const REQUIRED: { type: ProgType; helper?: Helper; what: string; since: string }[] = [
  { type: 'cgroup_sock_addr', what: 'the cgroup connect4/connect6 hooks', since: '4.17' },
  { type: 'sock_ops', what: 'the cgroup sock_ops hook', since: '4.13' },
  { type: 'sk_msg', what: 'sk_msg programs on a sockhash', since: '4.18' },
  { type: 'cgroup_sockopt', what: 'the cgroup getsockopt hook', since: '5.3' },
  { type: 'sched_cls', what: 'tc (cls_bpf) programs', since: '4.1' },
  { type: 'cgroup_sock_addr', helper: 'get_netns_cookie', what: 'bpf_get_netns_cookie in connect hooks', since: '5.7' },
  { type: 'cgroup_sock_addr', helper: 'get_current_ancestor_cgroup_id', what: 'bpf_get_current_ancestor_cgroup_id in connect hooks', since: '5.7' },
  { type: 'sock_ops', helper: 'get_netns_cookie', what: 'bpf_get_netns_cookie in sock_ops', since: '5.15' },
  { type: 'sk_msg', helper: 'get_netns_cookie', what: 'bpf_get_netns_cookie in sk_msg', since: '5.15' },
  { type: 'cgroup_sockopt', helper: 'get_netns_cookie', what: 'bpf_get_netns_cookie in getsockopt', since: '5.8' },
];

/**
 * How connect4/6 hand the original destination to sock_ops (bpf/headers/handoff.h):
 * in the connecting task's local storage where connect and sock_ops programs
 * may use it, else through an LRU hash keyed by socket cookie.
 */
export type OrigdstHandoff = 'task-storage' | 'socket-cookie';

export function origdstHandoff(probe: FeatureProbe = kernelProbe): OrigdstHandoff {
  const needs: [ProgType, Helper][] = [
    ['cgroup_sock_addr', 'task_storage_get'],
    ['cgroup_sock_addr', 'get_current_task_btf'],
    ['sock_ops', 'task_storage_get'],
    ['sock_ops', 'get_current_task_btf'],
  ];
  return needs.every(([type, helper]) => probe(type, helper)) ? 'task-storage' : 'socket-cookie';
}

/** Answers whether the kernel has a program type, or a helper within one. */
export type FeatureProbe = (type: ProgType, helper?: Helper) => boolean;

export const kernelProbe: FeatureProbe = (type, helper) =>
  helper ? native().probeHelper(type, helper) : native().probeProgType(type);

/** Every kernel feature the programs use, and whether this kernel has it. */
export function kernelFeatures(probe: FeatureProbe = kernelProbe): { what: string; since: string; ok: boolean }[] {
  return REQUIRED.map((r) => ({ what: r.what, since: r.since, ok: probe(r.type, r.helper) }));
}

/** Throws one HostError naming every missing kernel feature. */
export function checkKernelFeatures(probe: FeatureProbe = kernelProbe): void {
  const missing = REQUIRED.filter((r) => !probe(r.type, r.helper));
  if (missing.length) {
    throw new HostError(
      `this kernel lacks ${missing.map((m) => `${m.what} (Linux ${m.since}+)`).join(', ')}; ` +
        'Switchyard needs Linux 5.15 or later with BPF and cgroup v2',
    );
  }
}
