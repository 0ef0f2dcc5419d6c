import type { Helper, ProgType } from '../../../native';
import { origdstHandoff } from './host';

describe('the original-destination hand-off follows what the kernel offers', () => {
  const probe = (missing: [ProgType, Helper][]) => (type: ProgType, helper?: Helper) => !missing.some(([t, h]) => t === type && h === helper);

  test('task storage when connect and sock_ops programs may use it', () => {
    expect(origdstHandoff(probe([]))).toBe('task-storage');
  });

  test.each([
    [[['sock_ops', 'task_storage_get']]],
    [[['cgroup_sock_addr', 'task_storage_get']]],
    [[['cgroup_sock_addr', 'get_current_task_btf']]],
    [[['sock_ops', 'get_current_task_btf']]],
  ] as [ProgType, Helper][][][])('socket cookie when %j is missing', (missing) => {
    expect(origdstHandoff(probe(missing))).toBe('socket-cookie');
  });
});
