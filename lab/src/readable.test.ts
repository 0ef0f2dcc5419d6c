import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { othersCanRead, readableRoot } from './readable';

describe('files other users run come from where they can read them', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syreadable-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A fake checkout: the sidecar's entry point, the addon, a fixture. */
  function checkout(mode: number): string {
    const root = path.join(dir, 'home');
    for (const [f, text] of [['dist/sidecar/src/main.js', 'x'], ['build/native/switchyard.node', 'y'], ['test/fixtures/peer.py', 'z'], ['src/secret.ts', 's']]) {
      fs.mkdirSync(path.join(root, path.dirname(f)), { recursive: true });
      fs.writeFileSync(path.join(root, f), text, { mode: 0o644 });
    }
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(root, mode);
    return root;
  }

  test('a checkout under a 0755 directory is used as it is', () => {
    const root = checkout(0o755);
    expect(othersCanRead(path.join(root, 'dist/sidecar/src/main.js'))).toBe(true);
    expect(readableRoot(root)).toBe(root);
  });

  test("a checkout under a 0700 directory (root's home) is copied: dist, the addon and the fixtures, readable by all, nothing else", () => {
    const root = checkout(0o700);
    expect(othersCanRead(path.join(root, 'dist/sidecar/src/main.js'))).toBe(false);
    const copy = readableRoot(root);
    expect(copy).not.toBe(root);
    expect(readableRoot(root)).toBe(copy); // once per process
    for (const f of ['dist/sidecar/src/main.js', 'build/native/switchyard.node', 'test/fixtures/peer.py']) {
      expect(othersCanRead(path.join(copy, f))).toBe(true);
    }
    expect(fs.existsSync(path.join(copy, 'src'))).toBe(false);
    fs.rmSync(copy, { recursive: true, force: true });
  });
});
