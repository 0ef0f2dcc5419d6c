// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/connect4 and cgroup/connect6: steer a mesh pod's TCP connects.
 *
 *   app connect(dst)            -> 127.0.0.1:<outbound port>   (origdst recorded)
 *   sidecar connect(local pod)  -> <pod ip>:<that pod's inbound port>
 *   sidecar connect(elsewhere)  -> untouched, so the proxy never loops
 *
 * The original destination is handed to sock_ops (handoff.h), which moves
 * it to the connection's tuple at TCP_CONNECT_CB, still inside this
 * connect() call, before the SYN is sent.
 *
 * Service load balancing comes first (lb.h): a connect to a ClusterIP is
 * given a backend here, except a mesh app's, which goes to its sidecar with
 * the ClusterIP as the original destination; the sidecar's own connect to
 * the ClusterIP is then balanced, and the same-node inbound rule applies to
 * the backend it gets. UDP sockets get load balancing only.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "helpers.h"
#include "lb.h"
#include "handoff.h"
#include "monitor.h"

#define SY_ALLOW 1
#define SY_REFUSE 0 /* connect() fails with EPERM */

struct sy_connect_target {
	struct sy_addr addr;
	__u16 port;
	__u16 rewrite_to_loopback; /* outbound: address changes too */
	__u32 reason;              /* the sy_counter the decision counted, for the monitor */
};

/* Counts a decision and remembers it as the reason the monitor reports. */
#define sy_decided(target, c)         \
	do {                          \
		sy_count(c);          \
		(target)->reason = (c); \
	} while (0)

/* Hands the original destination to sock_ops (handoff.h). */
static __always_inline int sy_stash_origdst(struct bpf_sock_addr *ctx, const struct sy_addr *dst,
					    __u16 port, __u8 origin, __u64 pod_netns)
{
	struct sy_origdst od = {
		.addr = *dst,
		.port = port,
		.origin = origin,
		.pod_netns_cookie = pod_netns,
	};

	return sy_handoff_put(ctx, &od);
}

/* Who is making a TCP connect: looked up once, read by load balancing and by the mesh decision. */
struct sy_caller {
	__u64 netns;
	struct sy_pod_config *pod; /* NULL: not a mesh pod's netns */
	int in_pod;                /* in the pod's cgroup (not a foreign process that entered its netns) */
	int sidecar;               /* in the pod, as the sidecar's uid */
};

static __always_inline void sy_caller_of(struct bpf_sock_addr *ctx, struct sy_caller *c)
{
	c->netns = bpf_get_netns_cookie(ctx);
	c->pod = bpf_map_lookup_elem(&sy_pods, &c->netns);
	c->in_pod = 0;
	c->sidecar = 0;
	if (!c->pod)
		return;
	c->in_pod = !c->pod->cgroup_id || bpf_get_current_ancestor_cgroup_id(c->pod->cgroup_level) == c->pod->cgroup_id;
	c->sidecar = c->in_pod && (__u32)bpf_get_current_uid_gid() == c->pod->sidecar_uid;
}

/* Balances a connect to a Service frontend; a mesh app's TCP goes to its sidecar first (caller is NULL for UDP). */
static __always_inline int sy_connect_lb(struct bpf_sock_addr *ctx, const struct sy_caller *c, struct sy_addr *dst,
					 __u16 *port)
{
	__u8 proto = ctx->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
	struct sy_lb_frontend *fe = sy_lb_frontend(dst, *port, proto);

	if (!fe)
		return SY_LB_NONE;
	if (c && c->pod && c->in_pod && !c->sidecar && !sy_outbound_excluded(c->pod, dst, *port)) {
		sy_count(SY_C_LB_MESH_DEFERRED);
		return SY_LB_NONE;
	}
	return sy_lb_translate(ctx, fe, dst, port);
}

/*
 * Decide what a connect becomes. Returns SY_ALLOW or SY_REFUSE and fills
 * *target when the destination must change (target->port != 0).
 */
