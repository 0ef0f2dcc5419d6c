import { HELP, parseArgs, runPlugin } from './kubectl-plugin';

describe('kubectl switchyard: arguments as kubectl takes them', () => {
  test('global flags go to kubectl, -n and -o are the plugin\'s, the rest is positional', () => {
    expect(parseArgs(['web-1', '--context', 'prod', '-n', 'apps', '--kubeconfig=/k', '-o', 'wide'])).toEqual({
      kubectlFlags: ['--context=prod', '--kubeconfig=/k'],
      namespace: 'apps',
      output: 'wide',
      positional: ['web-1'],
    });
    expect(parseArgs(['web-1', '10.96.0.10:80', '--uid', '1000']).uid).toBe('1000');
  });

  test('bad input is one clear error, and nothing runs', () => {
    const err: string[] = [];
    expect(runPlugin(['status', '-o', 'yaml'], () => undefined, (s) => err.push(s))).toBe(1);
    expect(runPlugin(['status', '--force'], () => undefined, (s) => err.push(s))).toBe(1);
    expect(runPlugin(['status', '-n'], () => undefined, (s) => err.push(s))).toBe(1);
    expect(runPlugin(['frobnicate'], () => undefined, (s) => err.push(s))).toBe(1);
    expect(runPlugin(['explain', 'only-a-pod'], () => undefined, (s) => err.push(s))).toBe(1);
    expect(err).toEqual([
      'kubectl switchyard status: -o yaml: use json or wide\n',
      'kubectl switchyard status: unknown flag --force: see kubectl switchyard --help\n',
      'kubectl switchyard status: -n needs a value\n',
      "kubectl switchyard frobnicate: unknown command 'frobnicate': see kubectl switchyard --help\n",
      'kubectl switchyard explain: usage: kubectl switchyard explain POD IP:PORT [-n NAMESPACE] [--uid N]\n',
    ]);
  });

  test('--help lists the commands; no command prints it and fails', () => {
    const out: string[] = [];
    expect(runPlugin(['--help'], (s) => out.push(s), () => undefined)).toBe(0);
    expect(runPlugin([], (s) => out.push(s), () => undefined)).toBe(2);
    expect(out).toEqual([HELP, HELP]);
    expect(HELP).toMatch(/status \[POD\]/);
    expect(HELP).toMatch(/explain POD IP:PORT/);
  });

  test('without kubectl, the error says how to get one', () => {
    const err: string[] = [];
    const saved = process.env.KUBECTL;
    process.env.KUBECTL = '/nonexistent/kubectl';
    try {
      expect(runPlugin(['status'], () => undefined, (s) => err.push(s))).toBe(1);
    } finally {
      if (saved === undefined) delete process.env.KUBECTL;
      else process.env.KUBECTL = saved;
    }
    expect(err[0]).toMatch(/cannot run kubectl .*: put it on PATH or set KUBECTL/);
  });
});
