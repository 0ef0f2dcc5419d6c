// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * NodePort, externalIPs and LoadBalancer ingress IPs: tc on the node's own
 * devices (not the pods'), for traffic from outside the cluster.
 *
 *   ingress  C:c -> N1:30080       a node frontend: one backend per flow (sy_np_flows)
 *              local backend       DNAT; the reply passes this node's egress again
 *              snat                C:c -> B:8080 becomes N1:n -> B:8080 (sy_np_snat remembers C:c)
 *              dsr                 DNAT, and the SYN (every UDP datagram) carries an IP
 *                                  option {N1, 30080}; the reply leaves the backend's node direct
 *   ingress  B:8080 -> N1:n        a snat reply: back to C:c from N1:30080
 *   ingress  C:c -> B:8080 +opt    on the backend's node: remember {B:8080, C:c} -> N1:30080
 *   egress   B:8080 -> C:c         a DSR or local reply: leaves with N1:30080 as its source
 *
 * Translated packets go straight out the device the FIB names (bpf_redirect);
 * without a resolved neighbour, bpf_redirect_neigh resolves it; anything
 * else is left to the kernel's routing. IPv4 only; see bpf/README.md.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include "nodeport.h"
#include "lb.h"
#include "monitor.h"
#include "np_packets.h"
#include "np_snat.h"

#define SY_NP_MISS -1000 /* not ours: go on */

/*
 * Reports a node frontend's decision to the monitor, with the counter it
 * also counted: the client asked for orig, and its packet now goes to to
 * (orig itself when it was refused). One lookup when the monitor is off.
 */
#define sy_np_report(c, p, to, to_port) sy_np_report_as(c, p, (p)->daddr, (p)->dport, to, to_port)

static __always_inline void sy_np_report_as(enum sy_counter c, const struct sy_np_pkt *p, __be32 orig, __be16 orig_port,
					    __be32 to, __be16 to_port)
{
	const struct sy_monitor_config *m = sy_monitor_on();
	struct sy_monitor_event *ev;

	if (!m)
		return;
	ev = sy_monitor_reserve(m, SY_HOOK_TC_NODE, c, 0);
	if (!ev)
		return;
	sy_addr_from_v4(&ev->src, p->saddr);
	sy_addr_from_v4(&ev->dst, to);
	sy_addr_from_v4(&ev->orig, orig);
	ev->src_port = bpf_ntohs(p->sport);
	ev->dst_port = bpf_ntohs(to_port);
	ev->orig_port = bpf_ntohs(orig_port);
	if (c != SY_C_NP_DSR_RECORDED && (to != orig || to_port != orig_port))
		ev->flags = SY_MON_F_BALANCED;
	sy_monitor_submit(ev);
}

/* The FIB's next hop for src -> dst; tot_len > 0 also checks that length against the MTU. */
static __always_inline int sy_np_fib(struct __sk_buff *skb, __be32 src, __be32 dst, __u16 tot_len,
				     struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET;
	fib->ipv4_src = src;
	fib->ipv4_dst = dst;
	fib->tot_len = tot_len;
	fib->ifindex = skb->ingress_ifindex;
	return bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
}

/* Sends a translated packet to the FIB's next hop, or leaves it to the kernel's routing. */
static __always_inline int sy_np_redirect(struct __sk_buff *skb, const struct bpf_fib_lookup *fib, int rc)
{
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (sy_np_dec_ttl(skb))
			return TC_ACT_SHOT;
	}
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib->dmac, ETH_ALEN, 0) ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib->smac, ETH_ALEN, 0))
			return TC_ACT_SHOT;
		return bpf_redirect(fib->ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = fib->ipv4_dst };

		return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
	}
	sy_count(SY_C_NP_STACK_FORWARDED);
	return TC_ACT_OK;
}

/* A new flow: pick its backend and its path, and record what its replies need. */
static __always_inline int sy_np_new_flow(const struct sy_np_pkt *p, const struct sy_lb_frontend *fe,
					  const struct sy_np_config *cfg, const struct sy_np_flow_key *fk,
					  struct sy_np_flow *fl)
{
	struct sy_np_affinity_key ak = { .client = fk->client, .service_id = fe->service_id };
	struct sy_lb_backend b;
	__u32 slot = 0;

