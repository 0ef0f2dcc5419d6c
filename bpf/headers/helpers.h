/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Address, port and policy helpers shared by the hooks. All constant time. */
#ifndef SWITCHYARD_HELPERS_H
#define SWITCHYARD_HELPERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "switchyard.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif
#ifndef SOCK_DGRAM
#define SOCK_DGRAM 2
#endif

#define SY_V4_MAPPED_PREFIX bpf_htonl(0x0000ffff)

/*
 * Context structs (bpf_sock_ops, sk_msg_md, bpf_sock) may only be read at
 * constant offsets from their base pointer. clang likes to merge the v4 and
 * v6 branches into one load through a computed pointer, which the verifier
 * rejects; a compiler barrier after each branch's loads keeps them apart.
 */
#define sy_barrier() asm volatile("" ::: "memory")

/* Copy a 4-word IPv6 address out of a context struct, word by word. */
#define SY_LOAD_IP6(dst, src)                 \
	do {                                  \
		(dst)->words[0] = (src)[0];   \
		(dst)->words[1] = (src)[1];   \
		(dst)->words[2] = (src)[2];   \
		(dst)->words[3] = (src)[3];   \
		sy_barrier();                 \
	} while (0)

/* Write a 4-word IPv6 address into a context struct (bpf_sock_addr's user_ip6 takes 32-bit stores). */
#define SY_STORE_IP6(dst, src)               \
	do {                                 \
		(dst)[0] = (src)->words[0];  \
		(dst)[1] = (src)->words[1];  \
		(dst)[2] = (src)->words[2];  \
		(dst)[3] = (src)->words[3];  \
	} while (0)

static __always_inline void sy_addr_from_v4(struct sy_addr *a, __u32 ip4_be)
{
	a->words[0] = 0;
	a->words[1] = 0;
	a->words[2] = SY_V4_MAPPED_PREFIX;
	a->words[3] = ip4_be;
}

static __always_inline int sy_addr_is_v4(const struct sy_addr *a)
{
	return a->words[0] == 0 && a->words[1] == 0 && a->words[2] == SY_V4_MAPPED_PREFIX;
}

static __always_inline int sy_addr_is_loopback(const struct sy_addr *a)
{
	if (sy_addr_is_v4(a))
		return (bpf_ntohl(a->words[3]) >> 24) == 127;
	return a->words[0] == 0 && a->words[1] == 0 && a->words[2] == 0 &&
	       a->words[3] == bpf_htonl(1);
}

static __always_inline int sy_addr_eq(const struct sy_addr *a, const struct sy_addr *b)
{
	return a->words[0] == b->words[0] && a->words[1] == b->words[1] &&
	       a->words[2] == b->words[2] && a->words[3] == b->words[3];
}

/*
 * sock_ops and sk_msg expose remote_port as a 32-bit word holding the
 * network-order port in its upper half on little-endian machines; ntohl
 * brings it to a host-order port on either endianness.
 */
static __always_inline __u16 sy_ctx_remote_port(__u32 remote_port)
{
	return (__u16)bpf_ntohl(remote_port);
}

static __always_inline int sy_port_in(const __u16 *ports, __u8 count, __u16 port)
{
	for (int i = 0; i < SY_MAX_EXCLUDED_PORTS; i++) {
		if (i >= count)
			break;
		if (ports[i] == port)
			return 1;
	}
	return 0;
}

static __always_inline int sy_cidr_contains(const struct sy_cidr *c, const struct sy_addr *a)
{
	return (a->words[0] & c->mask.words[0]) == c->addr.words[0] &&
	       (a->words[1] & c->mask.words[1]) == c->addr.words[1] &&
	       (a->words[2] & c->mask.words[2]) == c->addr.words[2] &&
	       (a->words[3] & c->mask.words[3]) == c->addr.words[3];
}

static __always_inline int sy_outbound_excluded(const struct sy_pod_config *pod,
						const struct sy_addr *dst, __u16 port)
{
	if (sy_port_in(pod->excluded_outbound_ports, pod->excluded_outbound_port_count, port))
		return 1;
	for (int i = 0; i < SY_MAX_EXCLUDED_CIDRS; i++) {
		if (i >= pod->excluded_outbound_cidr_count)
			break;
		if (sy_cidr_contains(&pod->excluded_outbound_cidrs[i], dst))
			return 1;
	}
	return 0;
}

/* Ports that must reach the pod untouched: the sidecar's own and the excluded. */
static __always_inline int sy_inbound_excluded(const struct sy_pod_config *pod, __u16 port)
{
	return port == pod->inbound_port || port == pod->outbound_port ||
	       sy_port_in(pod->excluded_inbound_ports, pod->excluded_inbound_port_count, port);
}

/* Both ends inside one pod: loopback, or the pod talking to its own IP. */
static __always_inline int sy_is_intra_pod(const struct sy_addr *local, const struct sy_addr *remote)
{
	return sy_addr_is_loopback(remote) || sy_addr_eq(local, remote);
}

static __always_inline void sy_tuple_fill(struct sy_tuple *t, __u64 netns_cookie,
					  const struct sy_addr *client, __u16 client_port,
					  const struct sy_addr *server, __u16 server_port)
{
	t->netns_cookie = sy_addr_is_loopback(server) ? netns_cookie : 0;
	t->client_ip = *client;
	t->server_ip = *server;
	t->client_port = client_port;
	t->server_port = server_port;
	t->_pad = 0;
}

#endif /* SWITCHYARD_HELPERS_H */
