// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg on sy_sock_hash: a send on one end of an intra-pod connection
 * (app <-> sidecar) is queued straight onto the peer socket's receive queue,
 * skipping the loopback TCP/IP stack. The peer is the socket whose local end
 * is our remote end. If it is not in the hash (not yet inserted, or the hash
 * was full), the message goes through plain TCP.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "helpers.h"

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

	if (bpf_msg_redirect_hash(msg, &sy_sock_hash, &peer, BPF_F_INGRESS) == SK_PASS) {
		sy_count(SY_C_SKMSG_REDIRECTED);
		return SK_PASS;
	}
	/* The helper says SK_DROP on a miss; we pass, so a miss never loses data. */
	sy_count(SY_C_SKMSG_PASSED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
