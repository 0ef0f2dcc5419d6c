/**
 * Connect-time Service load balancing on the real kernel. Services and
 * EndpointSlices in the API's JSON shape go through the agent's controller
 * (reflectors against a list/watch server) into the maps; clients are real
 * sockets in pod network namespaces.
 *
 *   node (10.75.0.0/24)
 *   ├── client   not registered: load balancing only
 *   ├── mesh     registered, reference sidecar: the redirect wins, the sidecar's upstream is balanced
 *   └── be1..be3 named-server: TCP 8080 answers its name, UDP 5353 replies with it
 *   Service apps/web: ClusterIP 10.96.0.10, 80/TCP → 8080, 53/UDP → 5353
 */
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { KubeClient } from '../../lib/kube/client';
import { kubeconfigForServer } from '../../lib/kube/config';
import { ServiceLoadBalancer } from '../../interceptor/src/lb/controller';
import { accessMatching } from '../helpers/access-log';
import { FakeApiServer, FakeCluster } from '../../lab/src/fake-apiserver';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, Pod } from '../../lab/src/netlab';
import { Proc, waitUntil } from '../../lab/src/proc';

const CLUSTER_IP = '10.96.0.10';
const LB_CLIENT = 'test/fixtures/lb-client.js';

describeKernel('Service load balancing at the socket layer', () => {
  let lab: NetLab;
  let dp: Dataplane;
  let cluster: FakeCluster;
  let services: FakeApiServer;
  let slices: FakeApiServer;
  let client: KubeClient;
  let lb: ServiceLoadBalancer;
  let clientPod: Pod, mesh: Pod;
  const backends: Record<string, Pod> = {};
  let meshSidecar: Proc;
  const logs: string[] = [];

  const service = (extra: Record<string, unknown> = {}) => ({
    kind: 'Service',
    apiVersion: 'v1',
    metadata: { name: 'web', namespace: 'apps', uid: 'svc-web' },
    spec: {
      type: 'ClusterIP',
      clusterIP: CLUSTER_IP,
      clusterIPs: [CLUSTER_IP],
      ports: [
        { name: 'http', protocol: 'TCP', port: 80, targetPort: 'http' },
        { name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 },
      ],
      sessionAffinity: 'None',
      ...extra,
    },
  });

  const slice = (names: string[]) => ({
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: { name: 'web-abcde', namespace: 'apps', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: names.map((n) => ({ addresses: [backends[n].ip], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: 'apps', name: n } })),
    ports: [
      { name: 'http', protocol: 'TCP', port: 8080 },
      { name: 'dns', protocol: 'UDP', port: 5353 },
    ],
  });

  const programmed = (port = 80) => dp.services().find((s) => s.frontend.ip === CLUSTER_IP && s.frontend.port === port);
  const backendIps = (names: string[]) => names.map((n) => backends[n].ip).sort();
  /** Waits until the kernel holds exactly these backends: the update is acknowledged. */
  const acknowledged = (names: string[]) =>
    waitUntil(() => JSON.stringify(programmed()?.backends.map((b) => b.ip).sort() ?? null) === JSON.stringify(backendIps(names)), `backends ${names.join(',') || 'none'} programmed`);

  interface LbResult {
    names: Record<string, number>;
    peers: Record<string, number>;
    errors: Record<string, number>;
  }
  const run = async (pod: Pod, args: string[], uid = 1000) => (await lab.run(pod, LB_CLIENT, args, { uid })) as unknown as LbResult;

  beforeAll(async () => {
    requireKernel();
    lab = new NetLab();
    const node = lab.addNode('node', '10.75.0');
    clientPod = lab.addPod(node, 'client');
    mesh = lab.addPod(node, 'mesh');
    for (const n of ['be1', 'be2', 'be3']) backends[n] = lab.addPod(node, n);
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
    dp.registerPod({ netnsPath: mesh.netnsPath, cgroupPath: mesh.cgroup, ips: [mesh.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
    await Promise.all(
      Object.entries(backends).map(async ([n, p]) => {
        const s = lab.node(p, 'test/fixtures/named-server.js', ['--name', n, '--tcp', '8080', '--udp', '5353'], { uid: 1000 });
        await s.waitForJson((o) => o.event === 'ready');
      }),
    );
    meshSidecar = await lab.sidecar(mesh);

    cluster = new FakeCluster();
    services = cluster.add('/api/v1/services', 'ServiceList');
    slices = cluster.add('/apis/discovery.k8s.io/v1/endpointslices', 'EndpointSliceList');
    services.upsert(service());
    slices.upsert(slice(['be1', 'be2', 'be3']));
    client = new KubeClient(kubeconfigForServer(await cluster.start()));
    lb = new ServiceLoadBalancer(client, dp, (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`), (e) => logs.push(`watch error ${e.message}`));
    await lb.start();
  });

  afterAll(async () => {
    lb?.stop();
    client?.close();
    await cluster?.stop();
    dp?.close();
    await lab?.cleanup();
  });

  test('the controller programs a frontend per ClusterIP port from the Service and its EndpointSlice, and says so', async () => {
    await acknowledged(['be1', 'be2', 'be3']);
    expect(programmed(53)?.backends.map((b) => b.port)).toEqual([5353, 5353, 5353]);
    expect(programmed(80)?.backends.map((b) => b.port)).toEqual([8080, 8080, 8080]);
    expect(logs.some((l) => l.includes('service programmed') && l.includes('apps/web') && l.includes('10.96.0.10:80/TCP→3'))).toBe(true);
    expect(lb.status().find((s) => s.frontend === '10.96.0.10:80/TCP')).toMatchObject({ service: 'apps/web', backends: backendIps(['be1', 'be2', 'be3']).map((ip) => `${ip}:8080`) });
  });

  test('TCP: connects spread over the 3 backends, and getpeername() returns the ClusterIP', async () => {
    const before = programmed()!.translations;
    const r = await run(clientPod, ['--host', CLUSTER_IP, '--port', '80', '--count', '300']);
    expect(r.errors).toEqual({});
    expect(Object.keys(r.names).sort()).toEqual(['be1', 'be2', 'be3']);
    // Uniform choice: 100 each expected; 50..150 fails only with a broken picker (p < 1e-9 by chance).
    for (const n of Object.values(r.names)) {
      expect(n).toBeGreaterThanOrEqual(50);
      expect(n).toBeLessThanOrEqual(150);
    }
    expect(r.peers).toEqual({ [`${CLUSTER_IP}:80`]: 300 });
    expect(programmed()!.translations - before).toBe(300n);
  });

  test('UDP: each datagram reaches a backend, and the reply comes from the ClusterIP', async () => {
    const r = await run(clientPod, ['--host', CLUSTER_IP, '--port', '53', '--udp', '--count', '60']);
    expect(r.errors).toEqual({});
    expect(Object.keys(r.names).length).toBeGreaterThanOrEqual(2);
    expect(Object.keys(r.names).every((n) => n in backends)).toBe(true);
    expect(r.peers).toEqual({ [`${CLUSTER_IP}:53`]: 60 });
  });

  test('IPv6: a dual-stack Service balances [ClusterIP6]:80 over the IPv6 endpoints, TCP and UDP', async () => {
    const V6 = 'fd00:96::10';
    services.upsert(service({ clusterIPs: [CLUSTER_IP, V6], ipFamilies: ['IPv4', 'IPv6'] }));
    slices.upsert({
      ...slice([]),
      metadata: { name: 'web-v6', namespace: 'apps', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv6',
      endpoints: Object.values(backends).map((p) => ({ addresses: [p.ip6], conditions: { ready: true } })),
    });
    await waitUntil(() => dp.service({ ip: V6, port: 80, protocol: 'TCP' })?.backends.length === 3, 'IPv6 frontend programmed');
    const tcp = await run(clientPod, ['--host', V6, '--port', '80', '--count', '30']);
    expect(tcp.errors).toEqual({});
    expect(Object.keys(tcp.names).length).toBeGreaterThanOrEqual(2);
    expect(tcp.peers).toEqual({ [`${V6}:80`]: 30 });
    const udp = await run(clientPod, ['--host', V6, '--port', '53', '--udp', '--count', '20']);
    expect(udp.errors).toEqual({});
    expect(udp.peers).toEqual({ [`${V6}:53`]: 20 });
    services.upsert(service());
    slices.remove('web-v6');
    await waitUntil(() => dp.service({ ip: V6, port: 80, protocol: 'TCP' }) === null, 'IPv6 frontend removed');
  });

  test('sessionAffinity: ClientIP pins a client to one backend', async () => {
    services.upsert(service({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }));
    await waitUntil(() => programmed()?.affinityTimeoutSeconds === 60, 'affinity programmed');
    const r = await run(clientPod, ['--host', CLUSTER_IP, '--port', '80', '--count', '40']);
    expect(r.errors).toEqual({});
    expect(Object.values(r.names)).toEqual([40]);
    services.upsert(service());
    await waitUntil(() => programmed()?.affinityTimeoutSeconds === 0, 'affinity removed');
  });

  test('scaling 3 → 1 → 0 → 2 under a stream of connects: never a removed backend after the update, ECONNREFUSED at 0', async () => {
    const stream = lab.node(clientPod, LB_CLIENT, ['--host', CLUSTER_IP, '--port', '80', '--stream'], { uid: 1000 });
    const attempts = () => stream.json().filter((o) => o.event === 'attempt') as { tNs: string; tEndNs: string; name?: string; error?: string }[];
    // Each step's window: from the moment its update was seen in the kernel to the moment the next one was issued.
    // An attempt belongs to it only if it started and ended inside, since its connect() falls somewhere in between.
    const steps: { names: string[]; ackNs: bigint; issuedNs: bigint }[] = [];
    for (const names of [['be1', 'be2', 'be3'], ['be2'], [], ['be1', 'be3']]) {
      const issuedNs = process.hrtime.bigint();
      slices.upsert(slice(names));
      await acknowledged(names);
      const ackNs = process.hrtime.bigint();
      steps.push({ names, ackNs, issuedNs });
      await waitUntil(() => attempts().filter((a) => BigInt(a.tNs) > ackNs).length >= 20, `20 connects after scaling to ${names.length}`, 15_000);
    }
    stream.child.stdin!.end();
    await stream.wait();
    steps.forEach((step, i) => {
      const next = steps[i + 1]?.issuedNs;
      const during = attempts().filter((a) => BigInt(a.tNs) > step.ackNs && (next === undefined || BigInt(a.tEndNs) < next));
      expect(during.length).toBeGreaterThanOrEqual(20);
      if (step.names.length === 0) {
        expect(new Set(during.map((a) => a.error))).toEqual(new Set(['ECONNREFUSED']));
      } else {
        expect({ backends: step.names, failed: during.filter((a) => a.error).length }).toEqual({ backends: step.names, failed: 0 });
        expect(during.every((a) => step.names.includes(a.name!))).toBe(true);
      }
    });
    expect(programmed()!.noBackend).toBeGreaterThanOrEqual(20n);
  });

  test('no ready endpoint: terminating but still serving endpoints take the connects, until a ready one appears', async () => {
    const draining = slice(['be1', 'be2']);
    Object.assign(draining.endpoints[0].conditions, { ready: false, serving: true, terminating: true }); // be1: draining, still serving
    Object.assign(draining.endpoints[1].conditions, { ready: false, serving: false, terminating: true }); // be2: on its way out
    slices.upsert(draining);
    await acknowledged(['be1']);
    expect(logs.some((l) => l.includes('service programmed') && l.includes('10.96.0.10:80/TCP→1(terminating)'))).toBe(true);
    const during = await run(clientPod, ['--host', CLUSTER_IP, '--port', '80', '--count', '20']);
    expect(during.errors).toEqual({});
    expect(during.names).toEqual({ be1: 20 });
    const web = () => lb.status().find((x) => x.frontend === '10.96.0.10:80/TCP')!;
    expect(web()).toMatchObject({ backends: [`${backends.be1.ip}:8080`], terminating: true });
    slices.upsert(slice(['be1', 'be3']));
    await acknowledged(['be1', 'be3']);
    expect(web().terminating).toBeUndefined();
  });

  test('a mesh app: its sidecar sees the ClusterIP as the original destination, and the upstream is balanced', async () => {
    const deferred = dp.counters().SY_C_LB_MESH_DEFERRED;
    const r = await run(mesh, ['--host', CLUSTER_IP, '--port', '80', '--count', '30']);
    expect(r.errors).toEqual({});
    expect(r.peers).toEqual({ '127.0.0.1:15001': 30 }); // the app talks to its sidecar, as with iptables REDIRECT
    expect(Object.keys(r.names).length).toBeGreaterThanOrEqual(2); // the sidecar's connects were balanced
    expect(dp.counters().SY_C_LB_MESH_DEFERRED - deferred).toBe(30n);
    const seen = () => meshSidecar.lines.filter(accessMatching((a) => a.direction === 'outbound' && a.dst === `${CLUSTER_IP}:80`)).length;
    await waitUntil(() => seen() >= 30, 'sidecar access log lines with the ClusterIP as destination');
  });

  test('a mesh app that excludes the Service port or CIDR reaches a backend directly, without its sidecar', async () => {
    for (const interception of [{ excludeOutboundPorts: [80] }, { excludeOutboundCidrs: ['10.96.0.0/12'] }]) {
      dp.registerPod({ netnsPath: mesh.netnsPath, cgroupPath: mesh.cgroup, ips: [mesh.ip], interception: { ...DEFAULT_INTERCEPTION, ...interception }, ifname: 'eth0' });
      const before = dp.counters();
      const r = await run(mesh, ['--host', CLUSTER_IP, '--port', '80', '--count', '10']);
      const after = dp.counters();
      expect({ interception, errors: r.errors, peers: r.peers }).toEqual({ interception, errors: {}, peers: { [`${CLUSTER_IP}:80`]: 10 } }); // getpeername: the ClusterIP, not 127.0.0.1:15001
      expect(after.SY_C_CONNECT_EXCLUDED - before.SY_C_CONNECT_EXCLUDED).toBe(10n);
      expect(after.SY_C_CONNECT_REDIRECTED_OUTBOUND - before.SY_C_CONNECT_REDIRECTED_OUTBOUND).toBe(0n);
    }
    dp.registerPod({ netnsPath: mesh.netnsPath, cgroupPath: mesh.cgroup, ips: [mesh.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
  });

  test('deleting the Service removes its frontends', async () => {
    services.remove('web');
    await waitUntil(() => dp.services().length === 0, 'frontends removed');
    expect(logs.some((l) => l.includes('service removed') && l.includes('apps/web'))).toBe(true);
  });
});
