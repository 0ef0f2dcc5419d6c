// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock_ops: bookkeeping at the moments a connection changes state.
 *
 *   TCP connect         : (still inside connect(), in the connecting task) the
 *                         origdst connect4/6 handed over (handoff.h) moves to
 *                         the tuple, where the sidecar's getsockopt and tc
 *                         find it; a state callback is asked for in case the
 *                         connection never establishes
 *   SYN_SENT -> CLOSE   : refused, reset or timed out: delete that entry
 *   active established  : the callback is no longer needed
 *   passive established : if the accepted socket carries an origdst, ask for
 *                         a state callback so the entry dies with the socket;
 *                         a tc SYN's entry moves from the LRU
 *                         sy_origdst_transient to sy_origdst (now it is live)
 *   -> TCP_CLOSE        : delete that entry; a tc-origin one goes back to the
 *                         LRU, where late retransmits (TIME_WAIT) still find it
 *   either, intra-pod   : an app <-> sidecar pair goes into sy_sock_hash for
 *                         sk_msg splicing (see "Which sockets are spliced")
 *
 * Once established, cleanup is tied to the accepting (sidecar) side on
 * purpose: an app may close before the sidecar has called getsockopt, and the
 * entry must survive that.
 *
 * Which sockets are spliced: only the two ends of an app <-> sidecar
 * connection, never an app's own loopback traffic (a local cache, two
 * processes of the pod) nor the sidecar's internal connections. Bytes that
 * sk_msg queues on a socket's ingress are invisible to splice(2), so every
 * socket in the hash is one whose reader must not splice.
 *   app -> sidecar : connect4 redirected it, so sy_origdst holds its tuple;
 *                    both ends see that and join.
 *   sidecar -> app : the connecting socket is owned by the sidecar uid. It
 *                    joins and leaves a mark in sy_sidecar_conns; the
 *                    accepting end joins if its own owner is not the sidecar,
 *                    and otherwise takes the connecting end out again.
 *   anything else  : stays out (sockmap_skipped).
 * A pod annotated switchyard.dev/sockmap-acceleration: "false" keeps all of
 * its sockets out (SY_POD_F_NO_SOCKMAP).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "helpers.h"
#include "handoff.h"
#include "monitor.h"

struct sy_endpoints {
	struct sy_addr local;
	struct sy_addr remote;
	__u16 local_port;
	__u16 remote_port;
};

static __always_inline int sy_skops_endpoints(struct bpf_sock_ops *skops, struct sy_endpoints *e)
{
	__u32 family = skops->family;

	if (family == AF_INET) {
		__u32 local = skops->local_ip4, remote = skops->remote_ip4;

		sy_barrier();
		sy_addr_from_v4(&e->local, local);
		sy_addr_from_v4(&e->remote, remote);
	} else if (family == AF_INET6) {
		SY_LOAD_IP6(&e->local, skops->local_ip6);
		SY_LOAD_IP6(&e->remote, skops->remote_ip6);
	} else {
		return -1;
	}
	e->local_port = (__u16)skops->local_port;
	e->remote_port = sy_ctx_remote_port(skops->remote_port);
	return 0;
}

/* The one field of the kernel's struct sock read here; CO-RE relocates it against the running kernel. */
struct sy_kuid {
	__u32 val;
};
struct sock___sy {
	struct sy_kuid sk_uid;
} __attribute__((preserve_access_index));

/* The uid that owns a socket: its creator's; an accepted socket inherits its listener's. */
static __always_inline int sy_sock_uid(struct bpf_sock_ops *skops, __u32 *uid)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp;

	if (!sk)
		return -1;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return -1;
	*uid = ((struct sock___sy *)tp)->sk_uid.val;
	return 0;
}

static __always_inline void sy_sock_key_fill(struct sy_sock_key *k, __u64 netns,
					     const struct sy_addr *local, __u16 local_port,
					     const struct sy_addr *remote, __u16 remote_port)
{
	k->netns_cookie = netns;
	k->local_ip = *local;
	k->remote_ip = *remote;
	k->local_port = local_port;
	k->remote_port = remote_port;
	k->_pad = 0;
}

