/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps and packet helpers of the node frontends (sy_nodeport.c): NodePort,
 * externalIPs and LoadBalancer ingress IPs, handled by tc on the node's
 * devices. IPv4 only; see "NodePort at the node" in bpf/README.md.
 */
#ifndef SWITCHYARD_NODEPORT_H
#define SWITCHYARD_NODEPORT_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "helpers.h"

/* node frontend (address:port/proto) -> service id and backend count, as sy_lb_frontends. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sy_lb_frontend_key);
	__type(value, struct sy_lb_frontend);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_lb_external SEC(".maps");

/*
 * Flows through node frontends. LRU: nothing ends a UDP flow, and a TCP
 * flow's entry only matters for packets after its SYN; an evicted flow's
 * next packet picks again (a reset for TCP if it picks another backend).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_np_flow_key);
	__type(value, struct sy_np_flow);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_np_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_np_snat_key);
	__type(value, struct sy_np_snat);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_np_snat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_np_revnat_key);
	__type(value, struct sy_np_revnat);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_np_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sy_np_affinity_key);
	__type(value, struct sy_lb_affinity);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_np_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sy_np_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_np_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, struct sy_np_counters);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_np_counters SEC(".maps");

#define sy_np_count(service_id, field) sy_map_count(sy_np_counters, (__u32)(service_id), field)

#define SY_IP_MF_OFFSET 0x3fff /* more fragments | fragment offset */
#define SY_IP_DF 0x4000
#define SY_IP_OFF ETH_HLEN
#define SY_IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))

/* One IPv4 TCP or UDP packet, as the node frontends see it. Addresses and ports in network order. */
struct sy_np_pkt {
	__be32 saddr, daddr;
	__be16 sport, dport;
	__u32 l4_off;   /* from the start of the frame */
	__u32 ihl;      /* IP header bytes */
	__u16 tot_len;  /* host order */
	__u8 proto;
	__u8 syn_only;  /* TCP SYN without ACK: a new connection */
	__u8 df;
	__u8 closing;   /* TCP: SY_NP_ST_FIN_CLIENT for a FIN, SY_NP_ST_RST for a reset (as if the client sent it) */
};

/* 0 for an unfragmented IPv4 TCP/UDP packet; anything else passes untouched. */
static __always_inline int sy_np_parse(struct __sk_buff *skb, struct sy_np_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (ip->frag_off & bpf_htons(SY_IP_MF_OFFSET))
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;
	p->ihl = (ip->ihl & 0xf) * 4;
	if (p->ihl < sizeof(*ip))
		return -1;
	p->proto = ip->protocol;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->tot_len = bpf_ntohs(ip->tot_len);
	p->df = (ip->frag_off & bpf_htons(SY_IP_DF)) != 0;
	p->l4_off = ETH_HLEN + p->ihl;
	if (p->l4_off > ETH_HLEN + 60)
		return -1;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + p->l4_off;

		if ((void *)(tcp + 1) > end)
			return -1;
		p->sport = tcp->source;
		p->dport = tcp->dest;
		p->syn_only = tcp->syn && !tcp->ack;
		p->closing = tcp->rst ? SY_NP_ST_RST : tcp->fin ? SY_NP_ST_FIN_CLIENT : 0;
	} else {
		struct udphdr *udp = data + p->l4_off;

		if ((void *)(udp + 1) > end)
			return -1;
		p->sport = udp->source;
		p->dport = udp->dest;
		p->syn_only = 0;
		p->closing = 0;
	}
	return 0;
}

/*
 * How long a snat port stays with a flow nobody closed: RFC 5382's floor
 * for an established TCP mapping (2 h 4 min), and 60 s for UDP (Cilium's
 * non-TCP lifetime). A flow closed by a reset frees its port at once; one
 * closed by FINs after sy_np_config.snat_closed_grace_s (the last ACKs),
 * and one whose backend closed first only once that backend's TIME_WAIT is
 * over (snat_time_wait_s; sy_np_snat_port_use in sy_nodeport.c).
 */
#define SY_NP_TCP_IDLE_S 7440
#define SY_NP_UDP_IDLE_S 60

/* Seconds of the monotonic clock mod 2^16, never 0 (0 = not recorded). */
static __always_inline __u16 sy_np_now(void)
{
	__u16 t = bpf_ktime_get_coarse_ns() / 1000000000ULL;

	return t ? t : 1;
}

static __always_inline __u32 sy_np_csum_off(const struct sy_np_pkt *p)
{
	return p->l4_off + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
}

/* UDP's checksum 0 means "none": leave it so, and never produce it. */
static __always_inline __u64 sy_np_l4_flags(const struct sy_np_pkt *p)
{
	return p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrites the source (src=1) or destination address, with both checksums. */
static __always_inline int sy_np_set_addr(struct __sk_buff *skb, const struct sy_np_pkt *p, int src, __be32 from, __be32 to)
{
	__u32 off = SY_IP_OFF + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));

	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, sy_np_csum_off(p), from, to, BPF_F_PSEUDO_HDR | sizeof(to) | sy_np_l4_flags(p)))
		return -1;
	if (bpf_l3_csum_replace(skb, SY_IP_CSUM_OFF, from, to, sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
}

/* Rewrites the source (src=1) or destination port (TCP and UDP keep both at the same offsets). */
static __always_inline int sy_np_set_port(struct __sk_buff *skb, const struct sy_np_pkt *p, int src, __be16 from, __be16 to)
{
	__u32 off = p->l4_off + (src ? offsetof(struct tcphdr, source) : offsetof(struct tcphdr, dest));

	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, sy_np_csum_off(p), from, to, sizeof(to) | sy_np_l4_flags(p)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
}

/* A router's TTL decrement; 0 when the packet may go on. */
static __always_inline int sy_np_dec_ttl(struct __sk_buff *skb)
{
	__u8 ttl;

	if (bpf_skb_load_bytes(skb, SY_IP_OFF + offsetof(struct iphdr, ttl), &ttl, 1) || ttl <= 1)
		return -1;
	/* TTL is the high byte of the 16-bit word it shares with the protocol. */
	if (bpf_l3_csum_replace(skb, SY_IP_CSUM_OFF, bpf_htons((__u16)ttl << 8), bpf_htons((__u16)(ttl - 1) << 8), 2))
		return -1;
	ttl--;
	return bpf_skb_store_bytes(skb, SY_IP_OFF + offsetof(struct iphdr, ttl), &ttl, 1, 0);
}

static __always_inline __u16 sy_csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif /* SWITCHYARD_NODEPORT_H */
