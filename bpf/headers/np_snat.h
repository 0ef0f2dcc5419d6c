/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * snat source ports (sy_nodeport.c): which port of the node's range a new
 * snat flow to a backend may take, given who holds each one and whether its
 * backend still keeps the tuple in TIME_WAIT. See "snat ports" in bpf/README.md.
 */
#ifndef SWITCHYARD_NP_SNAT_H
#define SWITCHYARD_NP_SNAT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "nodeport.h"

/* What a new flow may do with a snat port that already has an entry. */
enum sy_np_port_use {
	SY_NP_PORT_BUSY = 0,      /* its flow is live, or closed within the grace */
	SY_NP_PORT_FREE = 1,      /* its flow is over and its tuple is free at the backend */
	SY_NP_PORT_TIME_WAIT = 2, /* over, but the backend closed first and may still hold the tuple in TIME_WAIT */
};

/*
 * Whether the flow holding a snat port is over, so that a new flow may take
 * the port: its flow entry is gone or has moved on (evicted, or a new SYN
 * on the same client port), it was reset, it closed with FINs more than the
 * grace ago, or it has been idle past SY_NP_*_IDLE_S. Entries written by
 * ABI 4 programs carry no time and are only reclaimed by the first three.
 *
 * A backend that sent the first FIN holds the tuple {this node:port,
 * backend} in TIME_WAIT, and answers a new SYN on it with a bare ACK unless
 * the SYN's sequence number or timestamp is newer (RFC 6191), which for
 * another client's connection is chance: the client resets and retries a
 * second later. Such a port waits out snat_time_wait_s, as conntrack keeps
 * a closed tuple; *tw_age says how long it has waited so far.
 */
static __always_inline int sy_np_snat_port_use(const struct sy_np_snat_key *sk, const struct sy_np_config *cfg, __u16 now,
					       __u16 *tw_age)
{
	struct sy_np_snat *old = bpf_map_lookup_elem(&sy_np_snat, sk);

	if (!old)
		return SY_NP_PORT_FREE;
	struct sy_np_flow_key fk = { .client = old->client, .frontend = old->frontend, .client_port = old->client_port,
				     .frontend_port = old->frontend_port, .proto = sk->proto };
	struct sy_np_flow *f = bpf_map_lookup_elem(&sy_np_flows, &fk);
	int same = f && f->path == SY_NP_SNAT && f->nat_port == sk->nat_port && f->backend_port == sk->backend_port &&
		   sy_addr_eq(&f->backend, &sk->backend);

	if (same && (f->state & SY_NP_ST_RST))
		return SY_NP_PORT_FREE; /* a reset leaves no TIME_WAIT at either end */
	if (same) {
		if (!f->seen)
			return SY_NP_PORT_BUSY;
		__u16 age = now - f->seen;
		int both = (f->state & (SY_NP_ST_FIN_CLIENT | SY_NP_ST_FIN_BACKEND)) == (SY_NP_ST_FIN_CLIENT | SY_NP_ST_FIN_BACKEND);

		if (age < (both ? cfg->snat_closed_grace_s : sk->proto == IPPROTO_TCP ? SY_NP_TCP_IDLE_S : SY_NP_UDP_IDLE_S))
			return SY_NP_PORT_BUSY;
	}
	if (old->backend_closed && cfg->snat_time_wait_s) {
		__u16 tw = now - old->backend_closed;

		/* whole seconds of a coarse clock: only more than snat_time_wait_s is surely past it */
		if (tw <= cfg->snat_time_wait_s) {
			*tw_age = tw;
			return SY_NP_PORT_TIME_WAIT;
		}
	}
	return SY_NP_PORT_FREE;
}

/*
 * A snat port for a new flow to one backend: the first of 8 random ports
 * that no flow holds (in a range of 8 or fewer, each port in turn from a
 * random one), else the one among them whose backend TIME_WAIT is oldest
 * (worse than a free port, better than a drop). 0 when there is none.
 * Random draws, not a scan from a random start as netfilter's NAT does: a
 * scan fills runs of neighbouring ports, and a new flow that lands in a long
 * run of waiting ports finds no free one in 8 looks.
 */
static __always_inline __u16 sy_np_snat_port(struct sy_np_snat_key *sk, const struct sy_np_snat *sv,
					     const struct sy_np_config *cfg, __u16 now)
{
	__u32 range = cfg && cfg->snat_addr.words[3] && cfg->snat_port_max >= cfg->snat_port_min
			      ? cfg->snat_port_max - cfg->snat_port_min + 1 : 0;
	__u32 start = range && range <= 8 ? bpf_get_prandom_u32() % range : 0;
	__u16 fallback = 0, fallback_age = 0;
	int i;

	for (i = 0; range && i < 8; i++) {
		__u16 tw_age = 0;

		sk->nat_port = cfg->snat_port_min + (range <= 8 ? (start + i) % range : bpf_get_prandom_u32() % range);
		if (!bpf_map_update_elem(&sy_np_snat, sk, sv, BPF_NOEXIST))
			return sk->nat_port;
		int use = sy_np_snat_port_use(sk, cfg, now, &tw_age);

		if (use == SY_NP_PORT_FREE && !bpf_map_update_elem(&sy_np_snat, sk, sv, BPF_ANY))
			return sk->nat_port;
		if (use == SY_NP_PORT_TIME_WAIT && (!fallback || tw_age > fallback_age)) {
			fallback = sk->nat_port;
			fallback_age = tw_age;
		}
	}
	if (!fallback)
		return 0;
	sk->nat_port = fallback;
	if (bpf_map_update_elem(&sy_np_snat, sk, sv, BPF_ANY))
		return 0;
	sy_count(SY_C_NP_SNAT_TIME_WAIT_REUSED);
	return fallback;
}

#endif /* SWITCHYARD_NP_SNAT_H */
