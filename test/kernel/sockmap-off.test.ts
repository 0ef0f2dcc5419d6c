/**
 * sockmapAcceleration: false keeps interception exactly as it is but leaves
 * the app <-> sidecar hop on TCP loopback: no socket enters the sockhash
 * (one there pays for tcp_bpf's psock on every call with nothing to splice),
 * and no message is redirected by sk_msg.
 */
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { native } from '../../native';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, Pod } from '../../lab/src/netlab';

describeKernel('sockmap acceleration off', () => {
  let lab: NetLab;
  let dp: Dataplane;
  let client: Pod, server: Pod;

  beforeAll(async () => {
    requireKernel();
    lab = new NetLab();
    const node = lab.addNode('node', '10.76.0');
    client = lab.addPod(node, 'client');
    server = lab.addPod(node, 'server');
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot, sockmapAcceleration: false });
    dp.registerPod({ netnsPath: client.netnsPath, cgroupPath: client.cgroup, ips: [client.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
    await Promise.all([lab.sidecar(client), lab.server(server, [8080])]);
  });

  afterAll(async () => {
    dp?.close();
    await lab?.cleanup();
  });

  test('traffic is intercepted and intact, no socket enters the sockhash, and sk_msg redirects nothing', async () => {
    const before = dp.counters();
    const r = await lab.run(client, 'test/fixtures/client.js', ['--host', server.ip, '--port', '8080', '--pingpong', '20', '--seed', '3'], { uid: 1000 });
    const after = dp.counters();
    expect(r).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });
    expect(after.SY_C_CONNECT_REDIRECTED_OUTBOUND - before.SY_C_CONNECT_REDIRECTED_OUTBOUND).toBe(1n);
    expect(after.SY_C_SKMSG_REDIRECTED - before.SY_C_SKMSG_REDIRECTED).toBe(0n);
    expect(after.SY_C_SOCKMAP_INSERTED - before.SY_C_SOCKMAP_INSERTED).toBe(0n);
    expect(dp.mapEntries('sy_sock_addr')).toBe(0); // written with every sockhash insert
    expect(dp.pod(native().netnsCookie(client.netnsPath))?.sockmap).toBe(false);
  });
});