static __always_inline int sy_decide(struct bpf_sock_addr *ctx, const struct sy_caller *c, int lb,
				     const struct sy_addr *dst, __u16 port, struct sy_connect_target *target)
{
	struct sy_pod_config *pod = c->pod;
	__u64 netns = c->netns;

	if (!pod) {
		sy_decided(target, SY_C_CONNECT_NOT_MESH);
		return SY_ALLOW;
	}
	if (!c->in_pod) {
		sy_decided(target, SY_C_CONNECT_FOREIGN_CGROUP);
		return SY_ALLOW;
	}
	if (sy_addr_is_loopback(dst)) {
		sy_decided(target, SY_C_CONNECT_EXCLUDED);
		return SY_ALLOW;
	}

	if (c->sidecar) {
		/* Same-node inbound: the sidecar dials a mesh pod on this node. */
		struct sy_pod_ref *peer_ref = bpf_map_lookup_elem(&sy_pod_by_ip, dst);

		if (!peer_ref || peer_ref->netns_cookie == netns) {
			sy_decided(target, SY_C_CONNECT_SIDECAR_PASSED);
			sy_pod_count(netns, sidecar_passed);
			return SY_ALLOW;
		}
		__u64 peer_netns = peer_ref->netns_cookie;
		struct sy_pod_config *peer = bpf_map_lookup_elem(&sy_pods, &peer_netns);

		if (!peer || sy_inbound_excluded(peer, port)) {
			sy_decided(target, SY_C_CONNECT_SIDECAR_PASSED);
			sy_pod_count(netns, sidecar_passed);
			return SY_ALLOW;
		}
		if (sy_stash_origdst(ctx, dst, port, SY_ORIGIN_CONNECT_INBOUND, peer_netns)) {
			sy_decided(target, SY_C_CONNECT_REFUSED_MAP_FULL);
			sy_pod_count(netns, dropped);
			return SY_REFUSE;
		}
		target->addr = *dst;
		target->port = peer->inbound_port;
		target->rewrite_to_loopback = 0;
		sy_decided(target, SY_C_CONNECT_REDIRECTED_INBOUND);
		sy_pod_count(peer_netns, redirected_inbound);
		return SY_ALLOW;
	}

	/*
	 * An app's connect to a Service was balanced here only because the Service
	 * address it dialled is excluded (sy_connect_lb); the exclusion applies to
	 * that address, as iptables rules see it before kube-proxy's DNAT, so the
	 * backend it got does not bring the sidecar back in.
	 */
	if (lb == SY_LB_TRANSLATED || sy_outbound_excluded(pod, dst, port)) {
		sy_decided(target, SY_C_CONNECT_EXCLUDED);
		sy_pod_count(netns, excluded);
		return SY_ALLOW;
	}
	/*
	 * Fail closed: a connection we cannot account for must not reach the
	 * sidecar without its original destination, nor bypass it.
	 */
	if (sy_stash_origdst(ctx, dst, port, SY_ORIGIN_CONNECT_OUTBOUND, netns)) {
		sy_decided(target, SY_C_CONNECT_REFUSED_MAP_FULL);
		sy_pod_count(netns, dropped);
		return SY_REFUSE;
	}
	target->port = pod->outbound_port;
	target->rewrite_to_loopback = 1;
	sy_decided(target, SY_C_CONNECT_REDIRECTED_OUTBOUND);
	sy_pod_count(netns, redirected_outbound);
	return SY_ALLOW;
}

/*
 * Load balancing, then the mesh decision, for one connect. On return, lb says whether
 * dst and port name a backend; target, whether the mesh rewrites further.
 */
static __always_inline int sy_connect_steer(struct bpf_sock_addr *ctx, struct sy_addr *dst, __u16 *port,
					    struct sy_connect_target *target, int *lb)
{
	struct sy_caller c;

	if (ctx->type != SOCK_STREAM) {
		*lb = sy_connect_lb(ctx, NULL, dst, port);
		if (*lb != SY_LB_NO_BACKEND)
			return SY_ALLOW;
	} else {
		sy_caller_of(ctx, &c);
		*lb = sy_connect_lb(ctx, &c, dst, port);
		if (*lb != SY_LB_NO_BACKEND)
			return sy_decide(ctx, &c, *lb, dst, *port, target);
	}
	bpf_set_retval(-ECONNREFUSED); /* a Service without endpoints: refuse at once, as kube-proxy's REJECT does */
	return SY_REFUSE;
}

/*
 * Reports a connect's decision to the monitor: orig is what the app asked
 * for, ctx now holds where it goes. A connect outside every mesh pod that
 * nothing translated is not reported: nothing was decided about it.
 */
