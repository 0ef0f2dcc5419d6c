/**
 * `kubectl switchyard monitor [POD]`: `switchyard monitor -o json` in the
 * interceptor pod of every node (or of the pod's node), merged into one
 * stream and printed like the node command prints it, with the node name.
 * Each exec keeps stdin open; closing it (Ctrl-C, --count reached) ends
 * the command in the pod, and with it the agent's reporting.
 */
import { VERDICTS, Verdict } from '../../api/agent-wire';
import { MonitorLine, formatEvent } from '../monitor';
import { AGENT_CONTAINER, AgentPod, Options, PluginError, agentOn, agents, kubectlStream, namespaceOf, podNode } from './kubectl';

export async function monitor(o: Options, out: (s: string) => void): Promise<void> {
  const [pod, extra] = o.positional;
  if (extra) throw new PluginError('usage: kubectl switchyard monitor [POD] [-n NAMESPACE] [--type redirect|pass|drop] [--count N] [-o json]');
  if (o.type && !VERDICTS.includes(o.type as Verdict)) throw new PluginError(`--type ${o.type}: use one of ${VERDICTS.join(', ')}`);
  if (o.output && o.output !== 'json') throw new PluginError(`-o ${o.output}: monitor prints text or json`);
  const target = pod ? `${namespaceOf(o)}/${pod}` : undefined;
  const where: AgentPod[] = target ? [agentOn(o, podNode(o, target.split('/')[0], pod))] : agents(o).filter((a) => a.ready);
  if (!where.length) throw new PluginError('no interceptor pod is Ready');
  const args = ['monitor', '-o', 'json', '--until-stdin-closes', ...(target ? [target] : []), ...(o.type ? ['--type', o.type] : [])];
  let seen = 0;
  const streams = where.map((a) =>
    kubectlStream(o, ['exec', '-i', '-n', o.installNamespace, a.name, '-c', AGENT_CONTAINER, '--', 'switchyard', ...args], (line) => {
      if (!line || (o.count !== undefined && seen >= o.count)) return;
      let e: MonitorLine;
      try {
        e = JSON.parse(line) as MonitorLine;
      } catch {
        return void out(`${a.node}: ${line}\n`); // not the agent's: pass it on as it is
      }
      out(o.output === 'json' ? `${line}\n` : formatEvent(e, where.length > 1));
      if (!('lost' in e) && o.count !== undefined && ++seen >= o.count) stopAll();
    }),
  );
  const stopAll = () => streams.forEach((s) => s.stop());
  process.once('SIGINT', stopAll);
  const ends = await Promise.all(streams.map((s) => s.done));
  process.removeListener('SIGINT', stopAll);
  const failures = ends.filter((e) => e.code !== 0 && e.stderr && (o.count === undefined || seen < o.count));
  if (failures.length) throw new PluginError(failures.map((f) => f.stderr).join('; '));
}
