/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI between Switchyard's BPF programs and the node agent.
 *
 * Every struct here is a map key or value that the agent writes or reads.
 * The agent's TypeScript codecs (interceptor/src/dataplane/abi.ts) are checked
 * against the BTF of the compiled objects by test/abi.test.ts, so a field added
 * here without a matching codec change fails the build's tests, not production.
 *
 * Conventions, chosen so that nothing needs byte-order guessing:
 *   - addresses are 16 bytes, network byte order; IPv4 is stored v4-mapped
 *     (::ffff:a.b.c.d), so one key type serves both families;
 *   - ports are host byte order everywhere.
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include <linux/types.h>

/*
 * The version of this ABI. Bump it with any change to a map's key, value,
 * type or meaning, and add the change to the history in
 * interceptor/src/dataplane/abi-record.ts (ABI_VERSION there must equal this;
 * test/abi.test.ts checks). The agent pins it beside the maps and upgrades
 * the pins of every older version in place; it refuses newer ones.
 */
#define SY_ABI_VERSION 6

#define SY_MAX_POD_IPS 2
#define SY_MAX_EXCLUDED_PORTS 16
#define SY_MAX_EXCLUDED_CIDRS 8

struct sy_addr {
	__u32 words[4];
};

/* An excluded destination range: dst matches when (dst & mask) == addr. */
struct sy_cidr {
	struct sy_addr addr;
	struct sy_addr mask;
};

/* Value of sy_pods, keyed by the pod's network namespace cookie. */
struct sy_pod_config {
	struct sy_addr ips[SY_MAX_POD_IPS]; /* all-zero slot = unused */
	/*
	 * Only sockets opened by processes inside this cgroup (at this depth of
	 * the cgroup2 tree) are intercepted. Anything else that enters the
	 * pod's netns - a CNI plugin, an operator's nsenter - is left alone.
	 * cgroup_id 0 disables the check.
	 */
	__u64 cgroup_id;
	__u32 cgroup_level;
	__u32 sidecar_uid;
	__u16 outbound_port;
	__u16 inbound_port;
	__u8 excluded_outbound_port_count;
	__u8 excluded_inbound_port_count;
	__u8 excluded_outbound_cidr_count;
	__u8 flags; /* enum sy_pod_flags */
	__u16 excluded_outbound_ports[SY_MAX_EXCLUDED_PORTS];
	__u16 excluded_inbound_ports[SY_MAX_EXCLUDED_PORTS];
	struct sy_cidr excluded_outbound_cidrs[SY_MAX_EXCLUDED_CIDRS];
};

enum sy_pod_flags {
	/*
	 * Keep this pod's app <-> sidecar sockets out of sy_sock_hash: bytes
	 * take loopback TCP. For proxies or apps that read with splice(2),
	 * which never sees bytes that sk_msg queued on a socket's ingress.
	 */
	SY_POD_F_NO_SOCKMAP = 1,
};

/* Value of sy_pod_by_ip: which registered pod owns a node-local pod IP. */
struct sy_pod_ref {
	__u64 netns_cookie;
};

/*
 * One TCP connection as seen from its client. netns_cookie is set only when
 * both ends are loopback addresses, because 127.0.0.1:x -> 127.0.0.1:15001 is
 * the same tuple in every pod; pod IPs are unique on a node and need no
 * qualifier, which is what lets two pods' programs find each other's entries.
 */
struct sy_tuple {
	__u64 netns_cookie;
	struct sy_addr client_ip;
	struct sy_addr server_ip;
	__u16 client_port;
	__u16 server_port;
	__u32 _pad;
};

enum sy_origin {
	SY_ORIGIN_CONNECT_OUTBOUND = 1, /* app connect -> local sidecar outbound port */
	SY_ORIGIN_CONNECT_INBOUND = 2,  /* sidecar connect -> same-node pod's inbound port */
	SY_ORIGIN_TC_INBOUND = 3,       /* off-node SYN rewritten by tc ingress */
};

/* The destination the client asked for, before Switchyard rewrote it. */
struct sy_origdst {
	struct sy_addr addr;
	__u16 port;
	__u8 origin; /* enum sy_origin */
	__u8 _pad;
	__u32 _pad2;
	__u64 pod_netns_cookie; /* the pod whose sidecar receives the connection */
};

/* Sockhash key: one local socket, named by its own end first. */
struct sy_sock_key {
	__u64 netns_cookie;
	struct sy_addr local_ip;
	struct sy_addr remote_ip;
	__u16 local_port;
	__u16 remote_port;
	__u32 _pad;
};

