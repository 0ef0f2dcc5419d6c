#!/usr/bin/env node
/**
 * kubectl-switchyard: `kubectl switchyard …` once this file (the npm bin
 * `kubectl-switchyard`) is on PATH. Everything goes through kubectl and the
 * apiserver, so it works wherever kubectl does, with the current kubeconfig
 * and context; per-node answers come from `kubectl exec` into that node's
 * interceptor pod, which runs `switchyard status` / `explain` against its
 * agent's socket.
 *
 *   kubectl switchyard status [-n NS] [POD] [-o json|wide]   every node's registered pods, or one pod in detail
 *   kubectl switchyard explain POD DEST [-n NS] [--uid N]    what a connect from POD to DEST becomes, and why
 *
 * Global: --kubeconfig FILE, --context NAME, -n/--namespace NS (as kubectl);
 * $KUBECTL names the kubectl binary (default: kubectl on PATH).
 */
import { spawnSync } from 'child_process';
import { age, table } from './format';

const AGENT_NAMESPACE = 'switchyard-system';
const AGENT_SELECTOR = 'app.kubernetes.io/name=switchyard-interceptor';

export class PluginError extends Error {}

export interface Options {
  kubectlFlags: string[];
  namespace?: string;
  output?: string;
  uid?: string;
  positional: string[];
}

const VALUED = new Set(['--kubeconfig', '--context', '-n', '--namespace', '-o', '--output', '--uid']);

