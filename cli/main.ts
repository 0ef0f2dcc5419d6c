#!/usr/bin/env node
/**
 * switchyard: the operator's command line.
 *
 *   switchyard inject   -f FILE|-  [--config FILE]   inject sidecars into manifests (offline)
 *   switchyard uninject -f FILE|-                    undo it, exactly
 *   switchyard certs --out DIR [--service S] [--namespace N] [--ip IP]... [--url URL]
 *                                                   CA + serving cert, Secret and webhook configuration
 *
 * Injected YAML goes to stdout; one line per object with the decision goes to stderr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { stringify } from 'yaml';
import { DEFAULT_CONFIG, InjectorConfig } from '../webhook/src/config';
import { injectYaml, uninjectYaml } from '../webhook/src/offline';
import { mutatingWebhookConfiguration } from '../webhook/src/webhook-config';
import { generateCertificates, tlsSecret } from '../certs/src/generate';

class UsageError extends Error {}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  if (i + 1 >= args.length) throw new UsageError(`--${name} needs a value`);
  return args[i + 1];
}

function flags(args: string[], name: string): string[] {
  return args.flatMap((a, i) => (a === `--${name}` && i + 1 < args.length ? [args[i + 1]] : []));
}

function readInput(args: string[]): string {
  const i = args.findIndex((a) => a === '-f' || a === '--filename');
  const f = i >= 0 ? args[i + 1] : undefined;
  if (!f) throw new UsageError('give the manifests with -f FILE (or -f - for stdin)');
  return fs.readFileSync(f === '-' ? 0 : f, 'utf8');
}

export function loadConfig(file?: string): InjectorConfig {
  if (!file) return DEFAULT_CONFIG;
  const patch = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<InjectorConfig>;
  return { ...DEFAULT_CONFIG, ...patch, sidecar: { ...DEFAULT_CONFIG.sidecar, ...(patch.sidecar ?? {}) } };
}

export async function run(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const [cmd, ...args] = argv;
  try {
    switch (cmd) {
      case 'inject': {
        const { yaml, report } = injectYaml(readInput(args), loadConfig(flag(args, 'config')));
        out(yaml);
        for (const r of report) {
          err(r.decision ? `${r.object}: ${r.decision.action === 'inject' ? 'injected' : r.decision.action === 'deny' ? 'REFUSED' : 'not injected'} (${r.decision.reason}: ${r.decision.message})\n` : `${r.object}: passed through (no pod template)\n`);
        }
        return report.some((r) => r.decision?.action === 'deny') ? 1 : 0;
      }
      case 'uninject': {
        out(uninjectYaml(readInput(args)).yaml);
        return 0;
      }
      case 'certs': {
        const dir = flag(args, 'out');
        if (!dir) throw new UsageError('give an output directory with --out DIR');
        const service = flag(args, 'service') ?? 'switchyard-webhook';
        const namespace = flag(args, 'namespace') ?? DEFAULT_CONFIG.ownNamespace;
        const url = flag(args, 'url');
        const bundle = await generateCertificates({ service, namespace, ipAddresses: flags(args, 'ip'), extraDnsNames: flags(args, 'dns') });
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, 'ca.crt'), bundle.caCert);
        fs.writeFileSync(path.join(dir, 'tls.crt'), bundle.cert);
        fs.writeFileSync(path.join(dir, 'tls.key'), bundle.key, { mode: 0o600 });
        const mwc = mutatingWebhookConfiguration(loadConfig(flag(args, 'config')), {
          endpoint: url ? { url } : { service: { name: service, namespace, port: 443, path: '/mutate' } },
          caBundlePem: bundle.caCert,
        });
        fs.writeFileSync(path.join(dir, 'secret.yaml'), stringify(tlsSecret(`${service}-tls`, namespace, bundle)));
        fs.writeFileSync(path.join(dir, 'mutatingwebhookconfiguration.yaml'), stringify(mwc));
        err(`wrote ca.crt, tls.crt, tls.key, secret.yaml and mutatingwebhookconfiguration.yaml to ${dir} (names: ${bundle.dnsNames.join(', ')})\n`);
        return 0;
      }
      default:
        throw new UsageError(cmd ? `unknown command '${cmd}'` : 'no command given');
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`switchyard: ${e.message}\nusage: switchyard inject|uninject -f FILE [--config FILE] | switchyard certs --out DIR [--service S] [--namespace N] [--ip IP] [--url URL]\n`);
      return 2;
    }
    err(`switchyard ${cmd}: ${(e as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  void run(process.argv.slice(2), (s) => process.stdout.write(s), (s) => process.stderr.write(s)).then((code) => process.exit(code));
}
