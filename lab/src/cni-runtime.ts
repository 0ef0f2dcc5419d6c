/**
 * Runs a CNI network configuration list the way a container runtime (libcni)
 * does: ADD through the plugins in order, each given the previous plugin's
 * result as prevResult; DEL in reverse order with the cached result; CHECK in
 * order. Plugins run inside a node's network namespace, so the bridge plugin
 * creates its bridge there and never on the host.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';

export interface NetworkList {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

export interface Invocation {
  containerId: string;
  netnsPath: string;
  ifname: string;
  args: Record<string, string>;
}

export class CniPluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly exitCode: number | null,
    readonly error: { cniVersion?: string; code?: number; msg?: string; details?: string } | null,
    readonly stderr: string,
  ) {
    super(`${plugin} failed (exit ${exitCode}): ${error ? `code ${error.code}: ${error.msg}${error.details ? ` (${error.details})` : ''}` : stderr}`);
  }
}

export interface PluginRun {
  plugin: string;
  ms: number;
  output: unknown;
}

/**
 * Runs one plugin. `ms` is the wall time seen from here, which includes
 * nsenter's exec and this process's fork; with `timer` (the bench's
 * `cni-exec`, which joins the netns itself and reports on fd 3) it is the
 * plugin's own fork-to-reaped time, as a Go runtime would see it.
 */
export function execPlugin(
  nodeNetns: string | null,
  binDirs: string[],
  type: string,
  command: string,
  inv: Invocation,
  stdin: string,
  timer?: string,
): Promise<{ stdout: string; code: number | null; stderr: string; ms: number }> {
  // Like libcni: the first directory of CNI_PATH that has the plugin.
  const bin = binDirs.map((d) => `${d}/${type}`).find((p) => fs.existsSync(p));
  if (!bin) return Promise.reject(new Error(`CNI plugin ${type} not found in ${binDirs.join(':')}`));
  // nsenter joins only the network namespace (ip netns exec also remounts /sys, which costs
  // more as mounts grow); plugins talk netlink, which follows the network namespace.
  const netns = nodeNetns ? `/var/run/netns/${nodeNetns}` : undefined;
  const argv = timer ? [timer, ...(netns ? ['--netns', netns] : []), bin] : netns ? ['nsenter', `--net=${netns}`, bin] : [bin];
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), {
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: inv.containerId,
        CNI_NETNS: inv.netnsPath,
        CNI_IFNAME: inv.ifname,
        CNI_PATH: binDirs.join(':'),
        CNI_ARGS: Object.entries(inv.args).map(([k, v]) => `${k}=${v}`).join(';'),
      },
      stdio: ['pipe', 'pipe', 'pipe', ...(timer ? (['pipe'] as const) : [])],
    });
    let stdout = '';
    let stderr = '';
    let timed = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    if (timer) (child.stdio[3] as NodeJS.ReadableStream).on('data', (d) => (timed += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = timed.trim() ? Number(timed.trim()) / 1e6 : Number(process.hrtime.bigint() - started) / 1e6;
      resolve({ stdout, code, stderr, ms });
    });
    // A plugin that exits before reading its config tells why in its exit code and stderr; EPIPE here is not the story.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(stdin);
  });
}

export class CniRuntime {
  constructor(
    private readonly nodeNetns: string,
    private readonly binDirs: string[],
    readonly network: NetworkList,
    /** The bench's cni-exec: plugin times without nsenter and this process's fork (see execPlugin). */
    private readonly timer?: string,
  ) {}

  private config(plugin: Record<string, unknown>, prevResult?: unknown): string {
    return JSON.stringify({ ...plugin, cniVersion: this.network.cniVersion, name: this.network.name, ...(prevResult ? { prevResult } : {}) });
  }

  private async call(command: string, plugin: Record<string, unknown>, inv: Invocation, prevResult?: unknown): Promise<PluginRun> {
    const type = String(plugin.type);
    const r = await execPlugin(this.nodeNetns, this.binDirs, type, command, inv, this.config(plugin, prevResult), this.timer);
    if (r.code !== 0) {
      let err = null;
      try {
        err = JSON.parse(r.stdout);
      } catch {
        /* not JSON */
      }
      throw new CniPluginError(type, r.code, err, r.stderr);
    }
    return { plugin: type, ms: r.ms, output: r.stdout.trim() ? JSON.parse(r.stdout) : undefined };
  }

  /** ADD through the chain; returns every plugin's output (the last one is the result). */
  async add(inv: Invocation): Promise<PluginRun[]> {
    const runs: PluginRun[] = [];
    let prev: unknown;
    for (const p of this.network.plugins) {
      const run = await this.call('ADD', p, inv, prev);
      runs.push(run);
      prev = run.output;
    }
    return runs;
  }

  async check(inv: Invocation, result: unknown): Promise<void> {
    for (const p of this.network.plugins) await this.call('CHECK', p, inv, result);
  }

  async del(inv: Invocation, result?: unknown): Promise<void> {
    for (const p of [...this.network.plugins].reverse()) await this.call('DEL', p, inv, result);
  }
}