/* Value of sy_pod_counters (per CPU), keyed by netns cookie; created by the agent at registration. */
struct sy_pod_counters {
	__u64 redirected_outbound; /* this pod's app connects sent to its sidecar */
	__u64 redirected_inbound;  /* same-node sidecar connects steered to this pod's inbound port */
	__u64 excluded;            /* this pod's connects that bypassed the sidecar by exclusion */
	__u64 sidecar_passed;      /* this pod's sidecar's own upstream connects */
	__u64 tc_inbound_new;      /* off-node connections steered to this pod's inbound port */
	__u64 dropped;             /* connects refused or SYNs dropped because a map was full */
};

/* Index into the per-CPU counter array sy_counters. Append only. */
enum sy_counter {
	SY_C_CONNECT_NOT_MESH = 0,       /* socket's netns is not a registered pod */
	SY_C_CONNECT_FOREIGN_CGROUP,     /* in a pod netns but outside the pod cgroup */
	SY_C_CONNECT_EXCLUDED,           /* loopback, excluded port or CIDR */
	SY_C_CONNECT_REDIRECTED_OUTBOUND,
	SY_C_CONNECT_REDIRECTED_INBOUND, /* sidecar -> same-node mesh pod */
	SY_C_CONNECT_SIDECAR_PASSED,     /* sidecar's own upstream, left alone */
	SY_C_CONNECT_REFUSED_MAP_FULL,   /* could not record origdst: connect gets EPERM */
	SY_C_SOCKOPS_ORIGDST_MOVED,
	SY_C_SOCKOPS_ORIGDST_MAP_FULL,
	SY_C_SOCKOPS_ORIGDST_CLEANED,
	SY_C_SOCKMAP_INSERTED,
	SY_C_SOCKMAP_FULL,
	SY_C_SKMSG_REDIRECTED,
	SY_C_SKMSG_PASSED,
	SY_C_GETSOCKOPT_ANSWERED,
	SY_C_GETSOCKOPT_MISS,
	SY_C_TC_INBOUND_NEW,             /* SYN rewritten to the inbound port */
	SY_C_TC_INBOUND_PACKETS,
	SY_C_TC_OUTBOUND_PACKETS,
	SY_C_TC_EXCLUDED,
	SY_C_TC_DROPPED_MAP_FULL,        /* SYN dropped: no room to track it (fail closed) */
	SY_C_TC_DROPPED_COLLISION,       /* SYN dropped: tuple already tracked by connect */
	SY_C_LB_TRANSLATED,              /* connect/sendmsg to a Service frontend sent to a backend */
	SY_C_LB_NO_BACKEND,              /* frontend with no ready backend: connect refused */
	SY_C_LB_MESH_DEFERRED,           /* a mesh app's connect to a frontend: its sidecar balances */
	SY_C_LB_REVERSED,                /* getpeername/recvmsg answered with the frontend */
	SY_C_SOCKMAP_SKIPPED,            /* intra-pod socket kept out of the sockhash: not app <-> sidecar, or the pod opted out */
	SY_C_SKMSG_PASSED_BACKPRESSURE,  /* message sent by TCP: the peer's psock queue was full, or TCP bytes were unread */
	SY_C_NP_LOCAL,                   /* NodePort/external flow sent to a backend on this node (DNAT, client IP kept) */
	SY_C_NP_SNAT,                    /* ... to another node's backend, source rewritten to this node (snat mode) */
	SY_C_NP_DSR,                     /* ... to another node's backend, Service address carried in an IP option (dsr) */
	SY_C_NP_NO_BACKEND,              /* packet to a NodePort/external frontend without a usable backend: dropped */
	SY_C_NP_SNAT_PORTS_EXHAUSTED,    /* new snat flow dropped: no free source port for that backend */
	SY_C_NP_SNAT_REPLIES,            /* reply to a snat flow turned back towards the client */
	SY_C_NP_DSR_RECORDED,            /* backend node: a DSR option read and its reverse entry recorded */
	SY_C_NP_REPLIES_REWRITTEN,       /* reply leaving a node with the Service address as its source (DSR, local) */
	SY_C_NP_ICMP_TOO_BIG,            /* DF packet too big for the DSR option: ICMP fragmentation needed sent */
	SY_C_NP_STACK_FORWARDED,         /* translated, then left to the kernel's routing (no direct path, or to be fragmented) */
	SY_C_NP_SNAT_TIME_WAIT_REUSED,   /* new snat flow given a port its backend may still hold in TIME_WAIT: no other port was free */
	SY_C_MAX,
};

