/**
 * The socket-cookie hand-off (bpf/headers/handoff.h), which the agent picks
 * on kernels whose connect and sock_ops programs cannot use task storage.
 * This kernel can, so the build is forced here; dataplane.test.ts covers the
 * default. Same paths, same counters: outbound through the sidecar,
 * same-node inbound, and a connect that never establishes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { native } from '../../native';
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { CounterName } from '../../interceptor/src/dataplane/abi';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, Pod } from '../../lab/src/netlab';

describeKernel('original destination handed over by socket cookie (older kernels)', () => {
  let lab: NetLab;
  let dp: Dataplane;
  let client: Pod, server: Pod, lonely: Pod;

  const register = (pod: Pod) =>
    dp.registerPod({ netnsPath: pod.netnsPath, cgroupPath: pod.cgroup, ips: [pod.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' }).netnsCookie;
  const delta = async (fn: () => Promise<Record<string, unknown>>): Promise<[Record<string, unknown>, (c: CounterName) => bigint]> => {
    const before = dp.counters();
    const r = await fn();
    const after = dp.counters();
    return [r, (c) => after[c] - before[c]];
  };
  const cookieEntries = () => {
    const fd = native().mapOpen(path.join(lab.pinRoot, 'sy_origdst_by_cookie'));
    try {
      return native().mapKeys(fd).length;
    } finally {
      native().closeFd(fd);
    }
  };

  beforeAll(async () => {
    requireKernel();
    lab = new NetLab();
    const node = lab.addNode('node', '10.75.0');
    [client, server, lonely] = ['client', 'server', 'lonely'].map((n) => lab.addPod(node, n));
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot, origdstHandoff: 'socket-cookie' });
    register(client);
    register(server);
    await Promise.all([lab.sidecar(client), lab.sidecar(server), lab.server(server, [8080])]);
  });

  afterAll(async () => {
    dp?.close();
    await lab?.cleanup();
  });

  test('the cookie builds are loaded: their LRU map is pinned, the task storage map is not', () => {
    expect(dp.handoff).toBe('socket-cookie');
    expect(fs.existsSync(path.join(lab.pinRoot, 'sy_origdst_by_cookie'))).toBe(true);
    expect(fs.existsSync(path.join(lab.pinRoot, 'sy_origdst_pending'))).toBe(false);
  });

  test('app → its sidecar → the other pod\'s sidecar → app: both sidecars learn the original destination', async () => {
    const [r, d] = await delta(() => lab.run(client, 'test/fixtures/client.js', ['--host', server.ip, '--port', '8080', '--bytes', '100000'], { uid: 1000 }));
    expect(r).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });
    expect(d('SY_C_CONNECT_REDIRECTED_OUTBOUND')).toBe(1n);
    expect(d('SY_C_CONNECT_REDIRECTED_INBOUND')).toBe(1n);
    expect(d('SY_C_SOCKOPS_ORIGDST_MOVED')).toBe(2n);
    expect(d('SY_C_GETSOCKOPT_ANSWERED')).toBe(2n);
    expect(d('SY_C_GETSOCKOPT_MISS')).toBe(0n);
    expect(cookieEntries()).toBe(0); // taken at TCP_CONNECT_CB
  });

  test('a connect that never establishes leaves nothing behind, in the tuple map or the cookie map', async () => {
    const cookie = register(lonely);
    const [r, d] = await delta(() => lab.run(lonely, 'test/fixtures/client.js', ['--host', server.ip, '--port', '8080', '--timeout-ms', '5000'], { uid: 1000 }));
    expect(String(r.error)).toMatch(/ECONNREFUSED/);
    expect(d('SY_C_SOCKOPS_ORIGDST_MOVED')).toBe(1n);
    expect(d('SY_C_SOCKOPS_ORIGDST_CLEANED')).toBe(1n);
    expect(dp.connections().filter((c) => c.netnsCookie === cookie)).toEqual([]);
    expect(cookieEntries()).toBe(0);
  });
});