	if (sy_lb_pick_with(&sy_np_affinity, &ak, fe, &b, &slot)) {
		sy_count(SY_C_NP_NO_BACKEND);
		sy_np_count(fe->service_id, no_backend);
		sy_np_report(SY_C_NP_NO_BACKEND, p, p->daddr, p->dport);
		return -1;
	}
	__builtin_memset(fl, 0, sizeof(*fl));
	fl->backend = b.addr;
	fl->backend_port = b.port;
	fl->service_id = fe->service_id;
	fl->slot = slot;
	if (b.flags & SY_LB_BE_F_LOCAL) {
		struct sy_np_revnat_key rk = { .backend = b.addr, .client = fk->client, .backend_port = b.port,
					       .client_port = fk->client_port, .proto = p->proto };
		struct sy_np_revnat rv = { .frontend = fk->frontend, .frontend_port = fk->frontend_port,
					   .service_id = fe->service_id };

		fl->path = SY_NP_LOCAL;
		bpf_map_update_elem(&sy_np_revnat, &rk, &rv, BPF_ANY);
	} else if ((fe->flags & (p->proto == IPPROTO_TCP ? SY_LB_F_DSR : SY_LB_F_DSR_UDP)) && p->ihl == sizeof(struct iphdr)) {
		fl->path = SY_NP_DSR;
	} else {
		struct sy_np_snat_key sk = { .backend = b.addr, .backend_port = b.port, .proto = p->proto };
		struct sy_np_snat sv = { .client = fk->client, .frontend = fk->frontend, .client_port = fk->client_port,
					 .frontend_port = fk->frontend_port, .service_id = fe->service_id };

		fl->path = SY_NP_SNAT;
		fl->seen = sy_np_now();
		fl->nat_port = sy_np_snat_port(&sk, &sv, cfg, fl->seen);
		if (!fl->nat_port) {
			sy_count(SY_C_NP_SNAT_PORTS_EXHAUSTED);
			sy_np_report(SY_C_NP_SNAT_PORTS_EXHAUSTED, p, p->daddr, p->dport);
			return -1;
		}
	}
	bpf_map_update_elem(&sy_np_flows, fk, fl, BPF_ANY);
	return 0;
}

/*
 * Whether a packet continues its flow. A TCP flow keeps its backend for life
 * (moving it would only reset it). A UDP flow, and a TCP SYN (a retransmitted
 * one, or a client port used again), continue only while the backend is
 * still in its slot; a SYN on a flow that closed starts a new one.
 */
static __always_inline int sy_np_flow_continues(const struct sy_np_flow *fl, const struct sy_lb_frontend *fe,
						const struct sy_np_pkt *p)
{
	if (p->proto == IPPROTO_TCP && !p->syn_only)
		return 1;
	if (p->syn_only && fl->state)
		return 0;
	if (fl->service_id != fe->service_id || fl->slot >= fe->backend_count)
		return 0;
	struct sy_lb_backend_key bk = { .service_id = fl->service_id, .slot = fl->slot };
	struct sy_lb_backend *b = bpf_map_lookup_elem(&sy_lb_backends, &bk);

	return b && b->port == fl->backend_port && sy_addr_eq(&b->addr, &fl->backend);
}