/*
 * Connect-time Service load balancing. One frontend per ClusterIP:port/proto
 * (per family); its backends sit in slots 0..backend_count-1 under the
 * frontend's service_id. The agent writes backends before the frontend that
 * counts them, and shrinks the count before it deletes slots.
 */
enum sy_lb_flags {
	SY_LB_F_AFFINITY = 1, /* sessionAffinity: ClientIP (client = netns; at the node, the client IP) */
	SY_LB_F_DSR = 2,      /* node frontends: TCP to a remote backend by direct server return */
	SY_LB_F_DSR_UDP = 4,  /* node frontends: UDP too (mode dsr; hybrid leaves UDP to snat) */
	SY_LB_F_LOCAL = 8,    /* node frontends: externalTrafficPolicy Local (the backends are this node's) */
};

struct sy_lb_frontend_key {
	struct sy_addr addr;
	__u16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 _pad;
};

struct sy_lb_frontend {
	__u32 service_id;
	__u16 backend_count; /* 0: no ready backend, connect fails with ECONNREFUSED */
	__u8 flags;          /* enum sy_lb_flags */
	__u8 _pad;
	__u32 affinity_timeout_s;
};

struct sy_lb_backend_key {
	__u32 service_id;
	__u32 slot;
};

enum sy_lb_backend_flags {
	SY_LB_BE_F_LOCAL = 1, /* the endpoint runs on this node */
};

struct sy_lb_backend {
	struct sy_addr addr;
	__u16 port;
	__u16 flags; /* enum sy_lb_backend_flags */
};

struct sy_lb_affinity_key {
	__u64 netns_cookie;
	__u32 service_id;
	__u32 _pad;
};

struct sy_lb_affinity {
	struct sy_addr addr;
	__u16 port;
	__u16 _pad;
	__u32 slot;
	__u64 last_used_ns;
};

/* A translated socket and the backend it talks to -> the frontend it asked for. */
struct sy_lb_revnat_key {
	__u64 socket_cookie;
	struct sy_addr backend;
	__u16 backend_port;
	__u16 _pad;
	__u32 _pad2;
};

struct sy_lb_revnat {
	struct sy_addr addr;
	__u16 port;
	__u16 _pad;
	__u32 service_id;
};

struct sy_lb_counters {
	__u64 translations;
	__u64 no_backend;
};

/*
 * NodePort, externalIPs and LoadBalancer ingress IPs at the node
 * (sy_nodeport.c, tc on the node's devices). sy_lb_external maps a node
 * frontend (node address:nodePort, external IP:port) to a service id whose
 * backends are in sy_lb_backends, like sy_lb_frontends does for connect.
 */
enum sy_np_path {
	SY_NP_LOCAL = 1, /* backend on this node: DNAT, the reply passes here again */
	SY_NP_SNAT = 2,  /* remote backend, source rewritten to this node */
	SY_NP_DSR = 3,   /* remote backend, Service address in an IP option; the reply goes direct */
};

/* One flow through a node frontend: every packet of it goes to one backend. */
struct sy_np_flow_key {
	struct sy_addr client;
	struct sy_addr frontend;
	__u16 client_port;
	__u16 frontend_port;
	__u8 proto;
	__u8 _pad[3];
};

struct sy_np_flow {
	struct sy_addr backend;
	__u16 backend_port;
	__u16 nat_port; /* SY_NP_SNAT: this node's source port */
	__u32 service_id;
	__u32 slot;
	__u8 path;      /* enum sy_np_path */
	__u8 state;     /* SY_NP_ST_*, for snat flows: which ends closed (0 in entries of ABI 4) */
	__u16 seen;     /* snat flows: seconds of the monotonic clock, mod 2^16, at the last packet; 0 = unknown */
};

/* sy_np_flow.state: a snat flow's port may be reused once it is over (sy_np_snat_reclaimable). */
#define SY_NP_ST_FIN_CLIENT 1
#define SY_NP_ST_FIN_BACKEND 2
#define SY_NP_ST_RST 4

/* snat: the reply's tuple at this node -> the client and the frontend it asked for. */
struct sy_np_snat_key {
	struct sy_addr backend;
	__u16 backend_port;
	__u16 nat_port;
	__u8 proto;
	__u8 _pad[3];
};

