/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The decision monitor: the programs that decide a connection's fate
 * (connect, sock_ops, getsockopt, tc ingress) describe each decision in an
 * event on the sy_events ring buffer, which the agent streams to
 * `switchyard monitor` and `kubectl switchyard monitor`.
 *
 * Off by default. A program asks sy_monitor_on() once per run: one lookup
 * in a one-slot array, which the verifier inlines, and nothing else while
 * the agent has not set enabled (it does so only while someone watches).
 * On, a per-CPU budget caps the rate; what exceeds it, or finds the ring
 * full, is counted in sy_monitor_budget.lost and never blocks a program.
 */
#ifndef SWITCHYARD_MONITOR_H
#define SWITCHYARD_MONITOR_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "switchyard.h"

#define SY_MONITOR_RING_BYTES (256 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sy_monitor_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_monitor SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sy_monitor_budget);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_monitor_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SY_MONITOR_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_events SEC(".maps");

/* The monitor's settings while it is on; NULL (the common case) while it is off. */
static __always_inline const struct sy_monitor_config *sy_monitor_on(void)
{
#ifdef SY_MONITOR_COMPILED_OUT
	/* bench/monitor.ts only: the baseline that shows what the off switch costs. */
	return 0;
#else
	__u32 key = 0;
	const struct sy_monitor_config *m = bpf_map_lookup_elem(&sy_monitor, &key);

	return m && m->enabled ? m : 0;
#endif
}

/*
 * A zeroed event to fill and sy_monitor_submit(), or NULL when this CPU's
 * budget for the second is spent or the ring is full (counted as lost).
 */
static __always_inline struct sy_monitor_event *sy_monitor_reserve(const struct sy_monitor_config *m, __u8 hook,
								   __u32 reason, __u64 netns)
{
	__u32 key = 0;
	struct sy_monitor_budget *b = bpf_map_lookup_elem(&sy_monitor_budget, &key);
	struct sy_monitor_event *ev;
	__u64 now = bpf_ktime_get_ns();

	if (!b)
		return 0;
	if (now - b->window_start_ns >= 1000000000ULL) {
		b->window_start_ns = now;
		b->used = 0;
	}
	if (b->used >= m->events_per_sec) {
		b->lost++;
		return 0;
	}
	ev = bpf_ringbuf_reserve(&sy_events, sizeof(*ev), 0);
	if (!ev) {
		b->lost++;
		return 0;
	}
	b->used++;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = now;
	ev->hook = hook;
	ev->reason = reason;
	ev->netns_cookie = netns;
	return ev;
}

/*
 * Not inlined, on purpose and at no cost while the monitor is off: a
 * function's signature is what puts struct sy_monitor_event in the objects'
 * BTF, where test/abi.test.ts holds the agent's decoder to it.
 */
static __noinline void sy_monitor_submit(struct sy_monitor_event *ev)
{
	bpf_ringbuf_submit(ev, 0);
}

/* The calling process, for the hooks that run in its context (connect, getsockopt). */
static __always_inline void sy_monitor_task(struct sy_monitor_event *ev)
{
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->uid = (__u32)bpf_get_current_uid_gid();
}

/*
 * Reports a decision about a connection whose ends are both known (sock_ops,
 * getsockopt, tc): src -> dst as it runs now, orig as the client asked for
 * it, pod_netns the pod whose sidecar receives it. Costs one lookup when off.
 */
static __always_inline void sy_monitor_conn(__u8 hook, __u32 reason, __u64 netns, const struct sy_addr *src,
					    __u16 src_port, const struct sy_addr *dst, __u16 dst_port,
					    const struct sy_addr *orig, __u16 orig_port, __u64 pod_netns, int in_task)
{
	const struct sy_monitor_config *m = sy_monitor_on();
	struct sy_monitor_event *ev;

	if (!m)
		return;
	ev = sy_monitor_reserve(m, hook, reason, netns);
	if (!ev)
		return;
	ev->src = *src;
	ev->src_port = src_port;
	ev->dst = *dst;
	ev->dst_port = dst_port;
	ev->orig = *orig;
	ev->orig_port = orig_port;
	ev->pod_netns_cookie = pod_netns;
	if (in_task)
		sy_monitor_task(ev);
	sy_monitor_submit(ev);
}

#endif /* SWITCHYARD_MONITOR_H */
