/**
 * The uninstall's per-node step (`switchyard-interceptor cleanup`, agent/node-cleanup.ts)
 * on the real kernel, with no agent running: every Switchyard tc filter comes
 * off the pods' interfaces (found through the agent's records, or by scanning
 * the netns directory), the clsact qdisc the agent created goes too, and the
 * pins and cgroup attachments are removed.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { native } from '../../native';
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane, TC_HANDLE, TC_PRIORITY } from '../../interceptor/src/dataplane/dataplane';
import { cleanupNode } from '../../interceptor/src/agent/node-cleanup';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { NetLab, Pod, sh } from '../../lab/src/netlab';

describeKernel('node cleanup (uninstall) on the real kernel', () => {
  let lab: NetLab;
  let dir: string;
  beforeAll(() => requireKernel());
  beforeEach(() => {
    lab = new NetLab();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sycleanup-'));
  });
  afterEach(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await lab.cleanup();
  });

  const filters = (pod: Pod) =>
    (['ingress', 'egress'] as const).map((d) => native().tcQuery(pod.netnsPath, 'eth0', d, TC_PRIORITY, TC_HANDLE)).filter((id) => id !== null).length;
  const hasClsact = (pod: Pod) => sh('ip', ['netns', 'exec', pod.netns, 'tc', 'qdisc', 'show', 'dev', 'eth0']).includes('clsact');

  test('filters found by record and by netns scan are removed, the qdisc the agent made too; pins and links go', () => {
    const node = lab.addNode('n', '10.79.0');
    const [recorded, scanned] = [lab.addPod(node, 'recorded'), lab.addPod(node, 'scanned')];
    const dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
    for (const pod of [recorded, scanned]) {
      dp.registerPod({ netnsPath: pod.netnsPath, cgroupPath: pod.cgroup, ips: [pod.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
    }
    dp.close(); // the agent is gone (uninstalled); its pinned dataplane and tc filters stay
    expect([filters(recorded), filters(scanned)]).toEqual([2, 2]);
    expect(hasClsact(recorded)).toBe(true);

    const stateDir = path.join(dir, 'state');
    fs.mkdirSync(stateDir);
    fs.writeFileSync(path.join(stateDir, 'c1.json'), JSON.stringify({ containerId: 'c1', netnsPath: recorded.netnsPath, ifname: 'eth0', tcCreatedQdisc: true }));
    // A record whose netns is gone, and a torn one: skipped, not fatal.
    fs.writeFileSync(path.join(stateDir, 'c2.json'), JSON.stringify({ containerId: 'c2', netnsPath: '/var/run/netns/sylab-gone', ifname: 'eth0' }));
    fs.writeFileSync(path.join(stateDir, 'c3.json'), '{"containerId": "c3", "netns');
    // The runtime's netns directory holds only the other pod (a link to its netns file).
    const netnsDir = path.join(dir, 'netns');
    fs.mkdirSync(netnsDir);
    fs.symlinkSync(scanned.netnsPath, path.join(netnsDir, 'cni-1234'));

    const r = cleanupNode({ pinRoot: lab.pinRoot, stateDir, netnsDir });
    expect(r).toEqual({ filters: 4, qdiscs: 1, interfaces: 2 });
    expect([filters(recorded), filters(scanned)]).toEqual([0, 0]);
    expect(hasClsact(recorded)).toBe(false);
    expect(fs.existsSync(lab.pinRoot)).toBe(false);
    expect(fs.readdirSync(stateDir)).toEqual([]);
    // Idempotent: a second run finds nothing to do.
    expect(cleanupNode({ pinRoot: lab.pinRoot, stateDir, netnsDir })).toEqual({ filters: 0, qdiscs: 0, interfaces: 1 });
  });
});
