/**
 * The lab's own safety: a sweep removes what dead runs left behind and never
 * touches a lab whose process is still running (a parallel test file, the
 * demo, a benchmark).
 */
import { spawn, spawnSync } from 'child_process';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { LAB_PREFIX, sh } from '../../lab/src/netlab';
import { sweepStaleLabs } from '../../lab/src/sweep';

describeKernel('lab sweep', () => {
  test('removes a dead owner\'s netns and keeps a live owner\'s', () => {
    requireKernel();
    const dead = spawnSync('true').pid!; // exited: its pid is free
    const live = spawn('sleep', ['60']);
    const deadNs = `${LAB_PREFIX}-${dead}p0000-x`;
    const liveNs = `${LAB_PREFIX}-${live.pid}p0000-y`;
    try {
      sh('ip', ['netns', 'add', deadNs]);
      sh('ip', ['netns', 'add', liveNs]);
      const removed = sweepStaleLabs();
      expect(removed).toContain(`netns ${deadNs}`);
      expect(removed).not.toContain(`netns ${liveNs}`);
      expect(sh('ip', ['netns', 'list'])).toContain(liveNs);
    } finally {
      live.kill('SIGKILL');
      for (const ns of [deadNs, liveNs]) spawnSync('ip', ['netns', 'del', ns]);
    }
  });
});