static __always_inline void sy_monitor_connect(struct bpf_sock_addr *ctx, const struct sy_monitor_config *m, __u8 hook,
					       const struct sy_addr *orig, __u16 orig_port,
					       const struct sy_connect_target *target, int lb)
{
	struct sy_monitor_event *ev;
	__u32 reason = target->reason;

	if (lb == SY_LB_NO_BACKEND)
		reason = SY_C_LB_NO_BACKEND;
	else if (reason == SY_C_MAX || reason == SY_C_CONNECT_NOT_MESH)
		reason = lb == SY_LB_TRANSLATED ? SY_C_LB_TRANSLATED : SY_C_MAX;
	if (reason == SY_C_MAX)
		return;
	ev = sy_monitor_reserve(m, hook, reason, bpf_get_netns_cookie(ctx));
	if (!ev)
		return;
	sy_monitor_task(ev);
	ev->orig = *orig;
	ev->orig_port = orig_port;
	if (hook == SY_HOOK_CONNECT4) {
		sy_addr_from_v4(&ev->dst, ctx->user_ip4);
	} else {
		SY_LOAD_IP6(&ev->dst, ctx->user_ip6);
	}
	ev->dst_port = bpf_ntohs((__u16)ctx->user_port);
	if (lb == SY_LB_TRANSLATED)
		ev->flags = SY_MON_F_BALANCED;
	sy_monitor_submit(ev);
}

static __always_inline int sy_connect4_steer(struct bpf_sock_addr *ctx, struct sy_addr *dst, __u16 *port,
					     struct sy_connect_target *target, int *lb)
{
	int verdict = sy_connect_steer(ctx, dst, port, target, lb);

	if (verdict != SY_ALLOW)
		return verdict;
	if (target->port) {
		if (target->rewrite_to_loopback)
			ctx->user_ip4 = bpf_htonl(0x7f000001);
		else if (*lb == SY_LB_TRANSLATED)
			ctx->user_ip4 = target->addr.words[3];
		ctx->user_port = bpf_htons(target->port);
	} else if (*lb == SY_LB_TRANSLATED) {
		ctx->user_ip4 = dst->words[3];
		ctx->user_port = bpf_htons(*port);
	}
	return SY_ALLOW;
}

SEC("cgroup/connect4")
int sy_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM && ctx->type != SOCK_DGRAM)
		return SY_ALLOW;

	struct sy_addr dst;
	struct sy_connect_target target = { .reason = SY_C_MAX };
	__u32 orig_ip4 = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port), orig_port = port;
	int lb;

	sy_addr_from_v4(&dst, orig_ip4);
	int verdict = sy_connect4_steer(ctx, &dst, &port, &target, &lb);
	/* Asked only now, so that nothing of the monitor is live across the decision. */
	const struct sy_monitor_config *mon = sy_monitor_on();

	if (mon) {
		struct sy_addr orig;

		sy_addr_from_v4(&orig, orig_ip4);
		sy_monitor_connect(ctx, mon, SY_HOOK_CONNECT4, &orig, orig_port, &target, lb);
	}
	return verdict;
}

static __always_inline int sy_connect6_steer(struct bpf_sock_addr *ctx, struct sy_addr *dst, __u16 *port,
					     struct sy_connect_target *target, int *lb)
{
	/* Keep the family the app chose: v4-mapped stays v4-mapped. */
	int v4 = sy_addr_is_v4(dst);
	int verdict = sy_connect_steer(ctx, dst, port, target, lb);

	if (verdict != SY_ALLOW)
		return verdict;
	if (target->port && target->rewrite_to_loopback) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = v4 ? SY_V4_MAPPED_PREFIX : 0;
		ctx->user_ip6[3] = v4 ? bpf_htonl(0x7f000001) : bpf_htonl(1);
		ctx->user_port = bpf_htons(target->port);
		return SY_ALLOW;
	}
	if (*lb == SY_LB_TRANSLATED) {
		/* A v4-mapped connect stays v4-mapped: frontends and backends of one family. */
		SY_STORE_IP6(ctx->user_ip6, dst);
	}
	if (target->port)
		ctx->user_port = bpf_htons(target->port);
	else if (*lb == SY_LB_TRANSLATED)
		ctx->user_port = bpf_htons(*port);
	return SY_ALLOW;
}

SEC("cgroup/connect6")
int sy_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM && ctx->type != SOCK_DGRAM)
		return SY_ALLOW;

	struct sy_addr dst, orig;
	struct sy_connect_target target = { .reason = SY_C_MAX };
	__u16 port = bpf_ntohs((__u16)ctx->user_port), orig_port = port;
	int lb;

	SY_LOAD_IP6(&dst, ctx->user_ip6);
	orig = dst;
	int verdict = sy_connect6_steer(ctx, &dst, &port, &target, &lb);
	const struct sy_monitor_config *mon = sy_monitor_on();

	if (mon)
		sy_monitor_connect(ctx, mon, SY_HOOK_CONNECT6, &orig, orig_port, &target, lb);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
