/**
 * Crash injection for recovery tests, after etcd's gofail: when
 * SWITCHYARD_FAILPOINT names the point a process reaches, it SIGKILLs
 * itself there, leaving exactly the state a crash at that point leaves.
 * Unset (always, in production) it costs one comparison.
 */
const armed = process.env.SWITCHYARD_FAILPOINT;

export function failpoint(point: string): void {
  if (armed !== undefined && armed === point) process.kill(process.pid, 'SIGKILL');
}
