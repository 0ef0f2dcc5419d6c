/**
 * Ethernet + IPv4 + TCP/UDP frames for BPF_PROG_TEST_RUN, built and read
 * back with their checksums (RFC 1071), in the style of Cilium's bpf/tests.
 */
export interface Frame {
  src: string;
  dst: string;
  proto: 'TCP' | 'UDP';
  sport: number;
  dport: number;
  syn?: boolean;
  ack?: boolean;
  fin?: boolean;
  rst?: boolean;
  /** IP options (a multiple of 4 bytes). */
  options?: Buffer;
  /** More-fragments set. */
  fragment?: boolean;
  df?: boolean;
  payload?: Buffer;
  /** UDP: send checksum 0 ("none"). */
  noUdpChecksum?: boolean;
}

const ip4 = (a: string) => Buffer.from(a.split('.').map(Number));
const ip4s = (b: Buffer) => [...b].join('.');

function sum16(b: Buffer, seed = 0): number {
  let s = seed;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const csum = (b: Buffer, seed = 0) => ~sum16(b, seed) & 0xffff;

function pseudo(ip: Buffer, l4len: number): number {
  const p = Buffer.alloc(12);
  ip.copy(p, 0, 12, 20);
  p[9] = ip[9];
  p.writeUInt16BE(l4len, 10);
  return sum16(p);
}

export function frame(f: Frame): Buffer {
  const opts = f.options ?? Buffer.alloc(0);
  const payload = f.payload ?? Buffer.alloc(0);
  const l4 = Buffer.alloc((f.proto === 'TCP' ? 20 : 8) + payload.length);
  l4.writeUInt16BE(f.sport, 0);
  l4.writeUInt16BE(f.dport, 2);
  if (f.proto === 'TCP') {
    l4.writeUInt32BE(1000, 4);
    l4.writeUInt32BE(f.ack ? 2000 : 0, 8);
    l4[12] = 5 << 4;
    l4[13] = (f.fin ? 0x01 : 0) | (f.syn ? 0x02 : 0) | (f.rst ? 0x04 : 0) | (f.ack ? 0x10 : 0);
    l4.writeUInt16BE(65535, 14);
    payload.copy(l4, 20);
  } else {
    l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, 8);
  }
  const ip = Buffer.alloc(20 + opts.length);
  ip[0] = 0x40 | ((20 + opts.length) / 4);
  ip.writeUInt16BE(ip.length + l4.length, 2);
  ip.writeUInt16BE((f.df ? 0x4000 : 0) | (f.fragment ? 0x2000 : 0), 6);
  ip[8] = 64;
  ip[9] = f.proto === 'TCP' ? 6 : 17;
  ip4(f.src).copy(ip, 12);
  ip4(f.dst).copy(ip, 16);
  opts.copy(ip, 20);
  ip.writeUInt16BE(csum(ip), 10);
  const ck = csum(l4, pseudo(ip, l4.length));
  if (f.proto === 'TCP') l4.writeUInt16BE(ck, 16);
  else if (!f.noUdpChecksum) l4.writeUInt16BE(ck || 0xffff, 6);
  const eth = Buffer.alloc(14);
  Buffer.from('020000000001', 'hex').copy(eth, 0);
  Buffer.from('020000000002', 'hex').copy(eth, 6);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, l4]);
}

export interface Parsed {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  ttl: number;
  ihl: number;
  options: Buffer;
  ipChecksumOk: boolean;
  l4ChecksumOk: boolean;
  l4Checksum: number;
}

export function parse(b: Buffer): Parsed {
  const ihl = (b[14] & 0xf) * 4;
  const ip = b.subarray(14, 14 + ihl);
  const total = b.readUInt16BE(16);
  const l4 = b.subarray(14 + ihl, 14 + total);
  const l4Checksum = l4.readUInt16BE(ip[9] === 6 ? 16 : 6);
  return {
    src: ip4s(ip.subarray(12, 16)),
    dst: ip4s(ip.subarray(16, 20)),
    sport: l4.readUInt16BE(0),
    dport: l4.readUInt16BE(2),
    ttl: ip[8],
    ihl,
    options: Buffer.from(ip.subarray(20)),
    ipChecksumOk: sum16(ip) === 0xffff,
    l4ChecksumOk: ip[9] === 17 && l4Checksum === 0 ? true : sum16(l4, pseudo(ip, l4.length)) === 0xffff,
    l4Checksum,
  };
}

/** The DSR option as a backend's node reads it: type 0x9e, length 8, port, address. */
export function dsrOption(addr: string, port: number): Buffer {
  const o = Buffer.alloc(8);
  o[0] = 0x9e;
  o[1] = 8;
  o.writeUInt16BE(port, 2);
  ip4(addr).copy(o, 4);
  return o;
}
