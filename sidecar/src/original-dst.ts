/**
 * SO_ORIGINAL_DST for an accepted socket, as a proxy behind iptables REDIRECT
 * would ask for it. Switchyard's cgroup/getsockopt program answers the same
 * call, so this code does not know or care which one redirected the socket.
 */
import * as net from 'net';
import { origDstAddon } from '../../native/origdst';

export interface Destination {
  address: string;
  port: number;
}

/** The kernel fd behind a net.Socket (libuv's TCP handle exposes it on Linux). */
function socketFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor');
  return fd;
}

export function originalDst(socket: net.Socket): Destination | null {
  const fd = socketFd(socket);
  const peer = socket.remoteAddress ?? '';
  // v4 clients of a dual-stack listener appear as ::ffff:a.b.c.d; ask SOL_IP first for them.
  const v4 = net.isIPv4(peer) || peer.startsWith('::ffff:');
  const first = origDstAddon().originalDst(fd, v4 ? 4 : 6);
  if (first) return normalize(first);
  const second = origDstAddon().originalDst(fd, v4 ? 6 : 4);
  return second ? normalize(second) : null;
}

function normalize(d: Destination): Destination {
  return { address: d.address.startsWith('::ffff:') ? d.address.slice(7) : d.address, port: d.port };
}
