/**
 * Resets in a network namespace, seen with tcpdump, and told apart: a reset
 * that answers a segment of a connection which had already ended (FINs seen
 * both ways; for instance a last ACK that loopback delivered behind the FIN
 * it preceded, from another CPU's backlog, met by the TIME_WAIT peer's ACK)
 * ends nothing. Any other reset refused or killed a connection: harmful.
 * TCP's own counters of aborts and resets back it up (tcpCounters).
 */
import { Proc } from '../../lab/src/proc';
import { NetLab, sh } from '../../lab/src/netlab';

const LINE = /IP6? (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]+)\]/;

export class RstWatch {
  private constructor(private readonly proc: Proc) {}

  static async start(lab: NetLab, netns: string): Promise<RstWatch> {
    const proc = lab.spawn({ netns, cgroup: null }, ['tcpdump', '-i', 'any', '-nn', '-l', '--immediate-mode', 'tcp[tcpflags] & (tcp-rst|tcp-fin|tcp-syn) != 0'], { label: `tcpdump(${netns})` });
    await proc.readyWhen('capturing', () => proc.stderr.includes('listening on'), 10_000, 20);
    return new RstWatch(proc);
  }

  /** Stops the capture; every reset it saw, and those that hit a live or new connection. */
  async stop(): Promise<{ resets: string[]; harmful: string[] }> {
    await this.proc.stop('SIGINT');
    const fins = new Map<string, Set<string>>();
    const resets: string[] = [];
    const harmful: string[] = [];
    for (const line of this.proc.lines) {
      const m = LINE.exec(line);
      if (!m) continue;
      const [, srcIp, srcPort, dstIp, dstPort, flags] = m;
      const src = `${srcIp}:${srcPort}`;
      const flow = [src, `${dstIp}:${dstPort}`].sort().join(' ');
      if (flags === 'S') fins.set(flow, new Set()); // a new connection on this tuple
      if (flags.includes('F')) (fins.get(flow) ?? fins.set(flow, new Set()).get(flow)!).add(src);
      if (flags.includes('R')) {
        resets.push(line);
        if ((fins.get(flow)?.size ?? 0) < 2) harmful.push(line);
      }
    }
    return { resets, harmful };
  }
}

/** TCP's counters of connections reset or aborted, in a netns: none moves for a clean close. */
export function tcpCounters(netns: string): Record<string, number> {
  const read = (file: string, prefix: string) => {
    const [names, values] = sh('ip', ['netns', 'exec', netns, 'cat', file])
      .split('\n')
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.split(/\s+/).slice(1));
    return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
  };
  const tcp = read('/proc/net/snmp', 'Tcp:');
  const ext = read('/proc/net/netstat', 'TcpExt:');
  const pick = ['TCPAbortOnData', 'TCPAbortOnClose', 'TCPAbortOnMemory', 'TCPAbortOnTimeout', 'TCPAbortOnLinger', 'TCPAbortFailed'];
  return { EstabResets: tcp.EstabResets, AttemptFails: tcp.AttemptFails, ...Object.fromEntries(pick.map((k) => [k, ext[k]])) };
}
