/**
 * What this node offers the dataplane and how the agent found it, for
 * `switchyard check` and `kubectl switchyard check` (GET /v1/node): the
 * kernel and its BTF, the cgroup2 mount, bpffs, every BPF feature the
 * programs use (the same probes the agent ran before loading), the CNI
 * chain the runtime reads, and the decision monitor's state.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { native } from '../../../native';
import { findCgroup2Mount, kernelFeatures } from '../dataplane/host';
import type { Dataplane } from '../dataplane/dataplane';
import { activeConfig } from './cni-install';
import type { DecisionMonitor } from './monitor';
import type { NodeReport } from '../../../api/agent-wire';

function cniChain(confDir: string): NodeReport['cni'] {
  try {
    const file = activeConfig(confDir);
    if (!file) return { confDir, error: fs.existsSync(confDir) ? 'no CNI configuration file' : `${confDir} is not mounted into the agent` };
    const conf = JSON.parse(fs.readFileSync(file, 'utf8'));
    const plugins = Array.isArray(conf.plugins) ? conf.plugins.map((p: { type?: string }) => String(p.type)) : [String(conf.type)];
    return { confDir, file: path.basename(file), plugins };
  } catch (e) {
    return { confDir, error: (e as Error).message };
  }
}

export function nodeReport(node: string, pinRoot: string, cniConfDir: string, dp: Dataplane, monitor: DecisionMonitor): NodeReport {
  let cgroup: NodeReport['cgroup'];
  try {
    const mount = findCgroup2Mount();
    cgroup = { mount, mode: mount === '/sys/fs/cgroup' ? 'unified' : 'hybrid' };
  } catch (e) {
    cgroup = { error: (e as Error).message };
  }
  const bpffs = path.dirname(pinRoot);
  return {
    node,
    kernel: os.release(),
    btf: fs.existsSync('/sys/kernel/btf/vmlinux'),
    cgroup,
    bpffs: { path: bpffs, mounted: native().isBpffs(bpffs) },
    features: kernelFeatures(),
    origdstHandoff: dp.handoff,
    cni: cniChain(cniConfDir),
    monitor: { enabled: dp.monitorEnabled(), watching: monitor.watching, lost: String(dp.monitorLost()) },
  };
}
