/**
 * An outside network for node frontend tests and benches: one L2 segment
 * (a bridge in its own netns) joining an outside client and node netns,
 * each through an `ext0` interface, as a rack switch joins real nodes.
 *
 *   client ext0 ─┐
 *   node-1 ext0 ─┼─ lan0 (bridge, netns "lan")
 *   node-2 ext0 ─┘
 *
 * Nodes route each other's pod subnets over it; the client routes only
 * what it is told to (external IPs through a node), like a host outside
 * the cluster.
 */
import { NetLab, NodeNs, sh } from './netlab';

export interface LanMember {
  netns: string;
  /** The member's address on the segment. */
  ip: string;
  /** Its interface on the segment, inside its netns. */
  ifname: 'ext0';
  /** The bridge port's name in the lan netns (per-port counters). */
  port: string;
}

export class Lan {
  readonly netns: string;
  readonly members: LanMember[] = [];

  constructor(
    lab: NetLab,
    /** The first three octets, e.g. "192.168.77". */
    readonly subnet: string,
  ) {
    this.netns = lab.addNetns('lan');
    sh('ip', ['-n', this.netns, 'link', 'add', 'lan0', 'type', 'bridge']);
    sh('ip', ['-n', this.netns, 'link', 'set', 'lan0', 'up']);
  }

  /** Plugs a netns into the segment at <subnet>.<host>. */
  join(netns: string, host: number, mtu = 1500): LanMember {
    const port = `p${this.members.length}`;
    const ip = `${this.subnet}.${host}`;
    sh('ip', ['-n', this.netns, 'link', 'add', port, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'ext0', 'mtu', String(mtu), 'netns', netns]);
    sh('ip', ['-n', this.netns, 'link', 'set', port, 'master', 'lan0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'ext0']);
    sh('ip', ['-n', netns, 'link', 'set', 'ext0', 'up']);
    const m: LanMember = { netns, ip, ifname: 'ext0', port };
    this.members.push(m);
    return m;
  }

  /** Each node reaches the others' pod subnets through their segment address. */
  routePodSubnets(nodes: { node: NodeNs; member: LanMember }[]): void {
    for (const a of nodes) {
      for (const b of nodes) {
        if (a !== b) sh('ip', ['-n', a.node.netns, 'route', 'add', `${b.node.subnet}.0/24`, 'via', b.member.ip]);
      }
    }
  }

  /** Bytes and packets through one member's interface so far (its own view: rx is what reached it). */
  static counters(m: LanMember): { rxBytes: number; txBytes: number; rxPackets: number; txPackets: number } {
    const [link] = JSON.parse(sh('ip', ['-n', m.netns, '-s', '-j', 'link', 'show', m.ifname])) as { stats64: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } } }[];
    return { rxBytes: link.stats64.rx.bytes, txBytes: link.stats64.tx.bytes, rxPackets: link.stats64.rx.packets, txPackets: link.stats64.tx.packets };
  }
}
