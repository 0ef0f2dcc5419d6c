#!/usr/bin/env node
/**
 * kubectl-switchyard: `kubectl switchyard …` once this file (the npm bin
 * `kubectl-switchyard`) is on PATH. Everything goes through kubectl and the
 * apiserver (cli/plugin/kubectl.ts), so it works wherever kubectl does,
 * with the current kubeconfig and context; per-node answers come from
 * `kubectl exec` into that node's interceptor pod, which asks its agent.
 *
 *   check                                   cli/plugin/check.ts
 *   status [POD]                            cli/plugin/status.ts
 *   explain POD IP:PORT                     cli/plugin/status.ts
 *   check-inject POD | -f FILE              cli/plugin/check-inject.ts
 *   monitor [POD]                           cli/plugin/monitor.ts
 */
import { check } from './plugin/check';
import { checkInject } from './plugin/check-inject';
import { Options, PluginError, parseArgs } from './plugin/kubectl';
import { monitor } from './plugin/monitor';
import { explain, status } from './plugin/status';

export { PluginError, parseArgs };

export const HELP = `kubectl switchyard: Switchyard's view of the cluster, through the apiserver.

Commands:
  check                                  is every node ready (kernel, BPF hooks, CNI chain, agent) and the webhook healthy? exits 1 on any ✗
  status [POD] [-o json|yaml|wide]       registered pods and their BPF counters on every node, or one pod in detail
  explain POD IP:PORT [--uid N]          what a TCP connect from POD to IP:PORT becomes (redirected, balanced, direct), and why
  check-inject POD | -f FILE             is the pod (would it be) injected and registered, and why
  monitor [POD] [--type redirect|pass|drop] [--count N] [-o json]
                                         the kernel's decisions as they happen, one line each, from every node

Flags: --kubeconfig FILE, --context NAME, -n/--namespace NS, as kubectl; --switchyard-namespace NS where Switchyard is
installed (default switchyard-system). $KUBECTL names the kubectl binary.
`;

const COMMANDS: Record<string, (o: Options, out: (s: string) => void) => number | void | Promise<void>> = {
  check,
  status,
  explain,
  'check-inject': checkInject,
  monitor,
};

export async function runPlugin(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(HELP);
    return cmd ? 0 : 2;
  }
  try {
    const run = COMMANDS[cmd];
    if (!run) throw new PluginError(`unknown command '${cmd}': see kubectl switchyard --help`);
    return (await run(parseArgs(rest), out)) ?? 0;
  } catch (e) {
    err(`kubectl switchyard ${cmd}: ${(e as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  // A reader that goes away (| head) ends the command quietly, as for any Unix tool.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  void runPlugin(process.argv.slice(2), (s) => process.stdout.write(s), (s) => process.stderr.write(s)).then((code) =>
    // Exit once stdout has drained, also into a pipe.
    process.stdout.write('', () => process.exit(code)),
  );
}
