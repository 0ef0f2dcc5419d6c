import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { requireGraph } from './graph';
import { sha256File, tarDirectory, writeArchive } from './oci';

describe('OCI archives and app file sets', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syoci-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a layer from the same files has the same digest (sorted names, mtime 0)', () => {
    const stage = path.join(dir, 'stage');
    fs.mkdirSync(path.join(stage, 'app'), { recursive: true });
    fs.writeFileSync(path.join(stage, 'app', 'b.js'), 'b');
    fs.writeFileSync(path.join(stage, 'app', 'a.js'), 'a');
    const one = tarDirectory(stage, path.join(dir, 'one.tar'));
    fs.utimesSync(path.join(stage, 'app', 'a.js'), new Date(), new Date(2020, 1, 1));
    const two = tarDirectory(stage, path.join(dir, 'two.tar'));
    expect(two.digest).toBe(one.digest);
    expect(one.digest).toBe(sha256File(path.join(dir, 'one.tar')));
  });

  test('the archive is an OCI layout whose index names each image, and shared layers are stored once', () => {
    const stage = path.join(dir, 'stage');
    fs.mkdirSync(stage);
    fs.writeFileSync(path.join(stage, 'f'), 'x');
    const layer = tarDirectory(stage, path.join(dir, 'l.tar'));
    const config = { user: '1:1', env: [], workingDir: '/' };
    const out = path.join(dir, 'images.tar');
    const digests = writeArchive(
      [
        { name: 'example.dev/a:1', layers: [layer], config },
        { name: 'example.dev/b:1', layers: [layer], config: { ...config, entrypoint: ['/f'] } },
      ],
      out,
    );
    const x = path.join(dir, 'x');
    fs.mkdirSync(x);
    execFileSync('tar', ['-xf', out, '-C', x]);
    expect(JSON.parse(fs.readFileSync(path.join(x, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(fs.readFileSync(path.join(x, 'index.json'), 'utf8'));
    expect(index.manifests.map((m: any) => m.annotations['io.containerd.image.name'])).toEqual(['example.dev/a:1', 'example.dev/b:1']);
    expect(index.manifests.map((m: any) => m.digest)).toEqual([digests['example.dev/a:1'], digests['example.dev/b:1']]);
    const blobs = fs.readdirSync(path.join(x, 'blobs', 'sha256'));
    expect(blobs).toContain(layer.digest.slice(7));
    expect(blobs).toHaveLength(5); // 1 layer + 2 configs + 2 manifests
    for (const b of blobs) expect(sha256File(path.join(x, 'blobs', 'sha256', b))).toBe(`sha256:${b}`);
    const manifest = JSON.parse(fs.readFileSync(path.join(x, 'blobs', 'sha256', digests['example.dev/b:1'].slice(7)), 'utf8'));
    const cfg = JSON.parse(fs.readFileSync(path.join(x, 'blobs', 'sha256', manifest.config.digest.slice(7)), 'utf8'));
    expect(cfg.config).toMatchObject({ User: '1:1', Entrypoint: ['/f'] });
    expect(cfg.rootfs.diff_ids).toEqual([layer.digest]);
  });

  test('an entry point\'s file set is its relative require graph; a require of a file not built fails the build', () => {
    fs.mkdirSync(path.join(dir, 'lib'));
    fs.writeFileSync(path.join(dir, 'main.js'), "require('./lib/a');\nrequire('express');\n");
    fs.writeFileSync(path.join(dir, 'lib', 'a.js'), "require('../data.json'); require(\"./b\");");
    fs.writeFileSync(path.join(dir, 'lib', 'b.js'), '');
    fs.writeFileSync(path.join(dir, 'data.json'), '{}');
    fs.writeFileSync(path.join(dir, 'unused.js'), '');
    expect(requireGraph(path.join(dir, 'main.js')).map((f) => path.relative(dir, f))).toEqual(['data.json', 'lib/a.js', 'lib/b.js', 'main.js']);
    fs.writeFileSync(path.join(dir, 'lib', 'b.js'), "require('./gone');");
    expect(() => requireGraph(path.join(dir, 'main.js'))).toThrow(/requires '\.\/gone', which is not built: run 'make ts'/);
  });
});
