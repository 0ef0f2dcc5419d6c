/** Runs once before all tests: removes what crashed earlier runs left behind. */
import { sweepStaleLabs } from '../lab/src/sweep';

export default function globalSetup(): void {
  if (process.getuid?.() !== 0) return;
  const removed = sweepStaleLabs();
  if (removed.length) process.stderr.write(`removed leftovers of earlier test runs: ${removed.join(', ')}\n`);
}
