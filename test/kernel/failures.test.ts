/**
 * Bad input and bad days, on the real kernel: each has one clear error and
 * leaves nothing half-done (no pins, no cgroup attachments, no map entries).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { bpfObjectDir, native } from '../../native';
import { ConfigError, DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane, DataplaneError } from '../../interceptor/src/dataplane/dataplane';
import { HostError } from '../../interceptor/src/dataplane/host';
import { accessMatching } from '../helpers/access-log';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, Pod } from '../../lab/src/netlab';
import { waitUntil } from '../../lab/src/proc';

const HOOKS = ['connect4', 'connect6', 'sock_ops', 'getsockopt'] as const;

describeKernel('dataplane failures leave nothing half-done', () => {
  let lab: NetLab;
  let tmp: string;

  const nothingLoaded = () => {
    expect(fs.existsSync(lab.pinRoot)).toBe(false);
    for (const hook of HOOKS) expect(native().cgroupPrograms(lab.cgroupRoot, hook)).toEqual([]);
  };

  beforeAll(() => {
    requireKernel();
    lab = new NetLab();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sylab-'));
  });
  afterAll(async () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    await lab?.cleanup();
  });

  test('a pin root that is not on bpffs', () => {
    const pinRoot = path.join(tmp, 'pins');
    expect(() => Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot })).toThrow(
      new HostError(`the pin root ${pinRoot} is not on a bpffs: choose a path under /sys/fs/bpf, or mount one with 'mount -t bpf bpf ${tmp}'`),
    );
    expect(fs.existsSync(pinRoot)).toBe(false);
    // The addon says the same thing in its own words if asked directly.
    expect(() => native().loadObject(path.join(bpfObjectDir(), 'sy_connect.bpf.o'), tmp, tmp, {})).toThrow(
      /bpffs is not mounted at .*: mount it with 'mount -t bpf bpf \/sys\/fs\/bpf'/,
    );
    nothingLoaded();
  });

  test('a kernel without a needed hook is named, before anything is loaded', () => {
    const probe = (type: string) => type !== 'cgroup_sockopt';
    expect(() => Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot, probe })).toThrow(
      /this kernel lacks the cgroup getsockopt hook \(Linux 5\.3\+\)/,
    );
    nothingLoaded();
  });

  test('the cgroup2 root is refused unless asked for', () => {
    // The probe fails too: if the root check ever regressed, loading still stops before attaching.
    const probe = () => false;
    expect(() => Dataplane.load({ cgroupPath: lab.cgroupMount, pinRoot: lab.pinRoot, probe })).toThrow(
      /refusing to attach to the cgroup2 root/,
    );
    expect(fs.existsSync(lab.pinRoot)).toBe(false);
  });

  test('invalid map sizes are rejected before loading', () => {
    expect(() => Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot, mapSizes: { sy_pods: 0 } })).toThrow(ConfigError);
    nothingLoaded();
  });

  test('a failure half-way through loading is rolled back', () => {
    const objects = path.join(tmp, 'objects');
    fs.mkdirSync(objects);
    for (const f of fs.readdirSync(bpfObjectDir())) fs.copyFileSync(path.join(bpfObjectDir(), f), path.join(objects, f));
    // The last object is corrupt: the first ones load, pin and attach, then this one fails.
    fs.writeFileSync(path.join(objects, 'sy_tc.bpf.o'), 'not an ELF file');
    expect(() => Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot, objectDir: objects })).toThrow(
      /loading the dataplane failed and was rolled back: cannot open BPF object .*sy_tc\.bpf\.o/,
    );
    nothingLoaded();
  });

  describe('with a small dataplane', () => {
    let dp: Dataplane;
    let pods: Pod[];

    beforeAll(async () => {
      const node = lab.addNode('node', '10.88.0');
      pods = ['a', 'b', 'c', 'd'].map((n) => lab.addPod(node, n));
      dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot, mapSizes: { sy_pods: 2, sy_origdst: 2 } });
    });
    afterAll(() => dp?.unload());

    const spec = (pod: Pod) => ({
      netnsPath: pod.netnsPath,
      cgroupPath: pod.cgroup,
      ips: [pod.ip],
      interception: DEFAULT_INTERCEPTION,
    });

    test('loading over an existing dataplane is refused', () => {
      expect(() => Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot })).toThrow(/already holds a Switchyard dataplane/);
    });

    test('invalid pod settings are rejected and nothing is written', () => {
      expect(() => dp.registerPod({ ...spec(pods[0]), interception: { ...DEFAULT_INTERCEPTION, inboundPort: 0 } })).toThrow(ConfigError);
      expect(() => dp.registerPod({ ...spec(pods[0]), ips: ['not-an-ip'] })).toThrow(ConfigError);
      expect(dp.mapEntries('sy_pods')).toBe(0);
      expect(dp.mapEntries('sy_pod_by_ip')).toBe(0);
    });

    test('the host network namespace is refused', () => {
      expect(() => dp.registerPod({ ...spec(pods[0]), netnsPath: '/proc/self/ns/net' })).toThrow(/it is the host network namespace/);
    });

    test('registering reads /proc/self/mountinfo at most once per dataplane: it grows by a line per pod netns', () => {
      // The module object itself: `import * as fs` gives a frozen view of it.
      const read = jest.spyOn(require('fs') as typeof fs, 'readFileSync');
      const mountinfoReads = () => read.mock.calls.filter(([f]) => String(f).endsWith('/mountinfo')).length;
      try {
        dp.registerPod(spec(pods[0]));
        const afterFirst = mountinfoReads();
        dp.registerPod(spec(pods[0]));
        dp.registerPod(spec(pods[0]));
        expect(mountinfoReads()).toBe(afterFirst);
      } finally {
        read.mockRestore();
        dp.unregisterPod(native().netnsCookie(pods[0].netnsPath));
      }
    });

    test('a full pod map fails the registration cleanly', () => {
      dp.registerPod(spec(pods[0]));
      dp.registerPod(spec(pods[1]));
      expect(() => dp.registerPod(spec(pods[2]))).toThrow(
        /registering pod netns .* failed \(map full\) and was rolled back: .*Map sy_pods is full \(2 entries\); raise its size/,
      );
      expect(dp.mapEntries('sy_pods')).toBe(2);
      expect(dp.mapEntries('sy_pod_by_ip')).toBe(2);
      // Re-registering a pod that is already in the map still works: it is an update.
      expect(() => dp.registerPod(spec(pods[1]))).not.toThrow();
    });

    test('a full connection map makes the sidecar close the connection at once, not hang', async () => {
      const [a] = pods;
      const sidecar = await lab.sidecar(a);
      await lab.server(pods[3], [8080]);
      const hold = ['--host', pods[3].ip, '--port', '8080', '--hold'];
      const held = [lab.node(a, 'test/fixtures/client.js', hold, { uid: 1000 }), lab.node(a, 'test/fixtures/client.js', hold, { uid: 1000 })];
      await Promise.all(held.map((p) => p.waitForJson((o) => o.event === 'held')));
      expect(dp.mapEntries('sy_origdst')).toBe(2);

      const before = dp.counters();
      const r = await lab.run(a, 'test/fixtures/client.js', ['--host', pods[3].ip, '--port', '8080', '--timeout-ms', '10000'], { uid: 1000 });
      expect(r.intact).not.toBe(true);
      expect(String(r.error ?? 'closed by the sidecar')).not.toMatch(/timeout/);
      expect(dp.counters().SY_C_SOCKOPS_ORIGDST_MAP_FULL - before.SY_C_SOCKOPS_ORIGDST_MAP_FULL).toBe(1n);
      await sidecar.waitForLine(accessMatching((x) => x.result === 'no_original_dst'));

      for (const p of held) p.child.stdin!.end();
      await Promise.all(held.map((p) => p.wait()));
      // Entries leave with the sidecar's sockets, which close just after the clients'.
      await waitUntil(() => dp.mapEntries('sy_origdst') === 0, 'connection entries released');
    });

    test('the pinned dataplane keeps redirecting with no agent, and a new agent adopts it', async () => {
      const [a] = pods;
      dp.close(); // the agent "exits": no handle is open any more
      const r = await lab.run(a, 'test/fixtures/client.js', ['--host', pods[3].ip, '--port', '8080'], { uid: 1000 });
      expect(r).toMatchObject({ intact: true, peer: '127.0.0.1:15001' });

      dp = Dataplane.adopt({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
      expect(dp.pods().size).toBe(2);
      expect(dp.counters().SY_C_CONNECT_REDIRECTED_OUTBOUND).toBeGreaterThanOrEqual(1n);
    });

    test('adopting an incomplete install names what is missing', () => {
      expect(() => Dataplane.adopt({ cgroupPath: lab.cgroupRoot, pinRoot: path.join('/sys/fs/bpf', `sylab-${lab.id}-nothing`) })).toThrow(
        new RegExp(`cannot adopt the dataplane at .*: \\d+ pins are missing .*switchyard-interceptor cleanup`),
      );
      expect(DataplaneError).toBeDefined();
    });
  });
});