/* The pod whose intra-pod socket this is, if it may be spliced at all. */
static __always_inline struct sy_pod_config *sy_splice_pod(__u64 netns, const struct sy_endpoints *e)
{
	struct sy_pod_config *pod;

	if (!sy_is_intra_pod(&e->local, &e->remote))
		return NULL;
	pod = bpf_map_lookup_elem(&sy_pods, &netns);
	if (pod && (pod->flags & SY_POD_F_NO_SOCKMAP)) {
		sy_count(SY_C_SOCKMAP_SKIPPED);
		return NULL;
	}
	return pod;
}

static __always_inline void sy_sockmap_add(struct bpf_sock_ops *skops, struct sy_sock_key *key)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp;
	__u64 addr;

	/* A full sockhash only costs speed: the socket keeps plain TCP. */
	if (bpf_sock_hash_update(skops, &sy_sock_hash, key, BPF_NOEXIST)) {
		sy_count(SY_C_SOCKMAP_FULL);
		return;
	}
	sy_count(SY_C_SOCKMAP_INSERTED);
	/* Where sk_msg finds this socket's receive state when it is the peer (backpressure). */
	tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;
	if (!tp)
		return;
	addr = (__u64)(unsigned long)tp;
	bpf_map_update_elem(&sy_sock_addr, key, &addr, BPF_ANY);
}

/*
 * The sidecar accepted a connection tc steered to it: its entry leaves the
 * LRU for sy_origdst, where nothing evicts it. If sy_origdst is full it stays
 * in the LRU (getsockopt and tc look there too) and is counted.
 */
static __always_inline int sy_tc_promote(const struct sy_tuple *t)
{
	struct sy_origdst *od = bpf_map_lookup_elem(&sy_origdst_transient, t);

	if (!od)
		return 0;
	if (bpf_map_update_elem(&sy_origdst, t, od, BPF_NOEXIST)) {
		sy_count(SY_C_SOCKOPS_ORIGDST_MAP_FULL);
		return 1;
	}
	bpf_map_delete_elem(&sy_origdst_transient, t);
	return 1;
}

