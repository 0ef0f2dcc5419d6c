/**
 * How the plugin reaches the cluster: kubectl itself, with the user's
 * kubeconfig and context, for every read, every dry run and every
 * `kubectl exec` into a node's interceptor pod. Arguments are parsed here
 * the way kubectl parses its own.
 */
import { spawn, spawnSync } from 'child_process';
import { SWITCHYARD_NAMESPACE } from '../../api/contract';

export const AGENT_SELECTOR = 'app.kubernetes.io/name=switchyard-interceptor';
export const AGENT_CONTAINER = 'interceptor';

export class PluginError extends Error {}

export interface Options {
  kubectlFlags: string[];
  /** Where Switchyard is installed (--switchyard-namespace; the manifests' and the chart's default otherwise). */
  installNamespace: string;
  namespace?: string;
  output?: string;
  uid?: string;
  type?: string;
  count?: number;
  filename?: string;
  positional: string[];
}

const VALUED = new Set(['--kubeconfig', '--context', '-n', '--namespace', '-o', '--output', '--uid', '--type', '--count', '-f', '--filename', '--switchyard-namespace']);
const OUTPUTS = ['json', 'yaml', 'wide'];

export function parseArgs(argv: string[]): Options {
  const o: Options = { kubectlFlags: [], installNamespace: SWITCHYARD_NAMESPACE, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (!VALUED.has(flag)) {
      if (a.startsWith('-') && a !== '-') throw new PluginError(`unknown flag ${a}: see kubectl switchyard --help`);
      o.positional.push(a);
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new PluginError(`${flag} needs a value`);
    if (flag === '--kubeconfig' || flag === '--context') o.kubectlFlags.push(`${flag}=${v}`);
    else if (flag === '-n' || flag === '--namespace') o.namespace = v;
    else if (flag === '-o' || flag === '--output') o.output = v;
    else if (flag === '--type') o.type = v;
    else if (flag === '-f' || flag === '--filename') o.filename = v;
    else if (flag === '--switchyard-namespace') o.installNamespace = v;
    else if (flag === '--count') {
      o.count = Number(v);
      if (!Number.isInteger(o.count) || o.count < 1) throw new PluginError(`--count ${v}: give a whole number above 0`);
    } else o.uid = v;
  }
  if (o.output && !OUTPUTS.includes(o.output)) throw new PluginError(`-o ${o.output}: use ${OUTPUTS.join(', ')}`);
  return o;
}

const KUBECTL = () => process.env.KUBECTL ?? 'kubectl';

export function kubectl(o: Options, args: string[], input?: string): string {
  const r = spawnSync(KUBECTL(), [...o.kubectlFlags, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, input });
  if (r.error) throw new PluginError(`cannot run kubectl (${r.error.message}): put it on PATH or set KUBECTL`);
  if (r.status !== 0) throw new PluginError(`kubectl ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** kubectl … -o json, parsed; undefined when the object does not exist. */
export function getJson(o: Options, args: string[]): any {
  try {
    return JSON.parse(kubectl(o, ['get', ...args, '-o', 'json']));
  } catch (e) {
    if (e instanceof PluginError && /NotFound|not found/.test(e.message)) return undefined;
    throw e;
  }
}

/** A long-running kubectl (exec of a stream): its stdout line by line. */
export function kubectlStream(o: Options, args: string[], onLine: (line: string) => void): { done: Promise<{ code: number | null; stderr: string }>; stop(): void } {
  const child = spawn(KUBECTL(), [...o.kubectlFlags, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    buf += c;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.on('error', (e) => resolve({ code: -1, stderr: `cannot run kubectl (${e.message}): put it on PATH or set KUBECTL` }));
    child.on('close', (code) => resolve({ code, stderr: stderr.trim() }));
  });
  // Closing stdin tells `switchyard monitor --until-stdin-closes` in the pod that we are gone.
  return { done, stop: () => (child.stdin.end(), child.kill('SIGTERM')) };
}

export interface AgentPod {
  name: string;
  node: string;
  ready: boolean;
}

export function agents(o: Options): AgentPod[] {
  const list = JSON.parse(kubectl(o, ['get', 'pods', '-n', o.installNamespace, '-l', AGENT_SELECTOR, '-o', 'json'])).items as any[];
  if (!list.length) throw new PluginError(`no interceptor pods in ${o.installNamespace}: is Switchyard installed there (kubectl apply -k manifests/, or --switchyard-namespace NS)?`);
  return list.map((p) => ({
    name: p.metadata.name,
    node: p.spec.nodeName,
    ready: (p.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'),
  }));
}

/** `switchyard …` in the agent pod on that node. */
export function onNode(o: Options, agent: AgentPod, args: string[]): string {
  return kubectl(o, ['exec', '-n', o.installNamespace, agent.name, '-c', AGENT_CONTAINER, '--', 'switchyard', ...args]);
}

export function agentOn(o: Options, node: string): AgentPod {
  const a = agents(o).find((x) => x.node === node);
  if (!a) throw new PluginError(`no interceptor pod on node ${node}: the DaemonSet does not run there (node selector, taints?), so its pods are not intercepted`);
  return a;
}

export function getPod(o: Options, ns: string, pod: string): any {
  const p = getJson(o, ['pod', '-n', ns, pod]);
  if (!p) throw new PluginError(`pod ${ns}/${pod} not found`);
  return p;
}

export function podNode(o: Options, ns: string, pod: string): string {
  const p = getPod(o, ns, pod);
  if (!p.spec?.nodeName) throw new PluginError(`pod ${ns}/${pod} is not scheduled to a node yet`);
  return p.spec.nodeName;
}

/** The namespace of the current context, as kubectl would use it. */
export function namespaceOf(o: Options): string {
  if (o.namespace) return o.namespace;
  try {
    return kubectl(o, ['config', 'view', '--minify', '-o', 'jsonpath={..namespace}']).trim() || 'default';
  } catch {
    return 'default';
  }
}
