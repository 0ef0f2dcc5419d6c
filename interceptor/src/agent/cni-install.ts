/**
 * Puts switchyard-cni into the node's CNI configuration, after the cluster's
 * main plugin, and takes it out again: what the DaemonSet's init container
 * and the uninstall DaemonSet run.
 *
 *   /etc/cni/net.d: the runtime uses the lexically first .conflist/.conf/.json
 *     .conflist → our entry appended to "plugins" (replaced if present)
 *     .conf     → rewritten as <stem>.conflist with [main plugin, ours];
 *                 the original is kept as <file>.switchyard-orig and restored on uninstall
 *   /opt/cni/bin/switchyard-cni: copied atomically
 *
 * Every write is tmp + rename; on any error nothing has changed.
 */
import * as fs from 'fs';
import * as path from 'path';

export const PLUGIN_TYPE = 'switchyard-cni';
const ORIG_SUFFIX = '.switchyard-orig';

export class CniInstallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CniInstallError';
  }
}

export interface CniInstallOptions {
  confDir: string;
  binDir: string;
  /** The plugin binary to copy; omitted on uninstall. */
  binSource?: string;
  /** Our entry's settings besides "type" (agentSocket, timeoutSeconds, failOpen, logFile). */
  settings?: Record<string, unknown>;
}

/** The file the runtime reads: libcni's order, ours and backups excluded. */
export function activeConfig(confDir: string): string | undefined {
  if (!fs.existsSync(confDir)) return undefined;
  return fs
    .readdirSync(confDir)
    .filter((f) => /\.(conflist|conf|json)$/.test(f))
    .sort()
    .map((f) => path.join(confDir, f))[0];
}

function readJson(file: string): Record<string, any> {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v;
  } catch (e) {
    throw new CniInstallError(`${file} is not a valid CNI configuration (${(e as Error).message}); fix or remove it, then restart the interceptor`);
  }
}

function writeAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file);
}

export function installCni(o: CniInstallOptions): { file: string; action: 'added' | 'updated' | 'converted' } {
  const file = activeConfig(o.confDir);
  if (!file) throw new CniInstallError(`no CNI network configuration in ${o.confDir}: install the cluster's main CNI plugin first; switchyard-cni chains after it`);
  const conf = readJson(file);
  if (!o.binSource || !fs.existsSync(o.binSource)) throw new CniInstallError(`the plugin binary ${o.binSource ?? '(none given)'} does not exist`);
  const entry = { type: PLUGIN_TYPE, ...(o.settings ?? {}) };

  let out: Record<string, any>;
  let target = file;
  let action: 'added' | 'updated' | 'converted';
  if (Array.isArray(conf.plugins)) {
    const plugins = conf.plugins.filter((p: any) => p?.type !== PLUGIN_TYPE);
    action = plugins.length === conf.plugins.length ? 'added' : 'updated';
    out = { ...conf, plugins: [...plugins, entry] };
  } else {
    if (!conf.type) throw new CniInstallError(`${file} has neither "plugins" nor "type": it is not a CNI configuration`);
    const { cniVersion, name, ...plugin } = conf;
    out = { cniVersion, name, plugins: [plugin, entry] };
    target = file.replace(/\.(conf|json)$/, '.conflist');
    action = 'converted';
  }

  fs.mkdirSync(o.binDir, { recursive: true });
  writeAtomic(path.join(o.binDir, PLUGIN_TYPE), fs.readFileSync(o.binSource), 0o755);
  writeAtomic(target, JSON.stringify(out, null, 2) + '\n');
  if (target !== file) fs.renameSync(file, file + ORIG_SUFFIX); // the runtime must not pick the old single-plugin file
  return { file: target, action };
}

export function uninstallCni(o: Pick<CniInstallOptions, 'confDir' | 'binDir'>): { file?: string; action: 'removed' | 'restored' | 'absent' } {
  let result: { file?: string; action: 'removed' | 'restored' | 'absent' } = { action: 'absent' };
  const backups = fs.existsSync(o.confDir) ? fs.readdirSync(o.confDir).filter((f) => f.endsWith(ORIG_SUFFIX)) : [];
  for (const b of backups) {
    const orig = path.join(o.confDir, b.slice(0, -ORIG_SUFFIX.length));
    const converted = orig.replace(/\.(conf|json)$/, '.conflist');
    fs.renameSync(path.join(o.confDir, b), orig);
    fs.rmSync(converted, { force: true });
    result = { file: orig, action: 'restored' };
  }
  const file = activeConfig(o.confDir);
  if (file && result.action === 'absent') {
    const conf = readJson(file);
    if (Array.isArray(conf.plugins) && conf.plugins.some((p: any) => p?.type === PLUGIN_TYPE)) {
      writeAtomic(file, JSON.stringify({ ...conf, plugins: conf.plugins.filter((p: any) => p?.type !== PLUGIN_TYPE) }, null, 2) + '\n');
      result = { file, action: 'removed' };
    }
  }
  fs.rmSync(path.join(o.binDir, PLUGIN_TYPE), { force: true });
  return result;
}
