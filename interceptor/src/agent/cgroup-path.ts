/**
 * `cgroupPath: auto`: the kubelet's kubepods cgroup, found rather than
 * configured. It is `kubepods.slice` (systemd driver) or `kubepods`
 * (cgroupfs driver) at the top of the cgroup2 mount, which is
 * /sys/fs/cgroup on a pure cgroup v2 node and /sys/fs/cgroup/unified on a
 * hybrid one. Anything else must be set explicitly.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../../../api/interception';
import { findCgroup2Mount } from '../dataplane/host';
import { AgentConfig } from './config';

export const KUBEPODS_CANDIDATES = ['kubepods.slice', 'kubepods'];

export function resolveCgroupPath(cfg: AgentConfig, mount = findCgroup2Mount()): AgentConfig {
  if (cfg.cgroupPath !== 'auto') return cfg;
  const found = KUBEPODS_CANDIDATES.map((c) => path.join(mount, c)).find((p) => fs.existsSync(p));
  if (!found) {
    throw new ConfigError('agent configuration', [
      `cgroupPath is auto, but neither ${KUBEPODS_CANDIDATES.map((c) => path.join(mount, c)).join(' nor ')} exists: set cgroupPath to the kubelet's kubepods cgroup (its cgroupRoot decides where)`,
    ]);
  }
  return { ...cfg, cgroupPath: found };
}
