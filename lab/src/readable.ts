/**
 * What processes started as other users (sidecars as 1337, apps and test
 * peers as 1000) run must be readable by them. A checkout may not be: a
 * clone in root's home (mode 0700) is readable by root only. Then the lab
 * runs them from a copy of exactly what they load, made once per process
 * under the lab's run root and readable by all:
 *
 *   dist/            the compiled scripts
 *   build/native/    the addons (origdst.node: the sidecar's SO_ORIGINAL_DST lookup)
 *   test/fixtures/   the Python peers
 *
 * The copy is named after this process (sylab-<pid>p…), so the sweep of dead
 * runs removes it like any other leftover; it is also removed at exit.
 */
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot } from '../../native';
import { LAB_PREFIX, LAB_RUN_ROOT } from './names';

/** Whether users other than the owner can reach and read `file`: every directory above it o+x, the file o+r. */
export function othersCanRead(file: string): boolean {
  const resolved = path.resolve(file);
  for (let d = path.dirname(resolved); ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) return false;
    if (d === path.dirname(d)) break;
  }
  return (fs.statSync(resolved).mode & 0o004) !== 0;
}

const COPIED = ['dist', path.join('build', 'native'), path.join('test', 'fixtures')];
let copy: string | undefined;

function copyReadable(from: string, to: string): void {
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const [src, dst] = [path.join(from, e.name), path.join(to, e.name)];
    if (e.isDirectory()) {
      fs.mkdirSync(dst, { mode: 0o755 });
      copyReadable(src, dst);
    } else if (e.isFile()) {
      fs.copyFileSync(src, dst);
      fs.chmodSync(dst, (fs.statSync(src).mode & 0o111) !== 0 ? 0o755 : 0o644);
    }
  }
}

/** The root to run other users' programs from: the checkout when they can read it, else the copy. */
export function readableRoot(root = projectRoot()): string {
  if (othersCanRead(path.join(root, 'dist', 'sidecar', 'src', 'main.js'))) return root;
  if (copy) return copy;
  const dir = path.join(LAB_RUN_ROOT, `${LAB_PREFIX}-${process.pid}pf11e5`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(LAB_RUN_ROOT, { recursive: true, mode: 0o755 });
  fs.chmodSync(LAB_RUN_ROOT, 0o755);
  fs.mkdirSync(dir, { mode: 0o755 });
  for (const rel of COPIED) {
    if (!fs.existsSync(path.join(root, rel))) continue;
    const dst = path.join(dir, rel);
    fs.mkdirSync(dst, { recursive: true, mode: 0o755 });
    copyReadable(path.join(root, rel), dst);
  }
  // projectRoot() finds a root by its build/native: the copy has one.
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  copy = dir;
  return dir;
}

/** A file of the checkout (e.g. test/fixtures/peer.py), from where other users can read it. */
export function readablePath(rel: string): string {
  return path.join(readableRoot(), rel);
}
