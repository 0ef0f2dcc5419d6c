/**
 * `kubectl switchyard status` and `explain`: the agents' own answers,
 * gathered through `kubectl exec` into each node's interceptor pod.
 */
import { stringify } from 'yaml';
import type { NodeStatus, PodStatus } from '../../api/agent-wire';
import { age, table } from '../format';
import { Options, PluginError, agentOn, agents, namespaceOf, onNode, podNode } from './kubectl';

/** -o json|yaml: the object as kubectl would print it. */
export function printObject(o: Options, value: unknown, out: (s: string) => void): boolean {
  if (o.output === 'json') out(JSON.stringify(value, null, 2) + '\n');
  else if (o.output === 'yaml') out(stringify(value));
  else return false;
  return true;
}

export function status(o: Options, out: (s: string) => void): void {
  const ns = o.namespace;
  const [pod] = o.positional;
  if (pod) {
    const namespace = namespaceOf(o);
    const structured = o.output === 'json' || o.output === 'yaml';
    const answer = onNode(o, agentOn(o, podNode(o, namespace, pod)), ['status', `${namespace}/${pod}`, ...(structured ? ['-o', 'json'] : [])]);
    if (!structured || !printObject(o, JSON.parse(answer), out)) out(answer);
    return;
  }
  const nodes = agents(o).map((a) => {
    if (!a.ready) return { agent: a, pods: [] as PodStatus[], node: {} as Record<string, string>, error: 'agent not Ready' };
    try {
      const s = JSON.parse(onNode(o, a, ['status', '-o', 'json'])) as NodeStatus;
      return { agent: a, pods: s.pods, node: s.node, error: '' };
    } catch (e) {
      return { agent: a, pods: [] as PodStatus[], node: {} as Record<string, string>, error: (e as Error).message };
    }
  });
  const inNs = (p: PodStatus) => !ns || p.namespace === ns;
  const value = { nodes: nodes.map((n) => ({ node: n.agent.node, agent: n.agent.name, ready: n.agent.ready, error: n.error || undefined, pods: n.pods.filter(inNs), counters: n.node })) };
  if (printObject(o, value, out)) return;
  const wide = o.output === 'wide';
  const rows = [['NODE', 'NAMESPACE', 'POD', 'IPS', 'OUTBOUND', 'INBOUND', 'TC-INBOUND', 'DROPPED', 'AGE', ...(wide ? ['NETNS-COOKIE', 'AGENT'] : [])]];
  for (const n of nodes) {
    for (const p of n.pods.filter(inNs)) {
      const c = p.counters as Record<string, string | undefined>;
      const v = (k: string) => c[k] ?? '-'; // '-': no map entry yet (the agent's reconcile repairs it)
      rows.push([n.agent.node, p.namespace, p.name, p.ips.join(','), v('redirected_outbound'), v('redirected_inbound'), v('tc_inbound_new'), v('dropped'), age(p.registeredAt), ...(wide ? [p.netnsCookie, n.agent.name] : [])]);
    }
  }
  out(table(rows));
  for (const n of nodes) {
    const count = n.pods.filter(inNs).length;
    out(`node ${n.agent.node}: agent ${n.agent.name} ${n.error ? `UNAVAILABLE (${n.error})` : `ready, ${count} pods registered${ns ? ` in ${ns}` : ''}`}\n`);
  }
}

export function explain(o: Options, out: (s: string) => void): void {
  const [pod, dest] = o.positional;
  if (!pod || !dest) throw new PluginError('usage: kubectl switchyard explain POD IP:PORT [-n NAMESPACE] [--uid N]');
  const namespace = namespaceOf(o);
  const agent = agentOn(o, podNode(o, namespace, pod));
  const structured = o.output === 'json' || o.output === 'yaml';
  const answer = onNode(o, agent, ['explain', `${namespace}/${pod}`, dest, ...(o.uid ? ['--uid', o.uid] : []), ...(structured ? ['-o', 'json'] : [])]);
  if (!structured || !printObject(o, JSON.parse(answer), out)) out(answer);
}