static __always_inline int sy_np_balance(struct __sk_buff *skb, const struct sy_np_pkt *p,
					 const struct sy_lb_frontend *fe, const struct sy_np_config *cfg)
{
	struct sy_np_flow_key fk = { .client_port = bpf_ntohs(p->sport), .frontend_port = bpf_ntohs(p->dport), .proto = p->proto };
	struct sy_np_flow fl;
	struct bpf_fib_lookup fib;
	int new_flow = 0;

	sy_addr_from_v4(&fk.client, p->saddr);
	sy_addr_from_v4(&fk.frontend, p->daddr);
	struct sy_np_flow *cur = bpf_map_lookup_elem(&sy_np_flows, &fk);

	if (cur && sy_np_flow_continues(cur, fe, p)) {
		if (cur->path == SY_NP_SNAT) {
			__u16 now = sy_np_now();

			/* plain stores into the entry: racing writers only ever set bits or a newer time */
			if (cur->seen != now)
				cur->seen = now;
			if (p->closing & ~cur->state)
				cur->state |= p->closing;
		}
		fl = *cur;
	} else {
		if (sy_np_new_flow(p, fe, cfg, &fk, &fl))
			return TC_ACT_SHOT;
		new_flow = 1;
	}
	__be32 backend = fl.backend.words[3];
	__be16 bport = bpf_htons(fl.backend_port);

	if (fl.path == SY_NP_SNAT) {
		__be32 snat = cfg ? cfg->snat_addr.words[3] : 0;
		int rc = sy_np_fib(skb, snat, backend, 0, &fib);

		if (new_flow) {
			sy_count(SY_C_NP_SNAT);
			sy_np_count(fl.service_id, snat);
			sy_np_report(SY_C_NP_SNAT, p, backend, bport);
		}
		if (sy_np_set_addr(skb, p, 1, p->saddr, snat) || sy_np_set_port(skb, p, 1, p->sport, bpf_htons(fl.nat_port)) ||
		    sy_np_set_addr(skb, p, 0, p->daddr, backend) || sy_np_set_port(skb, p, 0, p->dport, bport))
			return TC_ACT_SHOT;
		return sy_np_redirect(skb, &fib, rc);
	}

	int add_opt = fl.path == SY_NP_DSR && (p->syn_only || p->proto == IPPROTO_UDP);
	int rc = fl.path == SY_NP_LOCAL ? -1 : sy_np_fib(skb, p->saddr, backend, add_opt ? p->tot_len + SY_DSR_OPT_LEN : 0, &fib);

	if (new_flow && fl.path == SY_NP_LOCAL) {
		sy_count(SY_C_NP_LOCAL);
		sy_np_count(fl.service_id, local);
		sy_np_report(SY_C_NP_LOCAL, p, backend, bport);
	}
	if (add_opt && rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && p->df) {
		sy_count(SY_C_NP_ICMP_TOO_BIG);
		sy_np_count(fl.service_id, icmp_too_big);
		sy_np_report(SY_C_NP_ICMP_TOO_BIG, p, p->daddr, p->dport);
		return sy_np_icmp_too_big(skb, p, fib.mtu_result);
	}
	if (add_opt) {
		sy_count(SY_C_NP_DSR);
		sy_np_count(fl.service_id, dsr);
		sy_np_report(SY_C_NP_DSR, p, backend, bport); /* as counted: each SYN and UDP datagram given the option */
	}
	if (sy_np_set_addr(skb, p, 0, p->daddr, backend) || sy_np_set_port(skb, p, 0, p->dport, bport))
		return TC_ACT_SHOT;
	if (add_opt && sy_np_add_dsr_opt(skb, p->daddr, p->dport))
		return TC_ACT_SHOT;
	/*
	 * A local backend's packet goes up the stack: its replies cross this
	 * node's netfilter, which must have seen the flow begin (a SYN-ACK
	 * without its SYN is INVALID to conntrack, and kube-proxy's
	 * KUBE-FORWARD drops INVALID).
	 */
	if (fl.path == SY_NP_LOCAL)
		return TC_ACT_OK;
	/* Too big without DF: the kernel fragments it, and every fragment copies the option. */
	return sy_np_redirect(skb, &fib, rc == BPF_FIB_LKUP_RET_FRAG_NEEDED ? -1 : rc);
}

/* A reply to a snat flow, at the node that translated it: back to the client, from the frontend. */
static __always_inline int sy_np_snat_reply(struct __sk_buff *skb, const struct sy_np_pkt *p)
{
	struct sy_np_snat_key k = { .backend_port = bpf_ntohs(p->sport), .nat_port = bpf_ntohs(p->dport), .proto = p->proto };
	struct bpf_fib_lookup fib;

	sy_addr_from_v4(&k.backend, p->saddr);
	struct sy_np_snat *v = bpf_map_lookup_elem(&sy_np_snat, &k);

	if (!v)
		return SY_NP_MISS;
	__be32 client = v->client.words[3], frontend = v->frontend.words[3];
	__be16 cport = bpf_htons(v->client_port), fport = bpf_htons(v->frontend_port);
	__u32 service_id = v->service_id;

	if (p->closing) {
		/* the backend's FIN or reset: the flow's port can be reused once both ends are done */
		struct sy_np_flow_key fk = { .client = v->client, .frontend = v->frontend, .client_port = v->client_port,
					     .frontend_port = v->frontend_port, .proto = p->proto };
		struct sy_np_flow *f = bpf_map_lookup_elem(&sy_np_flows, &fk);
		int ours = f && f->path == SY_NP_SNAT && f->nat_port == k.nat_port;

		/* a FIN before the client's (or with the flow gone: assume so): the backend will hold TIME_WAIT */
		if (p->closing == SY_NP_ST_FIN_CLIENT && !v->backend_closed && !(ours && (f->state & SY_NP_ST_FIN_CLIENT)))
			v->backend_closed = sy_np_now();
		if (ours)
			f->state |= p->closing == SY_NP_ST_FIN_CLIENT ? SY_NP_ST_FIN_BACKEND : p->closing;
	}
	int rc = sy_np_fib(skb, frontend, client, 0, &fib);

	if (sy_np_set_addr(skb, p, 0, p->daddr, client) || sy_np_set_port(skb, p, 0, p->dport, cport) ||
	    sy_np_set_addr(skb, p, 1, p->saddr, frontend) || sy_np_set_port(skb, p, 1, p->sport, fport))
		return TC_ACT_SHOT;
	sy_count(SY_C_NP_SNAT_REPLIES);
	sy_np_count(service_id, replies_rewritten);
	return sy_np_redirect(skb, &fib, rc);
}

