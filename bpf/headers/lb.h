/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connect-time Service load balancing, shared by sy_connect.c (TCP and
 * connected UDP) and sy_lb.c (sendmsg, recvmsg, getpeername).
 *
 * A connect or datagram to a frontend (ClusterIP:port/proto) is given one
 * backend, once, at the socket layer: no per-packet NAT and no conntrack. The
 * frontend is remembered per (socket, backend), so getpeername() and a UDP
 * reply's source show the address the application asked for.
 */
#ifndef SWITCHYARD_LB_H
#define SWITCHYARD_LB_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"
#include "helpers.h"

#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif

enum sy_lb_result {
	SY_LB_NONE = 0,       /* not a frontend: leave the socket alone */
	SY_LB_TRANSLATED = 1, /* *dst and *port now name a backend */
	SY_LB_NO_BACKEND = 2, /* a frontend without ready backends: refuse */
};

static __always_inline void sy_lb_count(__u32 service_id, int translated)
{
	struct sy_lb_counters *c = bpf_map_lookup_elem(&sy_lb_counters, &service_id);

	if (!c)
		return;
	if (translated)
		c->translations += 1;
	else
		c->no_backend += 1;
}

/*
 * One backend for this frontend, honouring session affinity: the affine
 * entry at ak in affinity_map (keyed by netns at connect, by client address
 * at the node). Constant time. *slot_out is the slot it came from.
 */
static __always_inline int sy_lb_pick_with(void *affinity_map, const void *ak, const struct sy_lb_frontend *fe,
					   struct sy_lb_backend *out, __u32 *slot_out)
{
	struct sy_lb_backend_key bk = { .service_id = fe->service_id };
	struct sy_lb_backend *b;
	__u32 count = fe->backend_count;

	if (count == 0)
		return -1;
	if (fe->flags & SY_LB_F_AFFINITY) {
		struct sy_lb_affinity *a = bpf_map_lookup_elem(affinity_map, ak);
		__u64 now = bpf_ktime_get_ns();

		if (a && now - a->last_used_ns < (__u64)fe->affinity_timeout_s * 1000000000ULL &&
		    a->slot < count) {
			bk.slot = a->slot;
			b = bpf_map_lookup_elem(&sy_lb_backends, &bk);
			/* Still the same backend in that slot: keep the client on it. */
			if (b && b->port == a->port && sy_addr_eq(&b->addr, &a->addr)) {
				a->last_used_ns = now;
				*out = *b;
				*slot_out = bk.slot;
				return 0;
			}
		}
		bk.slot = bpf_get_prandom_u32() % count;
		b = bpf_map_lookup_elem(&sy_lb_backends, &bk);
		if (!b)
			return -1;
		struct sy_lb_affinity na = { .addr = b->addr, .port = b->port, .slot = bk.slot, .last_used_ns = now };

		bpf_map_update_elem(affinity_map, ak, &na, BPF_ANY);
		*out = *b;
		*slot_out = bk.slot;
		return 0;
	}
	bk.slot = bpf_get_prandom_u32() % count;
	b = bpf_map_lookup_elem(&sy_lb_backends, &bk);
	if (!b) {
		/* The agent is shrinking this frontend right now: slot 0 is always kept until last. */
		bk.slot = 0;
		b = bpf_map_lookup_elem(&sy_lb_backends, &bk);
		if (!b)
			return -1;
	}
	*out = *b;
	*slot_out = bk.slot;
	return 0;
}

/* At connect: affinity by the client's network namespace. */
static __always_inline int sy_lb_pick(__u64 netns, const struct sy_lb_frontend *fe, struct sy_lb_backend *out)
{
	struct sy_lb_affinity_key ak = { .netns_cookie = netns, .service_id = fe->service_id };
	__u32 slot;

	return sy_lb_pick_with(&sy_lb_affinity, &ak, fe, out, &slot);
}

/* The frontend at dst:port/proto (host byte order port), or NULL. */
static __always_inline struct sy_lb_frontend *sy_lb_frontend(const struct sy_addr *dst, __u16 port, __u8 proto)
{
	struct sy_lb_frontend_key fk = { .addr = *dst, .port = port, .proto = proto };

	return bpf_map_lookup_elem(&sy_lb_frontends, &fk);
}

/*
 * Sends *dst:*port, which is frontend fe, to one of its backends, and records
 * the reverse entry under the socket cookie.
 */
static __always_inline int sy_lb_translate(struct bpf_sock_addr *ctx, const struct sy_lb_frontend *fe,
					   struct sy_addr *dst, __u16 *port)
{
	struct sy_lb_backend b;

	if (sy_lb_pick(bpf_get_netns_cookie(ctx), fe, &b)) {
		sy_count(SY_C_LB_NO_BACKEND);
		sy_lb_count(fe->service_id, 0);
		return SY_LB_NO_BACKEND;
	}
	struct sy_lb_revnat_key rk = { .socket_cookie = bpf_get_socket_cookie(ctx), .backend = b.addr, .backend_port = b.port };
	struct sy_lb_revnat rv = { .addr = *dst, .port = *port, .service_id = fe->service_id };

	bpf_map_update_elem(&sy_lb_revnat, &rk, &rv, BPF_ANY);
	*dst = b.addr;
	*port = b.port;
	sy_count(SY_C_LB_TRANSLATED);
	sy_lb_count(fe->service_id, 1);
	return SY_LB_TRANSLATED;
}

/* A datagram or connect to dst:port: translated if it is a frontend. */
static __always_inline int sy_lb_translate_if_frontend(struct bpf_sock_addr *ctx, struct sy_addr *dst, __u16 *port,
						       __u8 proto)
{
	struct sy_lb_frontend *fe = sy_lb_frontend(dst, *port, proto);

	return fe ? sy_lb_translate(ctx, fe, dst, port) : SY_LB_NONE;
}

/* The frontend a translated socket asked for, given the backend it talks to. */
static __always_inline struct sy_lb_revnat *sy_lb_reverse(struct bpf_sock_addr *ctx, const struct sy_addr *peer,
							 __u16 port)
{
	struct sy_lb_revnat_key rk = { .socket_cookie = bpf_get_socket_cookie(ctx), .backend = *peer, .backend_port = port };

	return bpf_map_lookup_elem(&sy_lb_revnat, &rk);
}

#endif /* SWITCHYARD_LB_H */
