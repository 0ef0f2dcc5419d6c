import { X509Certificate } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseAllDocuments, stringify } from 'yaml';
import { run } from './main';

const golden = path.join(__dirname, '..', 'test', 'webhook', 'golden');

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await run(args, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe('switchyard CLI', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sycli-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const writeTemp = (name: string, text: string) => {
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };

  test('inject -f writes YAML and reports one line per object', async () => {
    const r = await cli(['inject', '-f', path.join(golden, 'deployment.yaml')]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(fs.readFileSync(path.join(golden, 'deployment.golden.yaml'), 'utf8'));
    expect(r.err.trim().split('\n')).toEqual([
      'deployment/api: injected (namespace-enabled: the namespace has switchyard.dev/injection=enabled)',
      'service/api: passed through (no pod template)',
      'cronjob/report: injected (namespace-enabled: the namespace has switchyard.dev/injection=enabled)',
    ]);
  });

  test('inject goes into the items of a List, as kubectl get -o yaml prints it', async () => {
    const list = path.join(dir, 'list.yaml');
    const deployment = parseAllDocuments(fs.readFileSync(path.join(golden, 'deployment.yaml'), 'utf8')).map((d) => d.toJS());
    fs.writeFileSync(list, stringify({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: deployment }));
    const r = await cli(['inject', '-f', list]);
    expect(r.code).toBe(0);
    const [out] = parseAllDocuments(r.out).map((d) => d.toJS());
    expect(out.kind).toBe('List');
    const golden_ = parseAllDocuments(fs.readFileSync(path.join(golden, 'deployment.golden.yaml'), 'utf8')).map((d) => d.toJS());
    expect(out.items).toEqual(golden_);
    expect(r.err.trim().split('\n')).toEqual([
      'deployment/api: injected (namespace-enabled: the namespace has switchyard.dev/injection=enabled)',
      'service/api: passed through (no pod template)',
      'cronjob/report: injected (namespace-enabled: the namespace has switchyard.dev/injection=enabled)',
    ]);
    const back = await cli(['uninject', '-f', writeTemp('list-injected.yaml', r.out)]);
    expect(parseAllDocuments(back.out).map((d) => d.toJS())[0].items).toEqual(deployment);
  });

  test('uninject reverses inject', async () => {
    const injected = path.join(dir, 'in.yaml');
    fs.writeFileSync(injected, (await cli(['inject', '-f', path.join(golden, 'multi-container.yaml')])).out);
    const r = await cli(['uninject', '--filename', injected]);
    const original = parseAllDocuments(fs.readFileSync(path.join(golden, 'multi-container.yaml'), 'utf8')).map((d) => d.toJS());
    expect(parseAllDocuments(r.out).map((d) => d.toJS())).toEqual(original);
  });

  test('a refused object makes the command fail and says why', async () => {
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    switchyard.dev/inject: "yes"\nspec:\n  containers: [{name: a, image: a}]\n');
    const r = await cli(['inject', '-f', bad]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('pod/p: REFUSED (invalid-annotation');
  });

  test('usage errors and bad YAML are one clear message each', async () => {
    expect(await cli(['inject'])).toMatchObject({ code: 2, err: expect.stringContaining('give the manifests with -f FILE') });
    expect(await cli(['frobnicate'])).toMatchObject({ code: 2, err: expect.stringContaining("unknown command 'frobnicate'") });
    const broken = path.join(dir, 'broken.yaml');
    fs.writeFileSync(broken, 'kind: Pod\n  bad: [indent\n');
    expect(await cli(['inject', '-f', broken])).toMatchObject({ code: 1, err: expect.stringContaining('invalid YAML') });
  });

  test('certs writes the bundle and a webhook configuration pointing at the URL', async () => {
    const out = path.join(dir, 'certs');
    const r = await cli(['certs', '--out', out, '--ip', '127.0.0.1', '--url', 'https://127.0.0.1:8443/mutate']);
    expect(r.code).toBe(0);
    for (const f of ['ca.crt', 'tls.crt', 'tls.key', 'secret.yaml', 'mutatingwebhookconfiguration.yaml']) expect(fs.existsSync(path.join(out, f))).toBe(true);
    const mwc = parseAllDocuments(fs.readFileSync(path.join(out, 'mutatingwebhookconfiguration.yaml'), 'utf8'))[0].toJS();
    expect(mwc.webhooks[0].clientConfig.url).toBe('https://127.0.0.1:8443/mutate');
    expect(fs.statSync(path.join(out, 'ca.key')).mode & 0o777).toBe(0o600);
  });

  test('certs --ca-from signs a new serving certificate with the same CA (leaf rotation keeps the caBundle)', async () => {
    const first = path.join(dir, 'first');
    const second = path.join(dir, 'second');
    expect((await cli(['certs', '--out', first, '--ip', '127.0.0.1'])).code).toBe(0);
    expect((await cli(['certs', '--out', second, '--ip', '127.0.0.1', '--ca-from', first])).code).toBe(0);
    const read = (d: string, f: string) => fs.readFileSync(path.join(d, f), 'utf8');
    expect(read(second, 'ca.crt')).toBe(read(first, 'ca.crt'));
    expect(read(second, 'tls.crt')).not.toBe(read(first, 'tls.crt'));
    const leaf = new X509Certificate(read(second, 'tls.crt'));
    expect(leaf.verify(new X509Certificate(read(first, 'ca.crt')).publicKey)).toBe(true);
    expect(await cli(['certs', '--out', second, '--ca-from', path.join(dir, 'nowhere')])).toMatchObject({ code: 2, err: expect.stringContaining('must hold ca.crt and ca.key') });
  });
});
