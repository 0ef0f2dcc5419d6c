/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The original destination's hand-off from connect4/6 (which rewrites the
 * destination) to sock_ops TCP_CONNECT_CB (where the socket first has its
 * tuple). TCP_CONNECT_CB runs inside the same connect() call, in the same
 * task, after the source port is chosen and before the SYN is sent.
 *
 * Two builds of sy_connect.c and sy_sockops.c, chosen by the agent at load
 * from what the kernel offers:
 *
 *   task storage (default)  the record lives in the connecting task's local
 *                           storage, allocated once per task and overwritten
 *                           in place: no map update per connect. Needs task
 *                           storage helpers in cgroup sock_addr and sock_ops
 *                           programs (recent kernels).
 *   socket cookie           -DSY_HANDOFF_COOKIE: an LRU hash keyed by socket
 *                           cookie, for older kernels; one map update and one
 *                           delete per connect. LRU because a connect that
 *                           fails before TCP_CONNECT_CB leaves its entry.
 *
 * Either way the socket cookie makes sure a record is only ever taken by the
 * socket that put it.
 */
#ifndef SWITCHYARD_HANDOFF_H
#define SWITCHYARD_HANDOFF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "switchyard.h"

#ifdef SY_HANDOFF_COOKIE

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, struct sy_origdst);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_origdst_by_cookie SEC(".maps");

static __always_inline int sy_handoff_put(struct bpf_sock_addr *ctx, const struct sy_origdst *od)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	return bpf_map_update_elem(&sy_origdst_by_cookie, &cookie, od, BPF_ANY);
}

static __always_inline int sy_handoff_take(struct bpf_sock_ops *skops, struct sy_origdst *out)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct sy_origdst *od = bpf_map_lookup_elem(&sy_origdst_by_cookie, &cookie);

	if (!od)
		return -1;
	*out = *od;
	bpf_map_delete_elem(&sy_origdst_by_cookie, &cookie);
	return 0;
}

#else

struct sy_origdst_pending {
	__u64 socket_cookie; /* 0: taken */
	struct sy_origdst od;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sy_origdst_pending);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_origdst_pending SEC(".maps");

static __always_inline int sy_handoff_put(struct bpf_sock_addr *ctx, const struct sy_origdst *od)
{
	struct sy_origdst_pending *p =
		bpf_task_storage_get(&sy_origdst_pending, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!p)
		return -1;
	p->socket_cookie = bpf_get_socket_cookie(ctx);
	p->od = *od;
	return 0;
}

static __always_inline int sy_handoff_take(struct bpf_sock_ops *skops, struct sy_origdst *out)
{
	struct sy_origdst_pending *p = bpf_task_storage_get(&sy_origdst_pending, bpf_get_current_task_btf(), 0, 0);

	if (!p || !p->socket_cookie || p->socket_cookie != bpf_get_socket_cookie(skops))
		return -1;
	p->socket_cookie = 0;
	*out = p->od;
	return 0;
}

#endif /* SY_HANDOFF_COOKIE */

#endif /* SWITCHYARD_HANDOFF_H */
