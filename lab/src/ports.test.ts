import * as fs from 'fs';
import * as net from 'net';
import { freePort } from './ports';

const ephemeralLo = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

describe('freePort', () => {
  test('is below the ephemeral range, so no outgoing connection can autobind it before the child listens', async () => {
    for (let i = 0; i < 20; i++) {
      const p = await freePort();
      expect(p).toBeGreaterThanOrEqual(1024);
      expect(p).toBeLessThan(ephemeralLo);
    }
  });

  // 200 random picks out of ~12 000 ports would collide about 4 times in 5 without the leases.
  test('concurrent callers never get the same port, and each port can be listened on', async () => {
    const ports = await Promise.all(Array.from({ length: 200 }, () => freePort()));
    expect(new Set(ports).size).toBe(200);
    const servers = await Promise.all(
      ports.map((port) => new Promise<net.Server>((resolve, reject) => {
        const s = net.createServer().once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve(s));
      })),
    );
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });
});
