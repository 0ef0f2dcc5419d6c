// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc ingress/egress on a mesh pod's interface, inside the pod's netns:
 * inbound connections that never met our connect hook (they come from
 * another node, from a non-mesh pod, or from the host) are steered to the
 * sidecar's inbound port, the way iptables REDIRECT would in PREROUTING.
 *
 *   ingress SYN     C:c -> P:80       becomes C:c -> P:15003, origdst P:80 recorded
 *   ingress packet  C:c -> P:80       becomes C:c -> P:15003 while the entry lives
 *   egress  packet  P:15003 -> C:c    becomes P:80 -> C:c    (the client sees :80)
 *
 * The entry is keyed exactly as sy_getsockopt looks it up, so the sidecar
 * reads P:80 as SO_ORIGINAL_DST. A SYN's entry goes to the LRU
 * sy_origdst_transient: a flood of SYNs that never complete evicts its own
 * oldest entries and nothing else. sy_sockops moves the entry to sy_origdst
 * when the sidecar's socket is established and back to the LRU when it
 * closes (late FIN retransmits still reach the TIME_WAIT socket); an RST in
 * either direction deletes it. IPv4 and IPv6
 * (no extension headers); anything else passes untouched.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "helpers.h"
#include "monitor.h"

#define SY_IP_FRAGMENTED 0x3fff /* MF | fragment offset */

struct sy_packet {
	struct sy_addr saddr;
	struct sy_addr daddr;
	__u16 sport;
	__u16 dport;
	__u32 l4_offset;
	__u8 syn, ack, rst;
};

static __always_inline int sy_parse(struct __sk_buff *skb, struct sy_packet *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > end)
		return -1;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP ||
		    (ip->frag_off & bpf_htons(SY_IP_FRAGMENTED)))
			return -1;
		__u32 ihl = (ip->ihl & 0xf) * 4;

		if (ihl < sizeof(*ip))
			return -1;
		sy_addr_from_v4(&p->saddr, ip->saddr);
		sy_addr_from_v4(&p->daddr, ip->daddr);
		p->l4_offset = sizeof(*eth) + ihl;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(&p->saddr, &ip6->saddr, sizeof(p->saddr));
		__builtin_memcpy(&p->daddr, &ip6->daddr, sizeof(p->daddr));
		p->l4_offset = sizeof(*eth) + sizeof(*ip6);
	} else {
		return -1;
	}

	if (p->l4_offset > 128)
		return -1;
	tcp = data + p->l4_offset;
	if ((void *)(tcp + 1) > end)
		return -1;
	p->sport = bpf_ntohs(tcp->source);
	p->dport = bpf_ntohs(tcp->dest);
	p->syn = tcp->syn;
	p->ack = tcp->ack;
	p->rst = tcp->rst;
	return 0;
}

/* Rewrite one TCP port in place and fix the checksum (ports are not in the pseudo-header). */
static __always_inline int sy_rewrite_port(struct __sk_buff *skb, __u32 l4_offset, __u32 port_field,
					   __u16 old_port, __u16 new_port)
{
	__be16 old_be = bpf_htons(old_port), new_be = bpf_htons(new_port);

	if (bpf_l4_csum_replace(skb, l4_offset + offsetof(struct tcphdr, check), old_be, new_be,
				sizeof(new_be)))
		return -1;
	return bpf_skb_store_bytes(skb, l4_offset + port_field, &new_be, sizeof(new_be), 0);
}

static __always_inline struct sy_pod_config *sy_pod_of(const struct sy_addr *ip, __u64 *netns)
{
	struct sy_pod_ref *ref = bpf_map_lookup_elem(&sy_pod_by_ip, ip);

	if (!ref)
		return 0;
	*netns = ref->netns_cookie;
	return bpf_map_lookup_elem(&sy_pods, netns);
}