export function parseArgs(argv: string[]): Options {
  const o: Options = { kubectlFlags: [], positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (!VALUED.has(flag)) {
      if (a.startsWith('-')) throw new PluginError(`unknown flag ${a}: see kubectl switchyard --help`);
      o.positional.push(a);
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new PluginError(`${flag} needs a value`);
    if (flag === '--kubeconfig' || flag === '--context') o.kubectlFlags.push(`${flag}=${v}`);
    else if (flag === '-n' || flag === '--namespace') o.namespace = v;
    else if (flag === '-o' || flag === '--output') o.output = v;
    else o.uid = v;
  }
  if (o.output && !['json', 'wide'].includes(o.output)) throw new PluginError(`-o ${o.output}: use json or wide`);
  return o;
}

function kubectl(o: Options, args: string[]): string {
  const r = spawnSync(process.env.KUBECTL ?? 'kubectl', [...o.kubectlFlags, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new PluginError(`cannot run kubectl (${r.error.message}): put it on PATH or set KUBECTL`);
  if (r.status !== 0) throw new PluginError(`kubectl ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

interface AgentPod {
  name: string;
  node: string;
  ready: boolean;
}

function agents(o: Options): AgentPod[] {
  const list = JSON.parse(kubectl(o, ['get', 'pods', '-n', AGENT_NAMESPACE, '-l', AGENT_SELECTOR, '-o', 'json'])).items as any[];
  if (!list.length) throw new PluginError(`no interceptor pods in ${AGENT_NAMESPACE}: is Switchyard installed (kubectl apply -k manifests/)?`);
  return list.map((p) => ({
    name: p.metadata.name,
    node: p.spec.nodeName,
    ready: (p.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'),
  }));
}

/** `switchyard …` in the agent pod on that node. */
function onNode(o: Options, agent: AgentPod, args: string[]): string {
  return kubectl(o, ['exec', '-n', AGENT_NAMESPACE, agent.name, '-c', 'interceptor', '--', 'switchyard', ...args]);
}

function podNode(o: Options, ns: string, pod: string): string {
  const p = JSON.parse(kubectl(o, ['get', 'pod', '-n', ns, pod, '-o', 'json']));
  if (!p.spec?.nodeName) throw new PluginError(`pod ${ns}/${pod} is not scheduled to a node yet`);
  return p.spec.nodeName;
}

function agentOn(o: Options, node: string): AgentPod {
  const a = agents(o).find((x) => x.node === node);
  if (!a) throw new PluginError(`no interceptor pod on node ${node}: the DaemonSet does not run there (node selector, taints?), so its pods are not intercepted`);
  return a;
}

function status(o: Options, out: (s: string) => void): void {
  const ns = o.namespace;
  const [pod] = o.positional;
  if (pod) {
    const namespace = ns ?? 'default';
    out(onNode(o, agentOn(o, podNode(o, namespace, pod)), ['status', `${namespace}/${pod}`, ...(o.output === 'json' ? ['-o', 'json'] : [])]));
    return;
  }
  const nodes = agents(o).map((a) => {
    if (!a.ready) return { agent: a, pods: [] as any[], node: {} as Record<string, string>, error: 'agent not Ready' };
    try {
      const s = JSON.parse(onNode(o, a, ['status', '-o', 'json']));
      return { agent: a, pods: s.pods as any[], node: s.node as Record<string, string>, error: '' };
    } catch (e) {
      return { agent: a, pods: [] as any[], node: {} as Record<string, string>, error: (e as Error).message };
    }
  });
  if (o.output === 'json') {
    out(JSON.stringify({ nodes: nodes.map((n) => ({ node: n.agent.node, agent: n.agent.name, ready: n.agent.ready, error: n.error || undefined, pods: n.pods.filter((p) => !ns || p.namespace === ns), counters: n.node })) }, null, 2) + '\n');
    return;
  }
  const wide = o.output === 'wide';
  const rows = [['NODE', 'NAMESPACE', 'POD', 'IPS', 'OUTBOUND', 'INBOUND', 'TC-INBOUND', 'DROPPED', 'AGE', ...(wide ? ['NETNS-COOKIE', 'AGENT'] : [])]];
  for (const n of nodes) {
    for (const p of n.pods.filter((x) => !ns || x.namespace === ns)) {
      const c = (p.counters ?? {}) as Record<string, string | undefined>;
      const v = (k: string) => c[k] ?? '-'; // '-': no map entry yet (the agent's reconcile repairs it)
      rows.push([n.agent.node, p.namespace, p.name, p.ips.join(','), v('redirected_outbound'), v('redirected_inbound'), v('tc_inbound_new'), v('dropped'), age(p.registeredAt), ...(wide ? [p.netnsCookie, n.agent.name] : [])]);
    }
  }
  out(table(rows));
  for (const n of nodes) {
    const count = n.pods.filter((x) => !ns || x.namespace === ns).length;
    out(`node ${n.agent.node}: agent ${n.agent.name} ${n.error ? `UNAVAILABLE (${n.error})` : `ready, ${count} pods registered${ns ? ` in ${ns}` : ''}`}\n`);
  }
}

function explain(o: Options, out: (s: string) => void): void {
  const [pod, dest] = o.positional;
  if (!pod || !dest) throw new PluginError('usage: kubectl switchyard explain POD IP:PORT [-n NAMESPACE] [--uid N]');
  const namespace = o.namespace ?? 'default';
  const agent = agentOn(o, podNode(o, namespace, pod));
  out(onNode(o, agent, ['explain', `${namespace}/${pod}`, dest, ...(o.uid ? ['--uid', o.uid] : []), ...(o.output === 'json' ? ['-o', 'json'] : [])]));
}

export const HELP = `kubectl switchyard: Switchyard's view of the cluster, through the apiserver.

Commands:
  status [POD] [-n NS] [-o json|wide]    registered pods and their BPF counters on every node, or one pod in detail
  explain POD IP:PORT [-n NS] [--uid N]  what a TCP connect from POD to IP:PORT becomes (redirected, balanced, direct), and why

Flags: --kubeconfig FILE, --context NAME, -n/--namespace NS, as kubectl. $KUBECTL names the kubectl binary.
`;

export function runPlugin(argv: string[], out: (s: string) => void, err: (s: string) => void): number {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(HELP);
    return cmd ? 0 : 2;
  }
  try {
    const o = parseArgs(rest);
    if (cmd === 'status') status(o, out);
    else if (cmd === 'explain') explain(o, out);
    else throw new PluginError(`unknown command '${cmd}': see kubectl switchyard --help`);
    return 0;
  } catch (e) {
    err(`kubectl switchyard ${cmd}: ${(e as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  const code = runPlugin(process.argv.slice(2), (s) => process.stdout.write(s), (s) => process.stderr.write(s));
  // Exit once stdout has drained, also into a pipe.
  process.stdout.write('', () => process.exit(code));
}