static __always_inline void sy_on_connect(struct bpf_sock_ops *skops)
{
	struct sy_origdst od;
	struct sy_endpoints e;
	struct sy_tuple t;

	if (sy_handoff_take(skops, &od))
		return;
	if (sy_skops_endpoints(skops, &e))
		return;
	__u64 netns = bpf_get_netns_cookie(skops);

	sy_tuple_fill(&t, netns, &e.local, e.local_port, &e.remote, e.remote_port);
	if (bpf_map_update_elem(&sy_origdst, &t, &od, BPF_ANY)) {
		sy_count(SY_C_SOCKOPS_ORIGDST_MAP_FULL); /* sidecar will get no origdst and close */
		sy_monitor_conn(SY_HOOK_SOCKOPS, SY_C_SOCKOPS_ORIGDST_MAP_FULL, netns, &e.local, e.local_port, &e.remote,
				e.remote_port, &od.addr, od.port, od.pod_netns_cookie, 0);
		return;
	}
	sy_count(SY_C_SOCKOPS_ORIGDST_MOVED);
	sy_monitor_conn(SY_HOOK_SOCKOPS, SY_C_SOCKOPS_ORIGDST_MOVED, netns, &e.local, e.local_port, &e.remote, e.remote_port,
			&od.addr, od.port, od.pod_netns_cookie, 0);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void sy_on_active(struct bpf_sock_ops *skops)
{
	struct sy_pod_config *pod;
	struct sy_endpoints e;
	struct sy_sock_key key;
	struct sy_tuple t;
	__u32 flags = skops->bpf_sock_ops_cb_flags, uid, one = 1;
	__u64 netns;

	/* Established: from here the accepting side owns the entry (see the top). */
	if (flags & BPF_SOCK_OPS_STATE_CB_FLAG)
		bpf_sock_ops_cb_flags_set(skops, flags & ~BPF_SOCK_OPS_STATE_CB_FLAG);
	if (sy_skops_endpoints(skops, &e))
		return;
	netns = bpf_get_netns_cookie(skops);
	pod = sy_splice_pod(netns, &e);
	if (!pod)
		return;
	sy_sock_key_fill(&key, netns, &e.local, e.local_port, &e.remote, e.remote_port);
	sy_tuple_fill(&t, netns, &e.local, e.local_port, &e.remote, e.remote_port);
	if (bpf_map_lookup_elem(&sy_origdst, &t)) {
		sy_sockmap_add(skops, &key); /* app -> its sidecar */
		return;
	}
	if (sy_sock_uid(skops, &uid) == 0 && uid == pod->sidecar_uid) {
		/* sidecar -> app, or the sidecar's own: the accepting end decides. */
		bpf_map_update_elem(&sy_sidecar_conns, &key, &one, BPF_ANY);
		sy_sockmap_add(skops, &key);
		return;
	}
	sy_count(SY_C_SOCKMAP_SKIPPED); /* the app's own loopback connection */
}

static __always_inline void sy_on_passive(struct bpf_sock_ops *skops)
{
	struct sy_pod_config *pod;
	struct sy_endpoints e;
	struct sy_sock_key key, peer;
	struct sy_tuple t;
	__u64 netns = bpf_get_netns_cookie(skops);
	__u32 uid;
	int redirected;

	if (sy_skops_endpoints(skops, &e))
		return;
	sy_tuple_fill(&t, netns, &e.remote, e.remote_port, &e.local, e.local_port);
	/* tc only steers connections from outside the pod, so only those can have a transient entry. */
	redirected = bpf_map_lookup_elem(&sy_origdst, &t) != NULL ||
		     (!sy_is_intra_pod(&e.local, &e.remote) && sy_tc_promote(&t));
	if (redirected)
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	pod = sy_splice_pod(netns, &e);
	if (!pod)
		return;
	sy_sock_key_fill(&key, netns, &e.local, e.local_port, &e.remote, e.remote_port);
	if (redirected) {
		sy_sockmap_add(skops, &key); /* the sidecar's end of app -> sidecar */
		return;
	}
	sy_sock_key_fill(&peer, netns, &e.remote, e.remote_port, &e.local, e.local_port);
	if (!bpf_map_lookup_elem(&sy_sidecar_conns, &peer)) {
		sy_count(SY_C_SOCKMAP_SKIPPED); /* the app's own loopback connection */
		return;
	}
	bpf_map_delete_elem(&sy_sidecar_conns, &peer);
	if (sy_sock_uid(skops, &uid) == 0 && uid != pod->sidecar_uid) {
		sy_sockmap_add(skops, &key); /* the app's end of sidecar -> app */
		return;
	}
	/* The sidecar's own connection: its connecting end leaves the hash again. */
	bpf_map_delete_elem(&sy_sock_hash, &peer);
	sy_count(SY_C_SOCKMAP_SKIPPED);
}

/* An accepted socket closes (client -> this end), or a connect never got past SYN_SENT (this end -> server). */
static __always_inline void sy_on_close(struct bpf_sock_ops *skops, int never_established)
{
	struct sy_origdst *od;
	struct sy_endpoints e;
	struct sy_tuple t;
	__u64 netns = bpf_get_netns_cookie(skops);

	if (sy_skops_endpoints(skops, &e))
		return;
	if (never_established)
		sy_tuple_fill(&t, netns, &e.local, e.local_port, &e.remote, e.remote_port);
	else
		sy_tuple_fill(&t, netns, &e.remote, e.remote_port, &e.local, e.local_port);
	/*
	 * A tc-origin flow's last packets may still come (the peer retransmits
	 * its FIN when our final ACK is lost, and TIME_WAIT answers it): its
	 * entry ages out in the LRU instead of vanishing, or that FIN would reach
	 * the app's port untranslated and get an RST.
	 */
	od = bpf_map_lookup_elem(&sy_origdst, &t);
	if (od && od->origin == SY_ORIGIN_TC_INBOUND)
		bpf_map_update_elem(&sy_origdst_transient, &t, od, BPF_ANY);
	if (bpf_map_delete_elem(&sy_origdst, &t) == 0)
		sy_count(SY_C_SOCKOPS_ORIGDST_CLEANED);
}

SEC("sockops")
int sy_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		sy_on_connect(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		sy_on_active(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sy_on_passive(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			sy_on_close(skops, skops->args[0] == BPF_TCP_SYN_SENT);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