struct sy_np_snat {
	struct sy_addr client;
	struct sy_addr frontend;
	__u16 client_port;
	__u16 frontend_port;
	__u32 service_id;
	__u16 backend_closed; /* sy_np_now() when the backend sent its FIN first, so holds this tuple in TIME_WAIT; 0 = it did not */
	__u8 _pad[6];
};

/* A reply backend -> client that must leave with the frontend as its source (DSR, local). */
struct sy_np_revnat_key {
	struct sy_addr backend;
	struct sy_addr client;
	__u16 backend_port;
	__u16 client_port;
	__u8 proto;
	__u8 _pad[3];
};

struct sy_np_revnat {
	struct sy_addr frontend;
	__u16 frontend_port;
	__u16 _pad;
	__u32 service_id;
};

/* sessionAffinity: ClientIP at the node: by the client's address. */
struct sy_np_affinity_key {
	struct sy_addr client;
	__u32 service_id;
	__u32 _pad;
};

/* The node's settings (one slot). */
struct sy_np_config {
	struct sy_addr snat_addr; /* this node's IPv4 address for snat; all-zero: snat off */
	__u16 snat_port_min;      /* snat source ports, outside the node's ephemeral range */
	__u16 snat_port_max;
	__u16 snat_closed_grace_s; /* a snat port whose TCP flow closed with FINs is reused after this long */
	__u16 snat_time_wait_s;   /* ... and, when the backend closed first, not before its TIME_WAIT is over */
};

/* Per node frontend's service id. */
struct sy_np_counters {
	__u64 local;
	__u64 snat;
	__u64 dsr;
	__u64 no_backend;
	__u64 replies_rewritten; /* snat replies at the ingress node, DSR/local replies where they leave */
	__u64 icmp_too_big;
};

/*
 * The DSR option (an IPv4 option, on a TCP SYN and on every UDP datagram):
 * the frontend the client addressed. Type 0x9e: copied, class 0, number 30,
 * the experimental value of RFC 4727.
 */
#define SY_DSR_OPT_TYPE 0x9e
#define SY_DSR_OPT_LEN 8

struct sy_dsr_opt4 {
	__u8 type;
	__u8 len;
	__be16 port;
	__be32 addr;
};

/*
 * The decision monitor (headers/monitor.h). Off unless the agent sets
 * enabled, so that a program that would report a decision pays one array
 * lookup and nothing else; on, each CPU reports at most events_per_sec
 * decisions a second and counts the rest as lost.
 */
struct sy_monitor_config {
	__u32 enabled;
	__u32 events_per_sec;
};

/* Per CPU: this second's budget, and every event this CPU could not report. */
struct sy_monitor_budget {
	__u64 window_start_ns;
	__u64 used;
	__u64 lost; /* over the rate, or the ring buffer was full */
};

/* Which program made the decision. */
enum sy_monitor_hook {
	SY_HOOK_CONNECT4 = 1,
	SY_HOOK_CONNECT6 = 2,
	SY_HOOK_SOCKOPS = 3,
	SY_HOOK_GETSOCKOPT = 4,
	SY_HOOK_TC_INGRESS = 5,
	SY_HOOK_TC_NODE = 6, /* tc on the node's own devices: NodePort, external and LoadBalancer IPs */
};

enum sy_monitor_flags {
	SY_MON_F_BALANCED = 1, /* Service load balancing chose the destination */
};

/*
 * One decision, as the sy_events ring buffer carries it. The reason is the
 * sy_counter the decision also counted, so the monitor and the counters
 * always tell the same story.
 */
struct sy_monitor_event {
	__u64 ts_ns;            /* bpf_ktime_get_ns() */
	__u64 netns_cookie;     /* where the program ran: the connecting or accepting pod, or tc's pod */
	__u64 pod_netns_cookie; /* the pod whose sidecar receives the connection (0: none) */
	struct sy_addr src;     /* the client end; all-zero at connect (no port chosen yet) */
	struct sy_addr dst;     /* where the connection goes now */
	struct sy_addr orig;    /* where the client asked to go */
	__u16 src_port;
	__u16 dst_port;
	__u16 orig_port;
	__u8 hook;              /* enum sy_monitor_hook */
	__u8 flags;             /* enum sy_monitor_flags */
	__u32 reason;           /* enum sy_counter */
	__u32 pid;              /* the calling process (tgid) at connect and getsockopt; 0 elsewhere */
	__u32 uid;
	__u32 _pad;
};

#endif /* SWITCHYARD_H */
