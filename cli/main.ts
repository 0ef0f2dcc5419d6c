#!/usr/bin/env node
/**
 * switchyard: the operator's command line.
 *
 *   switchyard inject   -f FILE|-  [--config FILE]   inject sidecars into manifests (offline)
 *   switchyard uninject -f FILE|-                    undo it, exactly
 *   switchyard certs --out DIR [--service S] [--namespace N] [--ip IP]... [--url URL]
 *                                                   CA + serving cert, Secret and webhook configuration
 *   switchyard status [NS/POD] [-o json] [--socket PATH]
 *                                                   pods registered on this node, with their BPF counters
 *   switchyard status services [-o json]         Service frontends, backends and counters
 *   switchyard explain NS/POD IP:PORT [--uid N] [--foreign] [-o json] [--socket PATH]
 *                                                   would this connect be redirected, and why
 *   switchyard check [-o json] [--socket PATH]       this node: kernel, BTF, cgroup2, bpffs, BPF hooks, CNI chain (cli/checks.ts)
 *   switchyard monitor [NS/POD] [--type redirect|pass|drop] [--count N] [-o json] [--socket PATH]
 *                                                   the kernel's decisions as they happen (cli/monitor.ts)
 *
 * Injected YAML goes to stdout; one line per object with the decision goes to stderr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { stringify } from 'yaml';
import { DEFAULT_AGENT_SOCKET, NodeFrontendStatus, ServiceStatus, VERDICTS, Verdict } from '../api/agent-wire';
import { streamMonitor } from './monitor';
import { agentGet } from './agent-client';
import { failed, formatChecks, nodeChecks } from './checks';
import { DEFAULT_CONFIG, loadConfig } from '../webhook/src/config';
import { injectYaml, uninjectYaml } from '../webhook/src/offline';
import { mutatingWebhookConfiguration } from '../webhook/src/webhook-config';
import { generateCertificates, tlsSecret } from '../certs/src/generate';
import { age, table } from './format';

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



/** -o json, -ojson or --output json */
function wantsJson(args: string[]): boolean {
  const i = args.findIndex((a) => a === '-o' || a === '--output');
  return args.includes('-ojson') || (i >= 0 && args[i + 1] === 'json');
}



async function statusCommand(args: string[], out: (s: string) => void): Promise<number> {
  const socket = flag(args, 'socket') ?? DEFAULT_AGENT_SOCKET;
  const json = wantsJson(args);
  if (args[0] === 'services') {
    const r = await agentGet(socket, '/v1/services');
    if (r.status !== 200) throw new Error(r.body.error);
    if (json) {
      out(JSON.stringify(r.body, null, 2) + '\n');
      return 0;
    }
    const rows = [['SERVICE', 'FRONTEND', 'BACKENDS', 'AFFINITY', 'TRANSLATED', 'NO-BACKEND']];
    for (const s of r.body.services as ServiceStatus[]) {
      rows.push([s.service, s.frontend, s.backends.length ? `${s.backends.join(',')}${s.terminating ? ' (terminating)' : ''}` : '(none: connects refused)', s.affinityTimeoutSeconds ? `ClientIP ${s.affinityTimeoutSeconds}s` : '-', s.translations, s.noBackend]);
    }
    out(table(rows));
    out(`${r.body.services.length} Service frontends on this node\n`);
    const nodeFrontends = r.body.nodeFrontends as NodeFrontendStatus[] | undefined;
    if (nodeFrontends) {
      const nrows = [['SERVICE', 'KIND', 'FRONTEND', 'MODE', 'POLICY', 'BACKENDS', 'LOCAL', 'SNAT', 'DSR', 'NO-BACKEND', 'REPLIES', 'ICMP-TOO-BIG']];
      for (const f of nodeFrontends) {
        const c = f.counters;
        nrows.push([f.service, f.kind, f.frontend, f.mode, f.policy, f.backends.join(',') || '(none: dropped)', c.local, c.snat, c.dsr, c.no_backend, c.replies_rewritten, c.icmp_too_big]);
      }
      out('\n' + table(nrows));
      out(`${nodeFrontends.length} node frontends (NodePort, external and LoadBalancer IPs) on this node\n`);
    }
    return 0;
  }
  const target = args.find((a) => a.includes('/') && !a.startsWith('-') && a !== socket);
  if (target) {
    const r = await agentGet(socket, `/v1/status/${target}`);
    if (r.status !== 200) throw new Error(r.body.error);
    if (json) out(JSON.stringify(r.body, null, 2) + '\n');
    else {
      const p = r.body;
      const i = p.interception;
      out(
        [
          `Pod:            ${p.namespace}/${p.name} (uid ${p.uid})`,
          `Sandbox:        ${p.containerId}`,
          `Netns cookie:   ${p.netnsCookie}`,
          `Cgroup:         ${p.cgroup ?? '(not found: any process in the netns is intercepted)'}`,
          `IPs:            ${p.ips.join(', ')} on ${p.ifname}`,
          `Ports:          outbound ${i.outboundPort}, inbound ${i.inboundPort}, sidecar uid ${i.sidecarUid}`,
          `Sockmap:        ${i.sockmap === false ? 'off (switchyard.dev/sockmap-acceleration: "false"): app <-> sidecar bytes take loopback TCP' : 'on for app <-> sidecar pairs'}`,
          `Excluded:       inbound ports ${i.excludeInboundPorts.join(',') || '-'}; outbound ports ${i.excludeOutboundPorts.join(',') || '-'}; outbound CIDRs ${i.excludeOutboundCidrs.join(',') || '-'}`,
          `Registered:     ${p.registeredAt} (${age(p.registeredAt)} ago)`,
          'Counters:',
          ...Object.entries(p.counters as Record<string, string>).map(([k, v]) => `  ${k.padEnd(20)} ${v}`),
        ].join('\n') + '\n',
      );
    }
    return 0;
  }
  const r = await agentGet(socket, '/v1/status');
  if (json) {
    out(JSON.stringify(r.body, null, 2) + '\n');
    return 0;
  }
  const rows = [['NAMESPACE', 'POD', 'IPS', 'NETNS-COOKIE', 'OUTBOUND', 'INBOUND', 'TC-INBOUND', 'EXCLUDED', 'DROPPED', 'AGE']];
  for (const p of r.body.pods) {
    const c = p.counters as Record<string, string | undefined>;
    const n = (k: string) => c[k] ?? '-'; // '-': the record has no map entry (reconcile repairs it)
    rows.push([p.namespace, p.name, p.ips.join(','), p.netnsCookie, n('redirected_outbound'), n('redirected_inbound'), n('tc_inbound_new'), n('excluded'), n('dropped'), age(p.registeredAt)]);
  }
  out(table(rows));
  out(`${r.body.pods.length} pods registered; node: ${Object.entries(r.body.node as Record<string, string>).filter(([, v]) => v !== '0').map(([k, v]) => `${k}=${v}`).join(' ') || 'no traffic yet'}\n`);
  return 0;
}

