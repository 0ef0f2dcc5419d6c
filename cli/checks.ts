/**
 * Checks as both CLIs print them: one line each, ✓ or ✗ (or ! for a warning
 * that does not fail), and for anything not ✓ what to do about it.
 * nodeChecks turns the agent's node report (GET /v1/node) into checks;
 * `switchyard check` prints them for its node, `kubectl switchyard check`
 * for every node and then for the install.
 */
import type { NodeReport } from '../api/agent-wire';

export interface Check {
  status: 'ok' | 'fail' | 'warn';
  what: string;
  /** What to do, for fail and warn. */
  fix?: string;
}

export const ok = (what: string): Check => ({ status: 'ok', what });
export const fail = (what: string, fix: string): Check => ({ status: 'fail', what, fix });
export const warn = (what: string, fix: string): Check => ({ status: 'warn', what, fix });

const MARK = { ok: '✓', fail: '✗', warn: '!' } as const;

export function formatChecks(checks: Check[], indent = ''): string {
  return checks.map((c) => `${indent}${MARK[c.status]} ${c.what}\n${c.fix && c.status !== 'ok' ? `${indent}    ${c.fix}\n` : ''}`).join('');
}

export const failed = (checks: Check[]) => checks.some((c) => c.status === 'fail');

export const MIN_KERNEL: [number, number] = [5, 15];

export function nodeChecks(r: NodeReport): Check[] {
  const out: Check[] = [];
  const [major, minor] = r.kernel.split(/[.-]/).map(Number);
  const kernelOk = major > MIN_KERNEL[0] || (major === MIN_KERNEL[0] && minor >= MIN_KERNEL[1]);
  out.push(kernelOk ? ok(`kernel ${r.kernel} (${MIN_KERNEL.join('.')} or later)`) : fail(`kernel ${r.kernel} is older than ${MIN_KERNEL.join('.')}`, 'run the node on Linux 5.15 or later'));
  out.push(r.btf ? ok('kernel BTF at /sys/kernel/btf/vmlinux') : fail('no kernel BTF (/sys/kernel/btf/vmlinux)', 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution kernel since 2021 is)'));
  if ('error' in r.cgroup) out.push(fail(`cgroup v2: ${r.cgroup.error}`, 'boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1), or at least mount it (hybrid)'));
  else out.push(ok(`cgroup v2 at ${r.cgroup.mount} (${r.cgroup.mode === 'unified' ? 'pure v2' : 'hybrid: v1 controllers beside it'})`));
  out.push(r.bpffs.mounted ? ok(`bpffs at ${r.bpffs.path}`) : fail(`bpffs is not mounted at ${r.bpffs.path}`, `mount -t bpf bpf ${r.bpffs.path} on the node (systemd does it at boot)`));
  const missing = r.features.filter((f) => !f.ok);
  if (!missing.length) out.push(ok(`all ${r.features.length} BPF hooks and helpers the programs use (origdst hand-off: ${r.origdstHandoff})`));
  for (const f of missing) out.push(fail(`the kernel lacks ${f.what}`, `it came in Linux ${f.since}: upgrade the node's kernel`));
  const chain = r.cni.plugins;
  if (r.cni.error || !chain) out.push(fail(`CNI configuration in ${r.cni.confDir}: ${r.cni.error ?? 'unreadable'}`, "the interceptor's install-cni init container writes it: see its log (kubectl logs -n switchyard-system POD -c install-cni)"));
  else if (chain[chain.length - 1] === 'switchyard-cni') out.push(ok(`CNI chain in ${r.cni.file}: ${chain.join(' → ')}`));
  else
    out.push(
      fail(
        `CNI chain in ${r.cni.file} is ${chain.join(' → ')}: switchyard-cni is ${chain.includes('switchyard-cni') ? 'not last' : 'missing'}`,
        'pods started now are not registered; restart the interceptor pod on this node so that install-cni chains it again (another CNI may have rewritten the file)',
      ),
    );
  return out;
}
