/**
 * sk_msg backpressure on the real kernel: a fast app writes for 10 s to a
 * sidecar that reads 4 KB every 10 ms, through the sockmap. The kernel would
 * queue every redirected byte on the reader's psock without limit; sy_skmsg
 * sends the overflow by TCP instead, whose flow control slows the writer.
 * The memory the pair holds stays bounded, the writer is slowed and never
 * fails, and every byte arrives in order.
 */
import * as fs from 'fs';
import { DEFAULT_INTERCEPTION } from '../../api/interception';
import { Dataplane } from '../../interceptor/src/dataplane/dataplane';
import { describeKernel, requireKernel } from '../helpers/kernel';
import { readablePath } from '../../lab/src/readable';
import { NetLab, Pod } from '../../lab/src/netlab';

const PEER = readablePath('test/fixtures/backpressure.py');
const PYTHON = '/usr/bin/python3';
const SECONDS = 10;

/** TCP memory in use on the machine, in bytes (/proc/net/sockstat counts pages; sk_msg queues are charged there). */
function tcpMemory(): number {
  const m = /^TCP: .* mem (\d+)/m.exec(fs.readFileSync('/proc/net/sockstat', 'utf8'));
  return Number(m![1]) * 4096;
}

describeKernel('sk_msg backpressure', () => {
  let lab: NetLab;
  let dp: Dataplane;
  let app: Pod;

  beforeAll(() => {
    requireKernel();
    lab = new NetLab();
    const node = lab.addNode('node', '10.80.0');
    app = lab.addPod(node, 'app');
    dp = Dataplane.load({ cgroupPath: lab.cgroupRoot, pinRoot: lab.pinRoot });
    dp.registerPod({ netnsPath: app.netnsPath, cgroupPath: app.cgroup, ips: [app.ip], interception: DEFAULT_INTERCEPTION, ifname: 'eth0' });
  });

  afterAll(async () => {
    dp?.close();
    await lab?.cleanup();
  });

  test(`a fast writer in front of a slow reader for ${SECONDS} s: bounded memory, slowed not failed, every byte in order`, async () => {
    const rmemMax = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_rmem', 'utf8').trim().split(/\s+/)[2]);
    const before = dp.counters();
    const baseline = tcpMemory();
    const reader = lab.spawn(app, [PYTHON, PEER, 'read', '--port', String(DEFAULT_INTERCEPTION.outboundPort), '--slow-seconds', String(SECONDS)], { uid: DEFAULT_INTERCEPTION.sidecarUid, label: 'slow sidecar' });
    await reader.waitForJson((o) => o.event === 'listening');
    // Any destination: connect4 sends the app to its sidecar's outbound port, and the pair joins the sockhash.
    const writer = lab.spawn(app, [PYTHON, PEER, 'write', '--host', '10.80.9.9', '--port', '8080', '--seconds', String(SECONDS)], { uid: 1000, label: 'fast app' });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, tcpMemory() - baseline)), 100);
    const [written, read] = await Promise.all([writer.waitForJson((o) => o.event === 'written', (SECONDS + 60) * 1000), reader.waitForJson((o) => o.event === 'read', (SECONDS + 120) * 1000)]);
    clearInterval(sampler);
    const c = dp.counters();
    const redirected = c.SY_C_SKMSG_REDIRECTED - before.SY_C_SKMSG_REDIRECTED;
    const backpressured = c.SY_C_SKMSG_PASSED_BACKPRESSURE - before.SY_C_SKMSG_PASSED_BACKPRESSURE;
    process.stdout.write(
      `backpressure: written ${written.bytes} B in ${SECONDS} s, read ${read.bytes} B; peak TCP memory +${(peak / 2 ** 20).toFixed(1)} MiB ` +
        `(bound ${((2 * rmemMax) / 2 ** 20).toFixed(0)} MiB = 2 x tcp_rmem max); sk_msg redirected ${redirected}, sent by TCP under backpressure ${backpressured}\n`,
    );
    expect(written.error).toBeNull();
    expect(written.short_writes).toBe(0);
    expect(read.bytes).toBe(written.bytes);
    expect(read.sha256).toBe(written.sha256);
    expect(peak).toBeLessThan(2 * rmemMax);
    expect(redirected).toBeGreaterThan(0n);
    expect(backpressured).toBeGreaterThan(0n);
  }, (SECONDS + 180) * 1000);
});
