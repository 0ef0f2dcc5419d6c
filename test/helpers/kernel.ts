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

/**
 * Tests that need something of the machine: skipped outside CI with a message
 * naming what is missing, failing in CI (call require() in beforeAll).
 */
export function gate(what: string, blocker: string | null | undefined): { describe: jest.Describe; require(): void } {
  if (blocker && !process.env.CI) process.stderr.write(`skipping ${what}: ${blocker}\n`);
  return {
    describe: blocker && !process.env.CI ? describe.skip : describe,
    require(): void {
      if (blocker) throw new Error(`${what} cannot run: ${blocker} (CI requires them)`);
    },
  };
}

const kernel = gate('kernel tests', kernelTestBlocker());

/** describe() for kernel tests: skipped outside CI when the machine cannot run them; failing in CI. */
export const describeKernel: jest.Describe = kernel.describe;

/** Call in beforeAll: turns a missing prerequisite into a failure under CI. */
export const requireKernel = kernel.require;
