/**
 * Dependencies point one way. Every relative import of every TypeScript
 * source file is read and checked against the layers below; a forbidden
 * edge fails with the file, the import and the rule it breaks.
 *
 *   api       the contract: labels, annotations, interception settings, addresses
 *   lib       shared helpers (logging)                          -> api
 *   native    the libbpf addon's TypeScript face                -> api, lib
 *   certs     webhook certificates                              -> api, lib
 *   webhook   the injector and its server                       -> api, lib
 *   interceptor  the node agent and its dataplane               -> api, lib, native
 *   sidecar   the reference proxy                               -> api, lib, native
 *   cli       the operator's command line (on top)              -> all of the above
 *   images    the image build (a build tool over compiled files) -> nothing
 *   lab, bench, test  leaves: nothing imports them (bench and test may use lab)
 *
 * Test files (*.test.ts) are leaves wherever they live.
 */
import * as fs from 'fs';
import * as path from 'path';

const root = path.join(__dirname, '..');
const LAYERS: Record<string, string[]> = {
  api: [],
  lib: ['api'],
  native: ['api', 'lib'],
  certs: ['api', 'lib'],
  webhook: ['api', 'lib'],
  interceptor: ['api', 'lib', 'native'],
  sidecar: ['api', 'lib', 'native'],
  cli: ['api', 'lib', 'native', 'certs', 'webhook', 'interceptor', 'sidecar'],
  images: [],
  lab: ['api', 'lib', 'native', 'certs', 'webhook', 'interceptor', 'sidecar', 'cli', 'images'],
  bench: ['api', 'lib', 'native', 'certs', 'webhook', 'interceptor', 'sidecar', 'cli', 'images', 'lab'],
  test: ['api', 'lib', 'native', 'certs', 'webhook', 'interceptor', 'sidecar', 'cli', 'images', 'lab'],
};

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The top-level folder of every relative import in a file. */
function importedFolders(file: string): { spec: string; folder: string }[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import|require\()\s*'(\.[^']+)'/g)].map((m) => m[1]);
  return specs.map((spec) => ({ spec, folder: path.relative(root, path.resolve(path.dirname(file), spec)).split(path.sep)[0] }));
}

function violations(files: string[]): string[] {
  const out: string[] = [];
  for (const file of files) {
    const rel = path.relative(root, file);
    const own = rel.split(path.sep)[0];
    const allowed = LAYERS[own];
    if (!allowed || file.endsWith('.test.ts')) continue;
    for (const { spec, folder } of importedFolders(file)) {
      if (folder === own || !(folder in LAYERS)) continue;
      if (!allowed.includes(folder)) out.push(`${rel} imports '${spec}': ${own} may import only ${allowed.join(', ') || 'nothing outside api'}`);
    }
  }
  return out;
}

describe('layers: dependencies point one way', () => {
  const files = Object.keys(LAYERS).flatMap((d) => (fs.existsSync(path.join(root, d)) ? sources(path.join(root, d)) : []));

  test('every source file imports only the layers below it', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(violations(files)).toEqual([]);
  });

  test('an edge added back is caught (webhook -> interceptor, interceptor -> webhook, a server -> cli, a component -> lab)', () => {
    const dir = fs.mkdtempSync(path.join(root, 'webhook', 'src', '.layers-'));
    const probes = [
      [path.join(dir, 'a.ts'), "import { Dataplane } from '../../../interceptor/src/dataplane/dataplane';\n"],
      [path.join(root, 'interceptor', 'src', `.layers-probe-${process.pid}.ts`), "import { review } from '../../webhook/src/admission';\n"],
      [path.join(dir, 'b.ts'), "import { run } from '../../../cli/main';\n"],
      [path.join(root, 'interceptor', 'src', `.layers-probe2-${process.pid}.ts`), "import { NetLab } from '../../lab/src/netlab';\n"],
    ] as const;
    try {
      for (const [f, text] of probes) fs.writeFileSync(f, text);
      const found = violations(probes.map(([f]) => f));
      expect(found).toHaveLength(4);
      expect(found[0]).toMatch(/webhook may import only api, lib/);
      expect(found[1]).toMatch(/interceptor may import only api, lib, native/);
    } finally {
      for (const [f] of probes) fs.rmSync(f, { force: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
