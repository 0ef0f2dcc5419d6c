/**
 * The installed CLI (dist/cli/main.js) through a real pipe, as in the
 * documented offline flow `switchyard inject -f deploy.yaml | kubectl apply -f -`.
 * A pipe takes 64 KiB at once; the rest of a large output must still arrive
 * before the process exits.
 */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseAllDocuments, stringify } from 'yaml';

const cli = path.join(__dirname, '..', 'dist', 'cli', 'main.js');

function deployment(name: string, envVars: number) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'shop/app:1', env: Array.from({ length: envVars }, (_, i) => ({ name: `SETTING_${i}`, value: `value-${i}-${'x'.repeat(40)}` })) }] },
      },
    },
  };
}

describe('switchyard CLI output through a pipe', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sycli-pipe-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The command's stdout through a pipe whose reader starts late, and straight into a file. */
  function viaPipeAndFile(args: string[]) {
    const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const piped = path.join(dir, 'piped.out');
    const direct = path.join(dir, 'direct.out');
    // The reader waits before it reads, so the pipe is full when the CLI is done writing.
    const p = spawnSync('bash', ['-c', `set -o pipefail; '${process.execPath}' '${cli}' ${quoted} | (sleep 0.5; cat > '${piped}')`], { encoding: 'utf8' });
    const f = spawnSync('bash', ['-c', `'${process.execPath}' '${cli}' ${quoted} > '${direct}'`], { encoding: 'utf8' });
    return { pipeStatus: p.status, pipeErr: p.stderr, fileStatus: f.status, piped: fs.readFileSync(piped), direct: fs.readFileSync(direct) };
  }
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  test('inject of a 1 MB+ manifest arrives whole through a pipe, the same bytes as into a file', () => {
    const input = path.join(dir, 'big.yaml');
    fs.writeFileSync(input, [deployment('big', 12_000), deployment('small', 3)].map((d) => stringify(d)).join('---\n'));
    const r = viaPipeAndFile(['inject', '-f', input]);
    expect(r.fileStatus).toBe(0);
    expect(r.pipeStatus).toBe(0);
    expect(r.direct.length).toBeGreaterThan(1_000_000);
    expect(r.piped.length).toBe(r.direct.length);
    expect(sha(r.piped)).toBe(sha(r.direct));
    const docs = parseAllDocuments(r.piped.toString()).map((d) => d.toJS());
    expect(docs.map((d) => d.spec.template.spec.initContainers?.[0]?.name)).toEqual(['switchyard-proxy', 'switchyard-proxy']);
    expect(r.pipeErr).toContain('deployment/small: injected');
  });

  test('uninject output arrives whole through a pipe too', () => {
    const input = path.join(dir, 'injected.yaml');
    fs.writeFileSync(input, spawnSync(process.execPath, [cli, 'inject', '-f', '-'], { input: stringify(deployment('big', 12_000)), encoding: 'utf8', maxBuffer: 64 << 20 }).stdout);
    const r = viaPipeAndFile(['uninject', '-f', input]);
    expect(r.pipeStatus).toBe(0);
    expect(r.direct.length).toBeGreaterThan(1_000_000);
    expect(sha(r.piped)).toBe(sha(r.direct));
  });
});