/* Counts a SYN's decision and reports it to the monitor: the client dialled dport, it now goes to to_port. */
static __always_inline void sy_tc_decided(enum sy_counter c, __u64 netns, const struct sy_packet *p, __u16 to_port)
{
	sy_count(c);
	sy_monitor_conn(SY_HOOK_TC_INGRESS, c, netns, &p->saddr, p->sport, &p->daddr, to_port, &p->daddr, p->dport, netns,
			0);
}

SEC("tc")
int sy_tc_ingress(struct __sk_buff *skb)
{
	struct sy_packet p;
	struct sy_tuple t;
	__u64 netns;

	if (sy_parse(skb, &p))
		return TC_ACT_UNSPEC;
	struct sy_pod_config *pod = sy_pod_of(&p.daddr, &netns);

	if (!pod)
		return TC_ACT_UNSPEC;
	__u16 inbound = pod->inbound_port;

	sy_tuple_fill(&t, 0, &p.saddr, p.sport, &p.daddr, inbound);

	if (p.syn && !p.ack) {
		if (sy_inbound_excluded(pod, p.dport)) {
			if (p.dport != inbound)
				sy_tc_decided(SY_C_TC_EXCLUDED, netns, &p, p.dport);
			return TC_ACT_UNSPEC;
		}
		struct sy_origdst *existing = bpf_map_lookup_elem(&sy_origdst, &t);

		/* A connect-origin entry with the same tuple is a live connection of the pod's own. */
		if (existing && existing->origin != SY_ORIGIN_TC_INBOUND) {
			sy_tc_decided(SY_C_TC_DROPPED_COLLISION, netns, &p, p.dport);
			sy_pod_count(netns, dropped);
			return TC_ACT_SHOT;
		}
		struct sy_origdst od = {
			.addr = p.daddr,
			.port = p.dport,
			.origin = SY_ORIGIN_TC_INBOUND,
			.pod_netns_cookie = netns,
		};
		/* Fail closed: an inbound flow we cannot track must not bypass the sidecar. */
		if (bpf_map_update_elem(&sy_origdst_transient, &t, &od, BPF_ANY)) {
			sy_tc_decided(SY_C_TC_DROPPED_MAP_FULL, netns, &p, p.dport);
			sy_pod_count(netns, dropped);
			return TC_ACT_SHOT;
		}
		sy_tc_decided(SY_C_TC_INBOUND_NEW, netns, &p, inbound);
		sy_pod_count(netns, tc_inbound_new);
	} else {
		struct sy_origdst *od = sy_origdst_find(&t);

		if (!od || od->origin != SY_ORIGIN_TC_INBOUND || od->port != p.dport)
			return TC_ACT_UNSPEC;
		if (p.rst)
			sy_origdst_forget(&t);
	}

	if (sy_rewrite_port(skb, p.l4_offset, offsetof(struct tcphdr, dest), p.dport, inbound))
		return TC_ACT_SHOT;
	sy_count(SY_C_TC_INBOUND_PACKETS);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int sy_tc_egress(struct __sk_buff *skb)
{
	struct sy_packet p;
	struct sy_tuple t;
	__u64 netns;

	if (sy_parse(skb, &p))
		return TC_ACT_UNSPEC;
	struct sy_pod_config *pod = sy_pod_of(&p.saddr, &netns);

	if (!pod || p.sport != pod->inbound_port)
		return TC_ACT_UNSPEC;

	sy_tuple_fill(&t, 0, &p.daddr, p.dport, &p.saddr, p.sport);
	struct sy_origdst *od = sy_origdst_find(&t);

	/* Connect-path entries share the key space; their peers expect :15003. */
	if (!od || od->origin != SY_ORIGIN_TC_INBOUND)
		return TC_ACT_UNSPEC;
	__u16 original = od->port;

	if (p.rst)
		sy_origdst_forget(&t);
	if (sy_rewrite_port(skb, p.l4_offset, offsetof(struct tcphdr, source), p.sport, original))
		return TC_ACT_SHOT;
	sy_count(SY_C_TC_OUTBOUND_PACKETS);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
