/**
 * Builds every image into one OCI archive, with no registry and no engine:
 *
 *   node dist/images/src/build.js [--out FILE]
 *
 * Layers are cached under $SWITCHYARD_CACHE/images/layers by a hash of their
 * inputs (the Debian package list, the lockfile, the bytes of every file an
 * app layer holds), so a rebuild after a code change redoes only the app
 * layers, and a build with nothing changed only rewrites the index. The
 * archive path is printed last on stdout; sizes go to stderr.
 */
import { createHash } from 'crypto';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Image, Layer, layerOf, tarDirectory, writeArchive } from './oci';
import { requireGraph } from './graph';
import { BASE, IMAGES, ImageSpec, NodeImage, ROOT } from './specs';

const BUILDER_VERSION = '2';

/** Where build progress goes: stderr for the command, the caller's choice for the lab. */
let progress: (line: string) => void = (line) => process.stderr.write(`${line}\n`);

export function cacheDir(): string {
  return path.join(process.env.SWITCHYARD_CACHE ?? '/var/cache/switchyard', 'images');
}

function hash(...parts: (string | Buffer)[]): string {
  const h = createHash('sha256').update(BUILDER_VERSION);
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 24);
}

/** A layer cached by key: `make` stages its files into a directory, or writes the tar itself. */
function cachedLayer(key: string, what: string, make: (stage: string, tar: string) => Layer | void): Layer {
  const dir = path.join(cacheDir(), 'layers');
  fs.mkdirSync(dir, { recursive: true });
  const tar = path.join(dir, `${what}-${key}.tar`);
  const meta = `${tar}.json`;
  if (fs.existsSync(tar) && fs.existsSync(meta)) return { file: tar, ...JSON.parse(fs.readFileSync(meta, 'utf8')) };
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), `syimage-${what}-`));
  const tmp = path.join(dir, `.${what}-${key}.${process.pid}.tar`); // mmdebstrap picks its output format by the suffix
  try {
    const t0 = Date.now();
    const made = make(stage, tmp) ?? tarDirectory(stage, tmp);
    fs.renameSync(tmp, tar);
    const layer = { ...made, file: tar };
    fs.writeFileSync(meta, JSON.stringify({ digest: layer.digest, size: layer.size }));
    progress(`images: built layer ${what} (${mb(layer.size)}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return layer;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
    fs.rmSync(tmp, { force: true });
  }
}

/** Debian trixie's nodejs and libbpf, extracted (no maintainer scripts run), docs and locales left out. */
function baseLayer(): Layer {
  return cachedLayer(hash(BASE.suite, BASE.mirror, ...BASE.packages), 'base', (_stage, tar) => {
    execFileSync(
      'mmdebstrap',
      [
        '--quiet',
        '--variant=extract',
        `--include=${BASE.packages.join(',')}`,
        '--skip=output/dev',
        '--dpkgopt=path-exclude=/usr/share/doc/*',
        '--dpkgopt=path-exclude=/usr/share/man/*',
        '--dpkgopt=path-exclude=/usr/share/locale/*',
        // What ca-certificates' postinst would write: the bundle Node reads at start.
        '--customize-hook=cat "$1"/usr/share/ca-certificates/mozilla/*.crt > "$1"/etc/ssl/certs/ca-certificates.crt',
        BASE.suite,
        tar,
        BASE.mirror,
      ],
      // SOURCE_DATE_EPOCH: mmdebstrap's output is then the same bytes for the same packages.
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SOURCE_DATE_EPOCH: '0' } },
    );
    return layerOf(tar);
  });
}

/** The lockfile's production dependencies, installed from npm's cache when it has them. */
function modulesLayer(): Layer {
  const lock = fs.readFileSync(path.join(ROOT, 'package-lock.json'));
  const pkg = fs.readFileSync(path.join(ROOT, 'package.json'));
  return cachedLayer(hash(lock, pkg), 'node_modules', (stage) => {
    const app = path.join(stage, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), pkg);
    fs.writeFileSync(path.join(app, 'package-lock.json'), lock);
    execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: app,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    fs.rmSync(path.join(app, 'package-lock.json'));
    fs.rmSync(path.join(app, 'node_modules', '.package-lock.json'), { force: true });
  });
}

/** The image's own files: its entry points' require graphs, its artefacts, and its PATH wrappers. */
function appLayer(spec: NodeImage): Layer {
  const dist = path.join(ROOT, 'dist');
  const js = [...new Set(spec.entries.flatMap((e) => requireGraph(path.join(dist, e))))].sort();
  const files = [...js.map((f) => path.relative(ROOT, f)), ...(spec.files ?? [])];
  // The image has no /usr/bin/env for the scripts' own shebang; the entry runs as the main module,
  // so a `require.main === module` guard holds.
  const wrappers = Object.entries(spec.bin ?? {}).map(([name, entry]) => ({
    name,
    text: `#!/usr/bin/node\nprocess.argv[1] = '/app/dist/${entry}';\nrequire('module').runMain();\n`,
  }));
  const h = createHash('sha256');
  for (const f of files) h.update(f).update(fs.readFileSync(path.join(ROOT, f)));
  const what = spec.name.split('/').pop()!.split(':')[0];
  return cachedLayer(hash(h.digest('hex'), JSON.stringify(spec), JSON.stringify(wrappers)), `app-${what}`, (stage) => {
    for (const f of files) {
      const dst = path.join(stage, 'app', f);
      fs.mkdirSync(path.dirname(dst), { recursive: true, mode: 0o755 });
      fs.copyFileSync(path.join(ROOT, f), dst);
      fs.chmodSync(dst, f.startsWith('build/cni/') ? 0o755 : 0o644);
    }
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(stage, 'app', 'package.json'));
    if (spec.buildId) fs.writeFileSync(path.join(stage, 'app', 'BUILD'), `${spec.buildId}\n`);
    const bin = path.join(stage, 'usr', 'local', 'bin');
    fs.mkdirSync(bin, { recursive: true });
    for (const w of wrappers) fs.writeFileSync(path.join(bin, w.name), w.text, { mode: 0o755 });
  });
}

