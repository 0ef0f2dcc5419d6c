/**
 * Whether kernel tests can run here. In CI they must: a missing prerequisite
 * fails the run. Elsewhere they are skipped with a message naming what is
 * missing.
 */
import * as fs from 'fs';
import { native } from '../../native';
import { findCgroup2Mount } from '../../interceptor/src/dataplane/host';

export function kernelTestBlocker(): string | null {
  if (process.getuid?.() !== 0) return 'kernel tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)';
  try {
    findCgroup2Mount();
  } catch (e) {
    return (e as Error).message;
  }
  if (!fs.existsSync('/usr/sbin/ip') && !fs.existsSync('/usr/bin/ip') && !fs.existsSync('/sbin/ip')) {
    return 'iproute2 (ip) is not installed';
  }
  try {
    if (!native().probeProgType('cgroup_sockopt')) return 'this kernel lacks the cgroup getsockopt hook';
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

const blocker = kernelTestBlocker();
if (blocker && !process.env.CI) {
  process.stderr.write(`skipping kernel tests: ${blocker}\n`);
}

/** describe() for kernel tests: skipped outside CI when the machine cannot run them; failing in CI. */
export const describeKernel: jest.Describe = blocker && !process.env.CI ? describe.skip : describe;

/** Call in beforeAll: turns a missing prerequisite into a failure under CI. */
export function requireKernel(): void {
  if (blocker) throw new Error(`kernel tests cannot run: ${blocker} (CI requires them)`);
}
