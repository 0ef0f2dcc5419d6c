import { HELP, parseArgs, runPlugin } from './kubectl-plugin';

describe('kubectl switchyard: arguments as kubectl takes them', () => {
  test('global flags go to kubectl, -n and -o are the plugin\'s, the rest is positional', () => {
    expect(parseArgs(['web-1', '--context', 'prod', '-n', 'apps', '--kubeconfig=/k', '-o', 'wide'])).toEqual({
      kubectlFlags: ['--context=prod', '--kubeconfig=/k'],
      installNamespace: 'switchyard-system',
      namespace: 'apps',
      output: 'wide',
      positional: ['web-1'],
    });
    expect(parseArgs(['web-1', '10.96.0.10:80', '--uid', '1000']).uid).toBe('1000');
    expect(parseArgs(['--type', 'drop', '--count', '3', '-f', '-'])).toMatchObject({ type: 'drop', count: 3, filename: '-' });
    expect(parseArgs(['--switchyard-namespace', 'mesh-system', '-n', 'apps'])).toMatchObject({ installNamespace: 'mesh-system', namespace: 'apps' });
  });

  test('bad input is one clear error, and nothing runs', async () => {
    const err: string[] = [];
    const run = (argv: string[]) => runPlugin(argv, () => undefined, (s) => err.push(s));
    expect(await run(['status', '-o', 'table'])).toBe(1);
    expect(await run(['status', '--force'])).toBe(1);
    expect(await run(['status', '-n'])).toBe(1);
    expect(await run(['frobnicate'])).toBe(1);
    expect(await run(['explain', 'only-a-pod'])).toBe(1);
    expect(await run(['monitor', '--count', '0'])).toBe(1);
    expect(await run(['monitor', '--type', 'all'])).toBe(1);
    expect(await run(['check-inject'])).toBe(1);
    expect(await run(['check-inject', 'web-1', '-f', 'pod.yaml'])).toBe(1);
    expect(await run(['check', 'extra'])).toBe(1);
    expect(err).toEqual([
      'kubectl switchyard status: -o table: use json, yaml, wide\n',
      'kubectl switchyard status: unknown flag --force: see kubectl switchyard --help\n',
      'kubectl switchyard status: -n needs a value\n',
      "kubectl switchyard frobnicate: unknown command 'frobnicate': see kubectl switchyard --help\n",
      'kubectl switchyard explain: usage: kubectl switchyard explain POD IP:PORT [-n NAMESPACE] [--uid N]\n',
      'kubectl switchyard monitor: --count 0: give a whole number above 0\n',
      'kubectl switchyard monitor: --type all: use one of redirect, pass, drop\n',
      'kubectl switchyard check-inject: usage: kubectl switchyard check-inject POD [-n NAMESPACE] | -f FILE\n',
      'kubectl switchyard check-inject: usage: kubectl switchyard check-inject POD [-n NAMESPACE] | -f FILE\n',
      'kubectl switchyard check: usage: kubectl switchyard check\n',
    ]);
  });

  test('--help lists the commands; no command prints it and fails', async () => {
    const out: string[] = [];
    expect(await runPlugin(['--help'], (s) => out.push(s), () => undefined)).toBe(0);
    expect(await runPlugin([], (s) => out.push(s), () => undefined)).toBe(2);
    expect(out).toEqual([HELP, HELP]);
    for (const c of [/\n  check  /, /status \[POD\]/, /explain POD IP:PORT/, /check-inject POD \| -f FILE/, /monitor \[POD\]/]) expect(HELP).toMatch(c);
  });

  test('without kubectl, the error says how to get one', async () => {
    const err: string[] = [];
    const saved = process.env.KUBECTL;
    process.env.KUBECTL = '/nonexistent/kubectl';
    try {
      expect(await runPlugin(['status'], () => undefined, (s) => err.push(s))).toBe(1);
    } finally {
      if (saved === undefined) delete process.env.KUBECTL;
      else process.env.KUBECTL = saved;
    }
    expect(err[0]).toMatch(/cannot run kubectl .*: put it on PATH or set KUBECTL/);
  });
});
