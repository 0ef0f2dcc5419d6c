/**
 * Loopback ports for child processes (etcd, kube-apiserver, the webhook, test
 * servers) that must be told their port before they bind it.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

/**
 * A loopback TCP port for a child process to listen on.
 *
 * A port the kernel hands to `listen(0)` comes from the ephemeral range, and
 * between our close() and the child's bind() any outgoing connection on the
 * machine (the apiserver's own etcd clients, another lab's traffic) may take it
 * as its local port: CI once saw kube-apiserver fail with EADDRINUSE exactly so.
 * Ports below net.ipv4.ip_local_port_range are never autobound, so the choice
 * is made there. Two processes choosing at the same moment (parallel test
 * workers) are kept apart by a lease file created with O_EXCL; a lease only
 * has to cover the seconds until the child binds, after which the bind test
 * itself refuses the port, so leases older than a minute are reused.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLo] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const hi = (ephemeralLo || 32768) - 1;
  const lo = hi > 21000 ? 20000 : 1024;
  // Per user: a directory another uid made (root's test run) is not ours to write.
  const leases = path.join(os.tmpdir(), `switchyard-port-leases-${process.getuid?.() ?? 0}`);
  fs.mkdirSync(leases, { recursive: true });
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (!takeLease(path.join(leases, String(port)))) continue;
    if (await canBind(port)) return port;
  }
  throw new Error(`no free loopback port in ${lo}-${hi} after 200 tries: is something holding the whole range?`);
}

const LEASE_MS = 60_000;

function takeLease(file: string): boolean {
  try {
    fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (e: any) {
    if (e.code !== 'EEXIST') throw e;
  }
  try {
    if (Date.now() - fs.statSync(file).mtimeMs < LEASE_MS) return false;
    fs.writeFileSync(file, String(process.pid)); // stale: the port was bound long ago or never used
    return true;
  } catch {
    return false;
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}
