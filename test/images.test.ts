/**
 * The images' contents, built the way their Dockerfiles build them (the
 * lockfile's dependencies, the compiled dist/, then `npm prune --omit=dev`),
 * in a directory outside the checkout: each entry point must load its whole
 * module graph from those files alone and do its job. A module that only a
 * devDependency provides fails here exactly as it would in the image.
 *
 * The sidecar's set holds its own addon (origdst.node) and not the agent's:
 * it must start and ask SO_ORIGINAL_DST from that alone, and the addon must
 * not need libbpf.
 */
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as net from 'net';
import * as path from 'path';
import { freePort } from '../lab/src/ports';
import { Proc } from '../lab/src/proc';
import { IMAGES, ROOT } from '../images/src/specs';

const root = path.join(__dirname, '..');

describe('image file sets: entry points start without devDependencies', () => {
  test('the agent image carries every BPF object the build makes (a missing one stops the agent at start)', () => {
    const built = fs.readdirSync(path.join(ROOT, 'build', 'bpf')).filter((f) => f.endsWith('.bpf.o')).map((f) => `build/bpf/${f}`).sort();
    const agent = IMAGES.find((i) => i.name.includes('/interceptor:'));
    const files: string[] = (agent && 'files' in agent ? agent.files : undefined) ?? [];
    expect(built.length).toBeGreaterThan(8);
    expect(built.filter((f) => !files.includes(f))).toEqual([]);
  });

  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syimage-'));
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(root, f), path.join(dir, f));
    fs.cpSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
    execFileSync('npm', ['prune', '--omit=dev', '--offline', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'pipe' });
    // The pruning is real: a devDependency is gone.
    expect(fs.existsSync(path.join(dir, 'node_modules', 'jest'))).toBe(false);
  }, 120_000);

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const node = (args: string[]) => spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', input: '' });

  test('switchyard-webhook loads and asks for its certificate (its module graph resolves)', () => {
    const r = node(['dist/webhook/src/main.js']);
    expect(r.stderr).not.toContain('Cannot find module');
    expect(r.stderr).toContain('switchyard-webhook: --tls-cert is required');
    expect(r.status).toBe(2);
  });

  test('switchyard inject runs the injector core from the pruned set', () => {
    const input = path.join(dir, 'pod.yaml');
    fs.writeFileSync(input, 'apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: apps}\nspec: {containers: [{name: app, image: a}]}\n');
    const r = node(['dist/cli/main.js', 'inject', '-f', input]);
    expect(r.stderr).toContain('pod/web: injected');
    expect(r.stdout).toContain('switchyard-proxy');
    expect(r.status).toBe(0);
  });

  test('switchyard certs writes its files from the pruned set', () => {
    const out = path.join(dir, 'certs');
    const r = node(['dist/cli/main.js', 'certs', '--out', out, '--ip', '127.0.0.1']);
    expect(r.status).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(['ca.crt', 'ca.key', 'mutatingwebhookconfiguration.yaml', 'secret.yaml', 'tls.crt', 'tls.key']);
  });

  test('switchyard-sidecar starts from its set with its own addon only, which links no libbpf, and asks SO_ORIGINAL_DST', async () => {
    fs.mkdirSync(path.join(dir, 'build', 'native'), { recursive: true });
    fs.copyFileSync(path.join(root, 'build', 'native', 'origdst.node'), path.join(dir, 'build', 'native', 'origdst.node'));
    const needed = execFileSync('readelf', ['-d', path.join(dir, 'build', 'native', 'origdst.node')], { encoding: 'utf8' });
    expect(needed).toContain('(NEEDED)');
    expect(needed).not.toMatch(/libbpf|libelf/);
    const [outbound, inbound, admin] = [await freePort(), await freePort(), await freePort()];
    const sidecar = new Proc('sidecar', spawn(process.execPath, ['dist/sidecar/src/main.js', '--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', String(admin)], { cwd: dir }));
    try {
      await sidecar.waitForJson((o) => o.event === 'ready');
      // A connection nothing redirected: the kernel has no original destination for it, and the sidecar says so.
      await new Promise<void>((resolve, reject) => net.connect(outbound, '127.0.0.1').on('error', reject).on('close', () => resolve()).resume());
      const line = await sidecar.waitForLine((l) => l.includes(' outbound '));
      expect(line).toContain('result=no_original_dst');
      expect(sidecar.stderr).not.toMatch(/Cannot find module|addon is missing/);
    } finally {
      await sidecar.stop('SIGKILL');
    }
  });
});
