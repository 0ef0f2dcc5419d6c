// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg on sy_sock_hash: a send on one end of an app <-> sidecar connection
 * is queued straight onto the peer socket's receive queue, skipping the
 * loopback TCP/IP stack. The peer is the socket whose local end is our
 * remote end. If it is not in the hash (not yet inserted, or the hash was
 * full), the message goes through plain TCP.
 *
 * Backpressure. The kernel queues a redirected message on the peer's psock
 * (bpf_tcp_ingress) without looking at its receive buffer and without making
 * the sender wait, so a fast sender in front of a slow reader would grow that
 * queue until memory runs out. A message is therefore redirected only while
 * the peer's psock queue (msg_tot_len) plus the message fits in the peer's
 * receive buffer, or in SY_SKMSG_BUDGET_FLOOR if that is larger (the
 * receive buffer of a socket that only gets sk_msg bytes is never
 * autotuned, and one large write should still take the fast path);
 * otherwise it takes plain TCP, whose flow control blocks the sender.
 * Redirecting resumes only once every byte that took TCP has been
 * acknowledged (our write_seq == snd_una) and read (the peer's TCP receive
 * queue is empty): the reader takes the psock queue before the TCP queue, so
 * resuming earlier would reorder the stream.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "maps.h"
#include "helpers.h"

/* The kernel fields read here, relocated by CO-RE against the running kernel. */
struct sk_buff_head___sy {
	__u32 qlen;
} __attribute__((preserve_access_index));

struct sock___sy {
	struct sk_buff_head___sy sk_receive_queue;
	int sk_rcvbuf;
	void *sk_user_data;
} __attribute__((preserve_access_index));

struct tcp_sock___sy {
	__u32 write_seq;
	__u32 snd_una;
} __attribute__((preserve_access_index));

/* Since 6.8 (the bytes of a psock's ingress queue, also reported by FIONREAD). */
struct sk_psock___sy {
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

#define SY_SK_USER_DATA_PTRMASK (~7UL) /* the low bits of sk_user_data are flags */
#define SY_SKMSG_BUDGET_FLOOR (4U << 20)

/* 1 when this message must take TCP: the peer is backlogged, or TCP bytes are still unread. */
static __always_inline int sy_backpressure(struct sk_msg_md *msg, const struct sy_sock_key *peer_key)
{
	struct tcp_sock___sy *self = NULL;
	struct sock___sy *peer;
	__u64 *addr = bpf_map_lookup_elem(&sy_sock_addr, peer_key);
	__u32 queued, qlen, budget;
	unsigned long psock;
	int rcvbuf;

	if (msg->sk)
		self = (void *)bpf_skc_to_tcp_sock(msg->sk);
	if (!addr || !self)
		return 0; /* nothing to measure: the pre-backpressure behaviour */
	peer = (void *)(unsigned long)*addr;
	qlen = BPF_CORE_READ(peer, sk_receive_queue.qlen);
	/* Bytes that took TCP are still on their way, or unread: keep to TCP so that order holds. */
	if (self->write_seq != self->snd_una || qlen)
		return 1;
	if (!bpf_core_field_exists(struct sk_psock___sy, msg_tot_len))
		return 0; /* before 6.8 the psock queue cannot be measured (bpf/README.md) */
	psock = (unsigned long)BPF_CORE_READ(peer, sk_user_data) & SY_SK_USER_DATA_PTRMASK;
	if (!psock)
		return 0;
	queued = BPF_CORE_READ((struct sk_psock___sy *)psock, msg_tot_len);
	rcvbuf = BPF_CORE_READ(peer, sk_rcvbuf);
	budget = (__u32)rcvbuf > SY_SKMSG_BUDGET_FLOOR ? (__u32)rcvbuf : SY_SKMSG_BUDGET_FLOOR;
	return (__u64)queued + msg->size > budget;
}

SEC("sk_msg")
int sy_skmsg(struct sk_msg_md *msg)
{
	struct sy_sock_key peer = {
		.netns_cookie = bpf_get_netns_cookie(msg),
		.local_port = sy_ctx_remote_port(msg->remote_port),
		.remote_port = (__u16)msg->local_port,
	};

	if (msg->family == AF_INET) {
		__u32 remote = msg->remote_ip4, local = msg->local_ip4;

		sy_barrier();
		sy_addr_from_v4(&peer.local_ip, remote);
		sy_addr_from_v4(&peer.remote_ip, local);
	} else {
		SY_LOAD_IP6(&peer.local_ip, msg->remote_ip6);
		SY_LOAD_IP6(&peer.remote_ip, msg->local_ip6);
	}

	if (sy_backpressure(msg, &peer)) {
		sy_count(SY_C_SKMSG_PASSED_BACKPRESSURE);
		return SK_PASS;
	}
	if (bpf_msg_redirect_hash(msg, &sy_sock_hash, &peer, BPF_F_INGRESS) == SK_PASS) {
		sy_count(SY_C_SKMSG_REDIRECTED);
		return SK_PASS;
	}
	/* The helper says SK_DROP on a miss; we pass, so a miss never loses data. */
	sy_count(SY_C_SKMSG_PASSED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
