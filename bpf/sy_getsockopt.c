// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/getsockopt: answer SO_ORIGINAL_DST the way netfilter would after an
 * iptables REDIRECT, so proxies written for iptables (Envoy, Pipy, our own
 * sidecar) work unchanged:
 *
 *   getsockopt(fd, SOL_IP,   SO_ORIGINAL_DST,      &sockaddr_in,  16)
 *   getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sockaddr_in6, 28)
 *
 * The kernel's own handler runs first (ENOPROTOOPT without conntrack); we
 * overwrite the result only when sy_origdst knows the accepted connection.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "helpers.h"
#include "monitor.h"

#define SY_SO_ORIGINAL_DST 80 /* == IP6T_SO_ORIGINAL_DST */
#define SY_SOL_IP 0
#define SY_SOL_IPV6 41

SEC("cgroup/getsockopt")
int sy_getsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->optname != SY_SO_ORIGINAL_DST)
		return 1;
	if (ctx->level != SY_SOL_IP && ctx->level != SY_SOL_IPV6)
		return 1;

	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return 1;

	/* The caller holds the accepted socket: its peer is the client. */
	struct sy_addr local, remote;

	__u32 family = sk->family;

	if (family == AF_INET) {
		__u32 src = sk->src_ip4, dst = sk->dst_ip4;

		sy_barrier();
		sy_addr_from_v4(&local, src);
		sy_addr_from_v4(&remote, dst);
	} else if (family == AF_INET6) {
		SY_LOAD_IP6(&local, sk->src_ip6);
		SY_LOAD_IP6(&remote, sk->dst_ip6);
	} else {
		return 1;
	}

	struct sy_tuple t;

	__u16 remote_port = bpf_ntohs(sk->dst_port), local_port = (__u16)sk->src_port;

	__u64 netns = bpf_get_netns_cookie(ctx);

	sy_barrier();
	sy_tuple_fill(&t, netns, &remote, remote_port, &local, local_port);
	/* The transient map too: a tc-origin entry sock_ops could not move (sy_origdst full). */
	struct sy_origdst *od = sy_origdst_find(&t);

	if (!od) {
		sy_count(SY_C_GETSOCKOPT_MISS);
		/*
		 * Only a mesh pod's miss is news: its sidecar will not know where to go.
		 * The pod lookup is made only while the monitor is on: a miss (any
		 * proxy's socket nothing redirected) costs nothing more when off.
		 */
		if (sy_monitor_on() && bpf_map_lookup_elem(&sy_pods, &netns))
			sy_monitor_conn(SY_HOOK_GETSOCKOPT, SY_C_GETSOCKOPT_MISS, netns, &remote, remote_port, &local,
					local_port, &local, local_port, 0, 1);
		return 1;
	}

	if (ctx->level == SY_SOL_IP) {
		struct sockaddr_in *sa = ctx->optval;

		/* An IPv6 original destination has no sockaddr_in form. */
		if ((void *)(sa + 1) > ctx->optval_end || !sy_addr_is_v4(&od->addr))
			return 1;
		sa->sin_family = AF_INET;
		sa->sin_port = bpf_htons(od->port);
		sa->sin_addr.s_addr = od->addr.words[3];
		__builtin_memset(sa->__pad, 0, sizeof(sa->__pad));
		ctx->optlen = sizeof(*sa);
	} else {
		struct sockaddr_in6 *sa6 = ctx->optval;

		if ((void *)(sa6 + 1) > ctx->optval_end)
			return 1;
		sa6->sin6_family = AF_INET6;
		sa6->sin6_port = bpf_htons(od->port);
		sa6->sin6_flowinfo = 0;
		sa6->sin6_addr.in6_u.u6_addr32[0] = od->addr.words[0];
		sa6->sin6_addr.in6_u.u6_addr32[1] = od->addr.words[1];
		sa6->sin6_addr.in6_u.u6_addr32[2] = od->addr.words[2];
		sa6->sin6_addr.in6_u.u6_addr32[3] = od->addr.words[3];
		sa6->sin6_scope_id = 0;
		ctx->optlen = sizeof(*sa6);
	}
	ctx->retval = 0;
	sy_count(SY_C_GETSOCKOPT_ANSWERED);
	sy_monitor_conn(SY_HOOK_GETSOCKOPT, SY_C_GETSOCKOPT_ANSWERED, netns, &remote, remote_port, &local, local_port,
			&od->addr, od->port, od->pod_netns_cookie, 1);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