/* On the backend's node: a DSR option names the frontend this flow's replies must come from. */
static __always_inline void sy_np_dsr_record(struct __sk_buff *skb, const struct sy_np_pkt *p)
{
	struct sy_dsr_opt4 opt;

	if (bpf_skb_load_bytes(skb, SY_IP_OFF + sizeof(struct iphdr), &opt, sizeof(opt)) ||
	    opt.type != SY_DSR_OPT_TYPE || opt.len != SY_DSR_OPT_LEN)
		return;
	struct sy_np_revnat_key k = { .backend_port = bpf_ntohs(p->dport), .client_port = bpf_ntohs(p->sport), .proto = p->proto };
	struct sy_np_revnat v = { .frontend_port = bpf_ntohs(opt.port) };

	sy_addr_from_v4(&k.backend, p->daddr);
	sy_addr_from_v4(&k.client, p->saddr);
	sy_addr_from_v4(&v.frontend, opt.addr);
	bpf_map_update_elem(&sy_np_revnat, &k, &v, BPF_ANY);
	sy_count(SY_C_NP_DSR_RECORDED);
	sy_np_report_as(SY_C_NP_DSR_RECORDED, p, opt.addr, opt.port, p->daddr, p->dport);
}

SEC("tc")
int sy_np_ingress(struct __sk_buff *skb)
{
	struct sy_np_pkt p;
	__u32 zero = 0;

	if (sy_np_parse(skb, &p))
		return TC_ACT_OK;
	struct sy_np_config *cfg = bpf_map_lookup_elem(&sy_np_config, &zero);

	if (cfg && cfg->snat_addr.words[3] && cfg->snat_addr.words[3] == p.daddr) {
		__u16 dport = bpf_ntohs(p.dport);

		if (dport >= cfg->snat_port_min && dport <= cfg->snat_port_max) {
			int rc = sy_np_snat_reply(skb, &p);

			if (rc != SY_NP_MISS)
				return rc;
		}
	}
	if (p.ihl == sizeof(struct iphdr) + SY_DSR_OPT_LEN)
		sy_np_dsr_record(skb, &p);

	struct sy_lb_frontend_key fk = { .port = bpf_ntohs(p.dport), .proto = p.proto };

	sy_addr_from_v4(&fk.addr, p.daddr);
	struct sy_lb_frontend *fe = bpf_map_lookup_elem(&sy_lb_external, &fk);

	if (!fe)
		return TC_ACT_OK;
	return sy_np_balance(skb, &p, fe, cfg);
}

SEC("tc")
int sy_np_egress(struct __sk_buff *skb)
{
	struct sy_np_pkt p;

	if (sy_np_parse(skb, &p))
		return TC_ACT_OK;
	struct sy_np_revnat_key k = { .backend_port = bpf_ntohs(p.sport), .client_port = bpf_ntohs(p.dport), .proto = p.proto };

	sy_addr_from_v4(&k.backend, p.saddr);
	sy_addr_from_v4(&k.client, p.daddr);
	struct sy_np_revnat *v = bpf_map_lookup_elem(&sy_np_revnat, &k);

	if (!v)
		return TC_ACT_OK;
	__be32 frontend = v->frontend.words[3];
	__be16 fport = bpf_htons(v->frontend_port);
	__u32 service_id = v->service_id;

	if (sy_np_set_addr(skb, &p, 1, p.saddr, frontend) || sy_np_set_port(skb, &p, 1, p.sport, fport))
		return TC_ACT_SHOT;
	sy_count(SY_C_NP_REPLIES_REWRITTEN);
	if (service_id)
		sy_np_count(service_id, replies_rewritten);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
