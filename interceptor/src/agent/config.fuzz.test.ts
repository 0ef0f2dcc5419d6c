/**
 * The agent's configuration (the switchyard-config ConfigMap, as a file)
 * under generated input: every document either loads or is refused with one
 * ConfigError that names the problems; nothing else escapes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ConfigError } from '../../../api/interception';
import { loadAgentConfig } from './config';

const valid = { nodeName: 'n1', cgroupPath: '/sys/fs/cgroup/kubepods', failurePolicy: 'fail-closed', metricsPort: 15090, podWaitMs: 5000, mapSizes: { sy_pods: 4096 }, sockmapAcceleration: true };

describe('agent configuration under generated input', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syconfig-fuzz-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('2,000 documents: a configuration or one ConfigError, never another exception', () => {
    const file = path.join(dir, 'config.yaml');
    const value = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, '', 0, -1, 1e30, true, [], {}));
    const mutated = fc
      .tuple(fc.subarray(Object.keys(valid)), fc.dictionary(fc.constantFrom(...Object.keys(valid), 'mapSizes', 'colour', 'pinRoot', 'allowRootCgroup'), value, { maxKeys: 3 }))
      .map(([keep, over]) => ({ ...Object.fromEntries(keep.map((k) => [k, valid[k as keyof typeof valid]])), ...over }));
    const text = fc.oneof(
      mutated.map((o) => stringify(o)),
      mutated.map((o) => JSON.stringify(o)),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 200 }),
      fc.constantFrom('', '---\n---\n', 'nodeName: [', '!!binary x', 'a: &a [*a]', '\uFEFF{}'),
    );
    let loaded = 0;
    let refused = 0;
    fc.assert(
      fc.property(text, (t) => {
        fs.writeFileSync(file, t);
        try {
          loadAgentConfig(file);
          loaded++;
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          expect((e as ConfigError).problems.length).toBeGreaterThan(0);
          refused++;
        }
      }),
      { numRuns: 2000 },
    );
    expect(loaded).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});
