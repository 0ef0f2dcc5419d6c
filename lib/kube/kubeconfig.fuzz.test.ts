/**
 * kubeconfig files under generated input: every document gives a KubeConfig
 * or one KubeConfigError naming the file and what is wrong; nothing else
 * escapes (an agent that cannot start must say why in one line).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { KubeConfigError, kubeconfigFromFile } from './config';

const valid = {
  apiVersion: 'v1',
  kind: 'Config',
  'current-context': 'lab',
  clusters: [{ name: 'lab', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from('ca').toString('base64') } }],
  users: [{ name: 'agent', user: { token: 't' } }],
  contexts: [{ name: 'lab', context: { cluster: 'lab', user: 'agent' } }],
};

/** Every path into an object, to change one place of it. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== 'object' || v === null) return [prefix];
  const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return [prefix, ...keys.flatMap((k) => paths((v as Record<string, unknown>)[k as never], [...prefix, k]))];
}

describe('kubeconfig under generated input', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sykubeconfig-fuzz-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('2,000 documents: a KubeConfig or one KubeConfigError, never another exception', () => {
    const file = path.join(dir, 'kubeconfig');
    const replacement = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(null, 'not a url', 'https://', '::', 'ca.crt', '/nonexistent/ca.crt', 'lab', 'agent', '%%%'),
    );
    const mutated = fc.tuple(fc.array(fc.tuple(fc.nat(), replacement), { minLength: 1, maxLength: 3 })).map(([changes]) => {
      const doc = structuredClone(valid) as Record<string, unknown>;
      for (const [at, value] of changes) {
        const all = paths(doc).filter((p) => p.length > 0);
        const p = all[at % all.length];
        const parent = p.slice(0, -1).reduce((o: any, k) => o[k], doc);
        parent[p[p.length - 1]] = value;
      }
      return doc;
    });
    const text = fc.oneof(mutated.map((d) => stringify(d)), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }));
    let connected = 0;
    let refused = 0;
    fc.assert(
      fc.property(text, (t) => {
        fs.writeFileSync(file, t);
        try {
          kubeconfigFromFile(file);
          connected++;
        } catch (e) {
          expect(e).toBeInstanceOf(KubeConfigError);
          expect((e as Error).message).toContain(file);
          refused++;
        }
      }),
      { numRuns: 2000 },
    );
    expect(connected).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});
