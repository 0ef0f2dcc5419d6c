/**
 * Addresses as the BPF programs store them: 16 bytes in network order, IPv4
 * v4-mapped (::ffff:a.b.c.d). One representation for both families keeps
 * every key type single.
 */
import { isIPv4, isIPv6 } from 'net';

export const ADDR_BYTES = 16;

function parseIPv6(text: string): Buffer {
  const out = Buffer.alloc(ADDR_BYTES);
  let s = text;
  // A trailing dotted quad (::ffff:10.0.0.1) becomes two hextets.
  const quad = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (quad) {
    const b = quad[1].split('.').map(Number);
    s = s.slice(0, -quad[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const parts = tail === undefined ? headParts : [...headParts, ...Array(missing).fill('0'), ...tailParts];
  parts.forEach((h, i) => out.writeUInt16BE(parseInt(h, 16), i * 2));
  return out;
}

/** '10.0.0.1' or 'fd00::1' -> 16 bytes. Throws on anything else. */
export function encodeAddr(ip: string): Buffer {
  if (isIPv4(ip)) {
    const out = Buffer.alloc(ADDR_BYTES);
    out.writeUInt16BE(0xffff, 10);
    ip.split('.').forEach((octet, i) => (out[12 + i] = Number(octet)));
    return out;
  }
  if (isIPv6(ip)) return parseIPv6(ip.split('%')[0]);
  throw new Error(`'${ip}' is not an IPv4 or IPv6 address`);
}

export function isV4Mapped(b: Buffer): boolean {
  return b.subarray(0, 10).every((x) => x === 0) && b.readUInt16BE(10) === 0xffff;
}

/** 16 bytes -> '10.0.0.1' (for v4-mapped) or canonical-enough IPv6 text. */
export function decodeAddr(b: Buffer): string {
  if (isV4Mapped(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const hextets: string[] = [];
  for (let i = 0; i < 16; i += 2) hextets.push(b.readUInt16BE(i).toString(16));
  // Compress the longest run of zero hextets, as inet_ntop does.
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === '0') j++;
    if (j - i > best.len && j - i > 1) best = { start: i, len: j - i };
    i = j;
  }
  if (best.start < 0) return hextets.join(':');
  const left = hextets.slice(0, best.start).join(':');
  const right = hextets.slice(best.start + best.len).join(':');
  return `${left}::${right}`;
}

export interface Cidr {
  text: string;
  addr: Buffer;
  mask: Buffer;
}

/** '10.0.0.0/8' -> address and mask in the 128-bit space (IPv4 prefixes gain 96). */
export function parseCidr(text: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) throw new Error(`'${text}' is not a CIDR: expected address/prefix, e.g. 10.96.0.0/12 or fd00::/8`);
  const v4 = isIPv4(m[1]);
  if (!v4 && !isIPv6(m[1])) throw new Error(`'${text}' is not a CIDR: '${m[1]}' is not an IP address`);
  const prefix = Number(m[2]);
  const max = v4 ? 32 : 128;
  if (prefix > max) throw new Error(`'${text}' is not a CIDR: prefix /${prefix} is longer than ${max} bits`);
  const bits = v4 ? 96 + prefix : prefix;
  const mask = Buffer.alloc(ADDR_BYTES);
  for (let i = 0; i < bits; i++) mask[i >> 3] |= 0x80 >> (i & 7);
  const addr = encodeAddr(m[1]);
  for (let i = 0; i < ADDR_BYTES; i++) addr[i] &= mask[i];
  return { text, addr, mask };
}