async function explainCommand(args: string[], out: (s: string) => void): Promise<number> {
  const socket = flag(args, 'socket') ?? DEFAULT_AGENT_SOCKET;
  const valued = new Set(['--uid', '--socket', '-o', '--output']);
  const positional = args.filter((a, i) => !a.startsWith('-') && !valued.has(args[i - 1]));
  const [pod, dst] = positional;
  if (!pod || !pod.includes('/') || !dst) throw new UsageError('usage: switchyard explain NAMESPACE/POD IP:PORT [--uid N] [--foreign]');
  const uid = flag(args, 'uid');
  const foreign = args.includes('--foreign') ? '&foreign=true' : '';
  const r = await agentGet(socket, `/v1/explain?pod=${encodeURIComponent(pod)}&dst=${encodeURIComponent(dst)}${uid ? `&uid=${uid}` : ''}${foreign}`);
  if (r.status !== 200) throw new Error(r.body.error);
  if (wantsJson(args)) out(JSON.stringify(r.body, null, 2) + '\n');
  else {
    const what = { 'redirect-outbound': 'REDIRECTED to the sidecar', 'redirect-inbound': 'REDIRECTED to the peer pod\'s inbound port', direct: 'NOT redirected', refused: 'REFUSED' }[r.body.verdict as string];
    out(`${pod} -> ${dst}: ${what}; connects to ${r.body.target}\n${r.body.reasons.map((x: string) => `  - ${x}`).join('\n')}\n`);
  }
  return 0;
}

async function checkCommand(args: string[], out: (s: string) => void): Promise<number> {
  const r = await agentGet(flag(args, 'socket') ?? DEFAULT_AGENT_SOCKET, '/v1/node');
  if (r.status !== 200) throw new Error(r.body.error);
  if (wantsJson(args)) {
    out(JSON.stringify(r.body, null, 2) + '\n');
    return 0;
  }
  const checks = nodeChecks(r.body);
  out(formatChecks(checks));
  return failed(checks) ? 1 : 0;
}