function pauseLayer(): Layer {
  const src = fs.readFileSync(path.join(ROOT, 'images', 'pause', 'pause.c'));
  return cachedLayer(hash(src), 'pause', (stage) => {
    execFileSync('gcc', ['-static', '-Os', '-s', '-Wall', '-Werror', '-o', path.join(stage, 'pause'), path.join(ROOT, 'images', 'pause', 'pause.c')]);
  });
}

function image(spec: ImageSpec, shared: () => Layer[]): Image {
  if (spec.kind === 'pause') {
    return { name: spec.name, layers: [pauseLayer()], config: { user: '65535:65535', entrypoint: ['/pause'], env: [], workingDir: '/' } };
  }
  return {
    name: spec.name,
    layers: [...shared(), appLayer(spec)],
    config: {
      user: spec.user,
      entrypoint: spec.entrypoint,
      cmd: spec.cmd,
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production'],
      workingDir: '/app',
    },
  };
}

export interface Built {
  archive: string;
  images: { name: string; bytes: number; digest: string }[];
}

export interface BuildOptions {
  /** The archive; default $SWITCHYARD_CACHE/images/switchyard-images.tar. */
  out?: string;
  /** Each layer built is reported here (default: stderr). */
  onProgress?: (line: string) => void;
  /** Only the images whose repository (name without tag) is listed. */
  only?: string[];
  /** Another tag than the package version, for a rebuilt image (upgrades). */
  tag?: string;
  /** Written to /app/BUILD, so that a rebuild of the same sources is another image (another digest). */
  buildId?: string;
}

/** Builds (or reuses) every layer and writes the archive. */
export function buildImages(opts: BuildOptions = {}): Built {
  const out = opts.out ?? path.join(cacheDir(), 'switchyard-images.tar');
  if (opts.onProgress) progress = opts.onProgress;
  let sharedLayers: Layer[] | undefined;
  const shared = () => (sharedLayers ??= [baseLayer(), modulesLayer()]);
  const repo = (name: string) => name.slice(0, name.lastIndexOf(':'));
  const specs = IMAGES.filter((s) => !opts.only || opts.only.includes(repo(s.name))).map((s) => ({
    ...s,
    ...(opts.tag ? { name: `${repo(s.name)}:${opts.tag}` } : {}),
    ...(opts.buildId && s.kind === 'node' ? { buildId: opts.buildId } : {}),
  }));
  const images = specs.map((s) => image(s, shared));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const digests = writeArchive(images, out);
  pruneLayers(new Set(images.flatMap((i) => i.layers.map((l) => l.file))));
  return {
    archive: out,
    images: images.map((i) => ({ name: i.name, bytes: i.layers.reduce((n, l) => n + l.size, 0), digest: digests[i.name] })),
  };
}

/**
 * Layers this build uses are marked as used now; layers no build has used for a
 * day (older builds' app layers) leave the cache. Another checkout sharing the
 * cache keeps its layers as long as it builds.
 */
function pruneLayers(used: Set<string>): void {
  const dir = path.join(cacheDir(), 'layers');
  const now = new Date();
  for (const f of used) fs.utimesSync(f, now, now);
  for (const f of fs.readdirSync(dir)) {
    const file = path.join(dir, f.replace(/\.json$/, ''));
    if (f.startsWith('.') || used.has(file)) continue;
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st || now.getTime() - st.mtimeMs > 24 * 3600_000) fs.rmSync(path.join(dir, f), { force: true });
  }
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

if (require.main === module) {
  const o = process.argv.indexOf('--out');
  try {
    const t0 = Date.now();
    const built = buildImages({ out: o > 0 ? path.resolve(process.argv[o + 1]) : undefined });
    for (const i of built.images) process.stderr.write(`images: ${i.name.padEnd(44)} ${mb(i.bytes).padStart(9)}  ${i.digest.slice(0, 19)}\n`);
    process.stderr.write(`images: archive ${mb(fs.statSync(built.archive).size)} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    process.stdout.write(`${built.archive}\n`);
  } catch (e) {
    process.stderr.write(`images: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
