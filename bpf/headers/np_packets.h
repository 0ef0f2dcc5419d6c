/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packets the node frontends write (sy_nodeport.c): the DSR option on a
 * client's packet, and ICMP "fragmentation needed" for one the option would
 * make too big. See "NodePort at the node" in bpf/README.md.
 */
#ifndef SWITCHYARD_NP_PACKETS_H
#define SWITCHYARD_NP_PACKETS_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include "nodeport.h"

/* ICMP "destination unreachable" as RFC 1191 lays it out (linux/icmp.h pulls in libc headers). */
#define SY_ICMP_DEST_UNREACH 3
#define SY_ICMP_FRAG_NEEDED 4
struct sy_icmp_frag_needed {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 unused;
	__be16 mtu;
};

/*
 * Turns a DF packet that the DSR option would make too big into ICMP
 * "fragmentation needed" (RFC 1191) from the address the client sent to,
 * with the MTU less the option, and sends it back out the device it came in on.
 */
static __always_inline int sy_np_icmp_too_big(struct __sk_buff *skb, const struct sy_np_pkt *p, __u32 mtu)
{
	struct {
		struct iphdr ip;
		struct sy_icmp_frag_needed icmp;
		__u8 quoted[28]; /* the offending IP header and its first 8 bytes of payload */
	} out = {}; /* 20 + 8 + 28 bytes: no padding */
	struct ethhdr eth;
	__u8 mac[ETH_ALEN];

	if (p->ihl != sizeof(struct iphdr))
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) || bpf_skb_load_bytes(skb, SY_IP_OFF, out.quoted, sizeof(out.quoted)))
		return TC_ACT_SHOT;
	__builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, mac, ETH_ALEN);
	out.ip.version = 4;
	out.ip.ihl = 5;
	out.ip.ttl = 64;
	out.ip.protocol = IPPROTO_ICMP;
	out.ip.tot_len = bpf_htons(sizeof(out));
	out.ip.saddr = p->daddr;
	out.ip.daddr = p->saddr;
	out.icmp.type = SY_ICMP_DEST_UNREACH;
	out.icmp.code = SY_ICMP_FRAG_NEEDED;
	out.icmp.mtu = bpf_htons(mtu - SY_DSR_OPT_LEN);
	out.icmp.checksum = sy_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&out.icmp, sizeof(out) - sizeof(out.ip), 0));
	out.ip.check = sy_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&out.ip, sizeof(out.ip), 0));
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(out), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) || bpf_skb_store_bytes(skb, ETH_HLEN, &out, sizeof(out), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* Inserts {frontend address, port} as an IPv4 option after a 20-byte header, and fixes the header. */
static __always_inline int sy_np_add_dsr_opt(struct __sk_buff *skb, __be32 frontend, __be16 port)
{
	struct sy_dsr_opt4 opt = { .type = SY_DSR_OPT_TYPE, .len = SY_DSR_OPT_LEN, .port = port, .addr = frontend };
	struct {
		struct iphdr ip;
		struct sy_dsr_opt4 opt;
	} hdr; /* 20 + 8 bytes: no padding */

	if (bpf_skb_load_bytes(skb, SY_IP_OFF, &hdr.ip, sizeof(hdr.ip)))
		return -1;
	if (bpf_skb_adjust_room(skb, SY_DSR_OPT_LEN, BPF_ADJ_ROOM_NET, 0))
		return -1;
	hdr.opt = opt;
	hdr.ip.ihl = (sizeof(hdr)) / 4;
	hdr.ip.tot_len = bpf_htons(bpf_ntohs(hdr.ip.tot_len) + SY_DSR_OPT_LEN);
	hdr.ip.check = 0;
	hdr.ip.check = sy_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&hdr, sizeof(hdr), 0));
	return bpf_skb_store_bytes(skb, SY_IP_OFF, &hdr, sizeof(hdr), 0);
}

#endif /* SWITCHYARD_NP_PACKETS_H */