async function monitorCommand(args: string[], out: (s: string) => void): Promise<number> {
  const valued = new Set(['--type', '--count', '--socket', '-o', '--output']);
  const positional = args.filter((a, i) => !a.startsWith('-') && !valued.has(args[i - 1]));
  const unknown = args.filter((a, i) => a.startsWith('-') && !valued.has(a) && a !== '--until-stdin-closes' && a !== '-ojson' && !valued.has(args[i - 1]));
  if (unknown.length) throw new UsageError(`unknown flag ${unknown[0]}`);
  const [pod, extra] = positional;
  if (extra || (pod && !/^[^/]+\/[^/]+$/.test(pod))) throw new UsageError('usage: switchyard monitor [NAMESPACE/POD] [--type redirect|pass|drop] [--count N] [-o json]');
  const type = flag(args, 'type');
  if (type && !VERDICTS.includes(type as Verdict)) throw new UsageError(`--type ${type}: use one of ${VERDICTS.join(', ')}`);
  const countText = flag(args, 'count');
  const count = countText === undefined ? undefined : Number(countText);
  if (count !== undefined && !(Number.isInteger(count) && count > 0)) throw new UsageError(`--count ${countText}: give a whole number above 0`);
  return streamMonitor(
    { socket: flag(args, 'socket') ?? DEFAULT_AGENT_SOCKET, pod, type, json: wantsJson(args), count, untilStdinCloses: args.includes('--until-stdin-closes') },
    out,
  );
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
        // --ca-from DIR: sign a new serving certificate with the CA already in DIR, so the caBundle stays valid (leaf rotation).
        const caFrom = flag(args, 'ca-from');
        let ca: { cert: string; key: string } | undefined;
        if (caFrom) {
          const [cert, key] = ['ca.crt', 'ca.key'].map((f) => path.join(caFrom, f));
          if (!fs.existsSync(cert) || !fs.existsSync(key)) throw new UsageError(`--ca-from ${caFrom} must hold ca.crt and ca.key (as written by an earlier 'switchyard certs')`);
          ca = { cert: fs.readFileSync(cert, 'utf8'), key: fs.readFileSync(key, 'utf8') };
        }
        const bundle = await generateCertificates({ service, namespace, ipAddresses: flags(args, 'ip'), extraDnsNames: flags(args, 'dns'), ca });
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, 'ca.crt'), bundle.caCert);
        fs.writeFileSync(path.join(dir, 'ca.key'), bundle.caKey, { mode: 0o600 });
        fs.writeFileSync(path.join(dir, 'tls.crt'), bundle.cert);
        fs.writeFileSync(path.join(dir, 'tls.key'), bundle.key, { mode: 0o600 });
        const mwc = mutatingWebhookConfiguration(loadConfig(flag(args, 'config')), {
          endpoint: url ? { url } : { service: { name: service, namespace, port: 443, path: '/mutate' } },
          caBundlePem: bundle.caCert,
        });
        fs.writeFileSync(path.join(dir, 'secret.yaml'), stringify(tlsSecret(`${service}-tls`, namespace, bundle)));
        fs.writeFileSync(path.join(dir, 'mutatingwebhookconfiguration.yaml'), stringify(mwc));
        err(`wrote ca.crt, ca.key, tls.crt, tls.key, secret.yaml and mutatingwebhookconfiguration.yaml to ${dir} (names: ${bundle.dnsNames.join(', ')})\n`);
        return 0;
      }
      case 'status':
        return await statusCommand(args, out);
      case 'explain':
        return await explainCommand(args, out);
      case 'monitor':
        return await monitorCommand(args, out);
      case 'check':
        return await checkCommand(args, out);
      default:
        throw new UsageError(cmd ? `unknown command '${cmd}'` : 'no command given');
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`switchyard: ${e.message}\nusage: switchyard inject|uninject -f FILE [--config FILE] | certs --out DIR [--ip IP] [--url URL] [--ca-from DIR] | status [NS/POD] [-o json] | explain NS/POD IP:PORT [--uid N] [--foreign] | monitor [NS/POD] [--type T] [--count N] [-o json] | check [-o json]\n`);
      return 2;
    }
    err(`switchyard ${cmd}: ${(e as Error).message}\n`);
    return 1;
  }
}

/**
 * Exits once everything written has reached the other end. A pipe takes
 * what fits in its buffer at once and the rest asynchronously, so exiting
 * right after a large write would cut the output off (with status 0) in
 * `switchyard inject -f big.yaml | kubectl apply -f -`.
 */
async function exitWhenFlushed(code: number): Promise<never> {
  const drained = (s: NodeJS.WriteStream) => new Promise<void>((resolve) => s.write('', () => resolve()));
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  process.exit(code);
}

if (require.main === module) {
  // A reader that goes away (| head) ends the command quietly, as for any Unix tool.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  void run(process.argv.slice(2), (s) => process.stdout.write(s), (s) => process.stderr.write(s)).then(exitWhenFlushed);
}
