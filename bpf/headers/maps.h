/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps shared by every Switchyard program. Each program object includes this
 * header; all maps are pinned by name, so the objects loaded from separate
 * files share one instance under the pin root (default /sys/fs/bpf/switchyard).
 * max_entries below are defaults: the agent sets the real sizes before load.
 */
#ifndef SWITCHYARD_MAPS_H
#define SWITCHYARD_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "switchyard.h"

/* Mesh pods on this node, keyed by network namespace cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct sy_pod_config);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_pods SEC(".maps");

/* Node-local pod IP -> pod, for same-node inbound and for tc. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sy_addr);
	__type(value, struct sy_pod_ref);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_pod_by_ip SEC(".maps");

/*
 * Original destinations of live connections, keyed by their tuple; this is
 * what getsockopt(SO_ORIGINAL_DST) and tc reply translation read. A plain
 * hash, not LRU: evicting a live entry would silently break a connection,
 * while a full map is visible (counters) and handled by policy.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sy_tuple);
	__type(value, struct sy_origdst);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_origdst SEC(".maps");

/*
 * tc-origin entries that no live socket holds: an inbound SYN's until the
 * sidecar has accepted the connection (sock_ops then moves it to
 * sy_origdst), and a closed connection's, so that a retransmitted FIN or
 * final ACK is still translated to the TIME_WAIT socket. LRU: a SYN flood
 * evicts the oldest half-open entries here and never fills sy_origdst,
 * where every entry is a live connection and an eviction would break it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_tuple);
	__type(value, struct sy_origdst);
	__uint(max_entries, 16384);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_origdst_transient SEC(".maps");

/* An original destination by tuple: a live connection's, else a transient tc-origin one. */
static __always_inline struct sy_origdst *sy_origdst_find(const struct sy_tuple *t)
{
	struct sy_origdst *od = bpf_map_lookup_elem(&sy_origdst, t);

	return od ? od : bpf_map_lookup_elem(&sy_origdst_transient, t);
}

/* Forgets a tuple in both maps (an RST ends the flow whichever holds it). */
static __always_inline void sy_origdst_forget(const struct sy_tuple *t)
{
	bpf_map_delete_elem(&sy_origdst, t);
	bpf_map_delete_elem(&sy_origdst_transient, t);
}

/*
 * Intra-pod connections opened by a sidecar, keyed by the connecting
 * socket's sy_sock_key: the accepting end reads it to tell a sidecar -> app
 * pair (accelerated) from the sidecar's own internal connections (left
 * alone). Written at active-established, consumed at passive-established a
 * moment later; LRU so that a stray entry never blocks a new one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_sock_key);
	__type(value, __u32);
	__uint(max_entries, 8192);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_sidecar_conns SEC(".maps");

/*
 * The kernel address of each socket in sy_sock_hash, by the same key, so
 * that sk_msg can read its peer's receive state for backpressure
 * (sy_skmsg.c); sk_msg programs may not take a reference on a socket. Written
 * when sock_ops inserts the socket (storing an address needs CAP_PERFMON, as
 * reading through it with bpf_probe_read_kernel does). LRU, so that closed
 * sockets' entries age out: a stale entry can only be read for a peer that
 * has left the sockhash, whose message takes TCP anyway, and a read through a
 * stale address cannot fault.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_sock_key);
	__type(value, __u64);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_sock_addr SEC(".maps");

/* Intra-pod sockets of app <-> sidecar pairs, for sk_msg splicing. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__type(key, struct sy_sock_key);
	__type(value, __u64);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_sock_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, enum sy_counter);
	__type(value, __u64);
	__uint(max_entries, SY_C_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_counters SEC(".maps");

/* Per-pod counters; the agent creates the entry when it registers the pod. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u64);
	__type(value, struct sy_pod_counters);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_pod_counters SEC(".maps");

/* Service load balancing: ClusterIP:port/proto -> service id and backend count. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sy_lb_frontend_key);
	__type(value, struct sy_lb_frontend);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_lb_frontends SEC(".maps");

/* (service id, slot) -> backend pod IP:port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sy_lb_backend_key);
	__type(value, struct sy_lb_backend);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_lb_backends SEC(".maps");

/* sessionAffinity: ClientIP, keyed by the client's netns (a pod has one IP per family). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_lb_affinity_key);
	__type(value, struct sy_lb_affinity);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_lb_affinity SEC(".maps");

/*
 * Reverse translation for getpeername and UDP replies. LRU: nothing tells us
 * when a UDP socket is done, and a lost entry only changes what getpeername
 * or recvfrom reports, never where bytes go.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_lb_revnat_key);
	__type(value, struct sy_lb_revnat);
	__uint(max_entries, 131072);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_lb_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, struct sy_lb_counters);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_lb_counters SEC(".maps");

/* Adds one to a field of a per-CPU counters struct, when the map has an entry for the key. */
#define sy_map_count(map, key_val, field)                                   \
	do {                                                                \
		__typeof__(*(map).key) __k = (key_val);                     \
		__typeof__(*(map).value) *__c = bpf_map_lookup_elem(&(map), &__k); \
		if (__c)                                                    \
			__c->field += 1;                                    \
	} while (0)

#define sy_pod_count(netns_cookie, field) sy_map_count(sy_pod_counters, (__u64)(netns_cookie), field)

static __always_inline void sy_count(enum sy_counter c)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&sy_counters, &key);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

#endif /* SWITCHYARD_MAPS_H */
