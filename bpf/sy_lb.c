// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Service load balancing beyond connect (connect is in sy_connect.c):
 *
 *   cgroup/sendmsg4/6      unconnected UDP datagram to a frontend -> a backend
 *   cgroup/recvmsg4/6      a reply from that backend -> source shown as the frontend
 *   cgroup/getpeername4/6  a translated socket's peer -> shown as the frontend
 *
 * Reverse entries are keyed by (socket cookie, backend), so two sockets, or
 * one socket talking to two Services, never see each other's frontends.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "helpers.h"
#include "lb.h"

#define SY_ALLOW 1

SEC("cgroup/sendmsg4")
int sy_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_DGRAM)
		return SY_ALLOW;
	struct sy_addr dst;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	sy_addr_from_v4(&dst, ctx->user_ip4);
	int lb = sy_lb_translate_if_frontend(ctx, &dst, &port, IPPROTO_UDP);

	if (lb == SY_LB_NO_BACKEND) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (lb == SY_LB_TRANSLATED) {
		ctx->user_ip4 = dst.words[3];
		ctx->user_port = bpf_htons(port);
	}
	return SY_ALLOW;
}

SEC("cgroup/sendmsg6")
int sy_sendmsg6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_DGRAM)
		return SY_ALLOW;
	struct sy_addr dst;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	SY_LOAD_IP6(&dst, ctx->user_ip6);
	int lb = sy_lb_translate_if_frontend(ctx, &dst, &port, IPPROTO_UDP);

	if (lb == SY_LB_NO_BACKEND) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (lb == SY_LB_TRANSLATED) {
		SY_STORE_IP6(ctx->user_ip6, &dst);
		ctx->user_port = bpf_htons(port);
	}
	return SY_ALLOW;
}

static __always_inline void sy_reverse4(struct bpf_sock_addr *ctx)
{
	struct sy_addr peer;

	sy_addr_from_v4(&peer, ctx->user_ip4);
	struct sy_lb_revnat *rv = sy_lb_reverse(ctx, &peer, bpf_ntohs((__u16)ctx->user_port));

	if (!rv)
		return;
	ctx->user_ip4 = rv->addr.words[3];
	ctx->user_port = bpf_htons(rv->port);
	sy_count(SY_C_LB_REVERSED);
}

static __always_inline void sy_reverse6(struct bpf_sock_addr *ctx)
{
	struct sy_addr peer;

	SY_LOAD_IP6(&peer, ctx->user_ip6);
	struct sy_lb_revnat *rv = sy_lb_reverse(ctx, &peer, bpf_ntohs((__u16)ctx->user_port));

	if (!rv)
		return;
	SY_STORE_IP6(ctx->user_ip6, &rv->addr);
	ctx->user_port = bpf_htons(rv->port);
	sy_count(SY_C_LB_REVERSED);
}

SEC("cgroup/recvmsg4")
int sy_recvmsg4(struct bpf_sock_addr *ctx)
{
	sy_reverse4(ctx);
	return 1;
}

SEC("cgroup/recvmsg6")
int sy_recvmsg6(struct bpf_sock_addr *ctx)
{
	sy_reverse6(ctx);
	return 1;
}

SEC("cgroup/getpeername4")
int sy_getpeername4(struct bpf_sock_addr *ctx)
{
	sy_reverse4(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int sy_getpeername6(struct bpf_sock_addr *ctx)
{
	sy_reverse6(ctx);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
