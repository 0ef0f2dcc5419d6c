import type { NodeReport } from '../api/agent-wire';
import { failed, formatChecks, nodeChecks } from './checks';

const healthy: NodeReport = {
  node: 'n1',
  kernel: '6.1.0-18-amd64',
  btf: true,
  cgroup: { mount: '/sys/fs/cgroup', mode: 'unified' },
  bpffs: { path: '/sys/fs/bpf', mounted: true },
  features: [
    { what: 'the cgroup connect4/connect6 hooks', since: '4.17', ok: true },
    { what: 'bpf_get_netns_cookie in sock_ops', since: '5.15', ok: true },
  ],
  origdstHandoff: 'task-storage',
  cni: { confDir: '/host/etc/cni/net.d', file: '10-calico.conflist', plugins: ['calico', 'portmap', 'switchyard-cni'] },
  monitor: { enabled: false, watching: 0, lost: '0' },
};

describe('node checks', () => {
  test('a healthy node is all ✓, one line per fact', () => {
    const checks = nodeChecks(healthy);
    expect(failed(checks)).toBe(false);
    expect(formatChecks(checks)).toBe(
      [
        '✓ kernel 6.1.0-18-amd64 (5.15 or later)',
        '✓ kernel BTF at /sys/kernel/btf/vmlinux',
        '✓ cgroup v2 at /sys/fs/cgroup (pure v2)',
        '✓ bpffs at /sys/fs/bpf',
        '✓ all 2 BPF hooks and helpers the programs use (origdst hand-off: task-storage)',
        '✓ CNI chain in 10-calico.conflist: calico → portmap → switchyard-cni',
        '',
      ].join('\n'),
    );
  });

  test.each([
    ['an old kernel', { kernel: '5.10.0' }, '✗ kernel 5.10.0 is older than 5.15'],
    ['no BTF', { btf: false }, '✗ no kernel BTF'],
    ['no cgroup2', { cgroup: { error: 'no cgroup2 mount' } }, '✗ cgroup v2: no cgroup2 mount'],
    ['no bpffs', { bpffs: { path: '/sys/fs/bpf', mounted: false } }, '✗ bpffs is not mounted at /sys/fs/bpf'],
    ['a missing helper', { features: [{ what: 'bpf_get_netns_cookie in sock_ops', since: '5.15', ok: false }] }, '✗ the kernel lacks bpf_get_netns_cookie in sock_ops'],
    ['switchyard-cni not last', { cni: { confDir: 'd', file: '10-x.conflist', plugins: ['switchyard-cni', 'calico'] } }, '✗ CNI chain in 10-x.conflist is switchyard-cni → calico: switchyard-cni is not last'],
    ['no CNI file', { cni: { confDir: 'd', error: 'no CNI configuration file' } }, '✗ CNI configuration in d: no CNI configuration file'],
  ])('%s fails with what to do', (_name, change, line) => {
    const checks = nodeChecks({ ...healthy, ...change } as NodeReport);
    expect(failed(checks)).toBe(true);
    const text = formatChecks(checks);
    expect(text).toContain(line);
    expect(text).toMatch(/✗ .*\n {4}\S/); // the fix, indented under it
  });
});
