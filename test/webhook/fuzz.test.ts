/**
 * Generated AdmissionReviews against the real HTTPS server: 10,000 per run,
 * seeded from the golden corpus and mutated (types swapped, fields dropped
 * or duplicated, unicode, huge lists, deep nesting). Whatever arrives:
 *  - the answer is a well-formed AdmissionReview carrying the request's uid,
 *    or a 4xx with a message; never a 5xx, never a hang;
 *  - a returned patch applies cleanly (RFC 6902) to the request's object;
 *  - a pod that validated before still validates after the patch;
 *  - a second review of the patched pod changes nothing (idempotency).
 * fast-check prints the seed and the smallest failing input on a failure.
 */
import * as fs from 'fs';
import * as https from 'https';
import * as path from 'path';
import fc from 'fast-check';
import { applyPatch, deepClone, Operation } from 'fast-json-patch';
import { parseAllDocuments } from 'yaml';
import { Pod } from 'kubernetes-models/v1';
import { ANNOTATIONS, NAMESPACE_INJECTION_LABEL, POD_INJECT_KEY, SIDECAR_ANNOTATIONS, SIDECAR_CONTAINER_NAME } from '../../api/contract';
import { startInProcessWebhook, InProcessWebhook } from '../../lab/src/webhook-inproc';

const RUNS = Number(process.env.SWITCHYARD_FUZZ_RUNS ?? 10_000);
const GOLDEN = path.join(__dirname, 'golden');

/** Every pod (or pod template) in the golden inputs: real shapes to mutate from. */
function corpus(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const f of fs.readdirSync(GOLDEN).filter((n) => n.endsWith('.yaml') && !n.endsWith('.golden.yaml'))) {
    for (const doc of parseAllDocuments(fs.readFileSync(path.join(GOLDEN, f), 'utf8')).map((d) => d.toJS())) {
      if (doc?.kind === 'Pod') out.push(doc);
      else if (doc?.kind === 'CronJob') out.push(doc.spec.jobTemplate.spec.template);
      else if (doc?.spec?.template) out.push(doc.spec.template);
    }
  }
  return out;
}

const ourKeys = [...Object.values(ANNOTATIONS), ...Object.values(SIDECAR_ANNOTATIONS), POD_INJECT_KEY];
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 }));
const annotationValue = fc.oneof(
  fc.constantFrom('true', 'false', 'enabled', 'disabled', 'native', 'classic', '15001', '0', '65536', '-1', '8080,9090', '10.0.0.0/8', '::/0', '1337', '100m', '1Gi', 'img:1', ''),
  text,
);
const stringMap = fc.dictionary(fc.oneof(fc.constantFrom(...ourKeys, 'app'), text), annotationValue, { maxKeys: 6 });
const container = fc.record(
  {
    name: fc.oneof(fc.constantFrom('app', 'worker', SIDECAR_CONTAINER_NAME), text),
    image: text,
    ports: fc.array(fc.record({ containerPort: fc.integer({ min: -5, max: 70_000 }) }), { maxLength: 3 }),
    restartPolicy: fc.constantFrom('Always', 'Never'),
  },
  { requiredKeys: ['name'] },
);
const generatedPod = fc.record(
  {
    metadata: fc.record(
      { name: text, generateName: text, namespace: fc.constantFrom('apps', 'plain', 'kube-system', 'switchyard-system', 'unknown'), labels: stringMap, annotations: stringMap },
      { requiredKeys: [] },
    ),
    spec: fc.record({ containers: fc.array(container, { maxLength: 4 }), initContainers: fc.array(container, { maxLength: 3 }), hostNetwork: fc.boolean() }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);

/** A change at one place of an object: a value of another type, or the field gone. */
const mutation = fc.record({ at: fc.nat(), value: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 3 })) });

function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== 'object' || v === null) return [prefix];
  const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return [prefix, ...keys.flatMap((k) => paths((v as Record<string, unknown>)[k as never], [...prefix, k]))];
}

function mutate(obj: Record<string, unknown>, muts: { at: number; value: unknown }[]): unknown {
  let root: unknown = deepClone(obj);
  for (const m of muts) {
    const all = paths(root);
    const p = all[m.at % all.length];
    if (p.length === 0) {
      root = m.value;
      continue;
    }
    const parent = p.slice(0, -1).reduce((o: any, k) => o[k], root);
    if (m.value === undefined && !Array.isArray(parent)) delete parent[p[p.length - 1]];
    else parent[p[p.length - 1]] = m.value ?? null;
  }
  return root;
}

const deep = (n: number): unknown => (n === 0 ? 'bottom' : { nested: deep(n - 1) });
const huge = [
  { spec: { containers: Array.from({ length: 2000 }, (_, i) => ({ name: `c${i}` })) } },
  { metadata: { annotations: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, 'v'])) }, spec: { containers: [{ name: 'a' }] } },
  { metadata: { labels: { x: 'y' } }, spec: { containers: [{ name: 'a', env: Array.from({ length: 5000 }, (_, i) => ({ name: `E${i}`, value: 'v' })) }] }, extra: deep(200) },
];

/** The request body as text: sometimes with a key written twice (JSON allows it; the last one wins). */
const body = (uid: string, namespace: unknown, object: unknown, duplicate?: unknown) => {
  const review = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace, object } });
  if (duplicate === undefined || typeof object !== 'object' || object === null || JSON.stringify(object) === '{}') return review;
  const marker = '"object":{';
  const at = review.indexOf(marker) + marker.length;
  return `${review.slice(0, at)}"spec":${JSON.stringify(duplicate)},${review.slice(at)}`;
};

describe('webhook under generated AdmissionReviews', () => {
  let webhook: InProcessWebhook;
  let agent: https.Agent;
  let port: number;
  const labels: Record<string, Record<string, string>> = { apps: { [NAMESPACE_INJECTION_LABEL]: 'enabled' }, plain: {}, 'kube-system': {} };

  beforeAll(async () => {
    webhook = await startInProcessWebhook({ namespaceLabels: (ns) => labels[ns] });
    port = webhook.port;
    agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: webhook.bundle.caCert });
  });

  afterAll(async () => {
    agent?.destroy();
    await webhook?.close();
  });

  const post = (payload: string): Promise<{ status: number; body: any }> =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, timeout: 10_000, headers: { 'content-type': 'application/json' } }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (data += c)).on('end', () => {
          try {
            resolve({ status: res.statusCode!, body: JSON.parse(data) });
          } catch {
            reject(new Error(`HTTP ${res.statusCode} with a body that is not JSON: ${data.slice(0, 200)}`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('the webhook did not answer within 10 s')));
      req.on('error', reject);
      req.end(payload);
    });

  const validates = (pod: unknown) => {
    try {
      new Pod(pod as never).validate();
      return true;
    } catch {
      return false;
    }
  };

  test(`${RUNS} generated reviews: well-formed answers, patches that apply, valid and idempotent results`, async () => {
    const seeds = corpus();
    expect(seeds.length).toBeGreaterThan(5);
    const object = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { maxLength: 3 })).map(([p, m]) => mutate(p, m)) },
      { weight: 3, arbitrary: generatedPod },
      { weight: 2, arbitrary: fc.tuple(generatedPod, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([p, m]) => mutate(p as Record<string, unknown>, m)) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
      { weight: 1, arbitrary: fc.constantFrom(...huge) },
    );
    const counts = { injected: 0, allowed: 0, denied: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.uuid(),
        object,
        fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 })),
        fc.constantFrom('apps', 'plain', 'unknown', 7, undefined),
        async (uid, obj, duplicateSpec, namespace) => {
          const r = await post(body(uid, namespace, obj, duplicateSpec));
          if (r.status !== 200) {
            expect(r.status).toBeGreaterThanOrEqual(400);
            expect(r.status).toBeLessThan(500);
            expect(typeof r.body.error).toBe('string');
            expect(r.body.error.length).toBeGreaterThan(0);
            counts.refused++;
            return;
          }
          expect(r.body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid } });
          expect(typeof r.body.response.allowed).toBe('boolean');
          if (!r.body.response.allowed) {
            expect(r.body.response.status.message.length).toBeGreaterThan(0);
            counts.denied++;
            return;
          }
          if (!r.body.response.patch) {
            counts.allowed++;
            return;
          }
          counts.injected++;
          // What the server saw: the last of two duplicate keys wins, as in JSON.parse.
          const seen = JSON.parse(body(uid, namespace, obj, duplicateSpec)).request.object;
          const ops = JSON.parse(Buffer.from(r.body.response.patch, 'base64').toString()) as Operation[];
          const patched = applyPatch(deepClone(seen), ops, true, false).newDocument;
          if (validates(seen)) expect(validates(patched)).toBe(true);
          const again = await post(body(`${uid}-again`, namespace, patched));
          expect(again.status).toBe(200);
          expect(again.body.response).toMatchObject({ uid: `${uid}-again`, allowed: true });
          expect(again.body.response.patch).toBeUndefined();
        },
      ),
      { numRuns: RUNS, endOnFailure: true },
    );
    process.stdout.write(`webhook fuzz: ${RUNS} reviews: ${counts.injected} injected, ${counts.allowed} allowed unchanged, ${counts.denied} denied, ${counts.refused} refused with 4xx\n`);
    // Every kind of answer was reached, so the generator is not stuck on one path.
    for (const n of Object.values(counts)) expect(n).toBeGreaterThan(0);
  }, 600_000);
});
