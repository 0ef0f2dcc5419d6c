/**
 * The admission server over real HTTPS with generated certificates: bad
 * input, the TLS floor, certificate rotation under a stream of requests, and
 * what an operator sees in /metrics and the log.
 */
import * as fs from 'fs';
import * as https from 'https';
import * as http from 'http';
import * as net from 'net';
import { applyPatch } from 'fast-json-patch';
import * as path from 'path';
import { X509Certificate } from 'crypto';
import { CertificateBundle, generateCertificates } from '../../certs/src/generate';
import { startInProcessWebhook, InProcessWebhook } from '../../lab/src/webhook-inproc';
import { DEFAULT_CONFIG } from '../../webhook/src/config';
import { NAMESPACE_INJECTION_LABEL, POD_INJECT_KEY } from '../../api/contract';
import { WebhookServer } from '../../webhook/src/server';
import { mutatingWebhookConfiguration } from '../../webhook/src/webhook-config';

const labels: Record<string, Record<string, string>> = {
  apps: { [NAMESPACE_INJECTION_LABEL]: 'enabled' },
  plain: {},
};

interface Reply {
  status: number;
  body: any;
  fingerprint?: string;
}

describe('webhook server over HTTPS', () => {
  let dir: string;
  let bundle: CertificateBundle;
  let server: WebhookServer;
  let port: number;
  let healthPort: number;
  let ready = false;
  const logs: string[] = [];

  const post = (body: string | Buffer, contentType = 'application/json', extra: https.RequestOptions = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca: bundle.caCert, agent: false, headers: { 'content-type': contentType }, ...extra },
        (res) => {
          const fingerprint = (res.socket as import('tls').TLSSocket).getPeerCertificate?.().fingerprint256;
          let data = '';
          res.on('data', (c) => (data += c)).on('end', () => {
            let parsed: unknown = data;
            try {
              parsed = JSON.parse(data);
            } catch {
              /* keep text */
            }
            resolve({ status: res.statusCode!, body: parsed, fingerprint });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const reviewOf = (object: unknown, over: Record<string, unknown> = {}) =>
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'uid-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'apps', object, ...over },
    });
  const pod = (meta: Record<string, unknown> = {}) => ({ metadata: { name: 'web', ...meta }, spec: { containers: [{ name: 'app', image: 'a' }] } });

  const get = (p: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: healthPort, path: p }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode!, text }));
      }).on('error', reject),
    );

  let webhook: InProcessWebhook;
  beforeAll(async () => {
    webhook = await startInProcessWebhook({
      namespaceLabels: (ns) => labels[ns],
      log: (level, msg, fields) => logs.push(JSON.stringify({ level, msg, ...fields })),
      bodyLimit: '256kb',
      ready: () => ready,
      handshakeTimeoutMs: 500,
    });
    ({ server, port, healthPort, bundle, dir } = webhook);
  });

  afterAll(async () => {
    await webhook?.close();
  });

  test('a pod in an enabled namespace gets a base64 JSON patch; apiVersion, kind and uid are echoed', async () => {
    const r = await post(reviewOf(pod()));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-1', allowed: true, patchType: 'JSONPatch' } });
    const ops = JSON.parse(Buffer.from(r.body.response.patch, 'base64').toString());
    expect(ops[0]).toMatchObject({ op: 'add', path: '/spec/initContainers' });
  });

  test('a skipped pod is allowed with no patch at all', async () => {
    const r = await post(reviewOf(pod(), { namespace: 'plain' }));
    expect(r.body.response).toEqual({ uid: 'uid-1', allowed: true });
  });

  test('metadata.namespace wins, request.namespace fills in when it is empty', async () => {
    expect((await post(reviewOf(pod({ namespace: 'plain' }), { namespace: 'apps' }))).body.response.patch).toBeUndefined();
    expect((await post(reviewOf(pod({ namespace: '' }), { namespace: 'apps' }))).body.response.patch).toBeDefined();
  });

  test('an invalid annotation is denied with the uid, a code and a message naming the key', async () => {
    const r = await post(reviewOf(pod({ annotations: { [POD_INJECT_KEY]: 'maybe' } })));
    expect(r.status).toBe(200);
    expect(r.body.response).toMatchObject({ uid: 'uid-1', allowed: false, status: { code: 400 } });
    expect(r.body.response.status.message).toContain(`${POD_INJECT_KEY}='maybe' must be "true" or "false"`);
    expect(r.body.response.patch).toBeUndefined();
  });

  test('non-Pod kinds and non-CREATE operations are allowed unchanged', async () => {
    const svc = await post(reviewOf({ metadata: { name: 's' } }, { kind: { group: '', version: 'v1', kind: 'Service' } }));
    expect(svc.body.response).toEqual({ uid: 'uid-1', allowed: true });
    const upd = await post(reviewOf(pod(), { operation: 'UPDATE' }));
    expect(upd.body.response).toEqual({ uid: 'uid-1', allowed: true });
  });

  test('dryRun requests are answered the same way, with no side effects to skip', async () => {
    const r = await post(reviewOf(pod(), { dryRun: true }));
    expect(r.body.response.patch).toBeDefined();
    expect(logs.some((l) => JSON.parse(l).dry_run === true)).toBe(true);
  });

  test.each([
    ['not JSON content type', () => post('hello', 'text/plain'), 415, /content type must be application\/json/],
    ['malformed JSON', () => post('{"apiVersion": ', 'application/json'), 400, /malformed JSON/],
    ['not an AdmissionReview', () => post(JSON.stringify({ kind: 'Pod' })), 400, /kind is "Pod", expected "AdmissionReview"/],
    ['wrong version', () => post(JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: { uid: 'x' } })), 400, /expected "admission.k8s.io\/v1"/],
    ['no uid', () => post(JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: {} })), 400, /request.uid is missing/],
    ['a Pod request with no object', () => post(reviewOf(undefined)), 400, /request.object is missing/],
    ['a JSON array', () => post('[1,2,3]'), 400, /not a JSON object/],
    ['too large', () => post(reviewOf(pod({ annotations: { big: 'x'.repeat(300_000) } }))), 413, /exceeds the limit of 256kb/],
  ])('%s is refused with one clear error', async (_, send, status, message) => {
    const r = await send();
    expect(r.status).toBe(status);
    expect(r.body.error).toMatch(message);
  });

  test('no garbage crashes the process', async () => {
    const junk = ['null', '0', '"s"', '{}', '{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":"nope"}}}}', Buffer.from([0xff, 0xfe, 0x00])];
    for (const body of junk) expect((await post(body)).status).toBeLessThan(500);
    expect((await post(reviewOf(pod()))).status).toBe(200);
  });

  // W1 and W2: shapes a typed decode would refuse gave a 500, or a patch that cannot apply.
  test.each([
    ['containers is an object', { spec: { containers: {} } }, /request.object.spec.containers must be a list of containers, not an object/],
    ['a null container', { spec: { containers: [null] } }, /request.object.spec.containers\[0\] must be a container object, not null/],
    ['initContainers is a number', { spec: { containers: [{ name: 'a' }], initContainers: 3 } }, /spec.initContainers must be a list of containers, not a number/],
    ['no spec', { metadata: { namespace: 'apps' } }, /request.object.spec is missing; a Pod needs spec.containers/],
    ['labels is a string', { ...pod(), metadata: { labels: 'x' } }, /request.object.metadata.labels must be a map of strings, not a string/],
    ['annotations is a list', { ...pod(), metadata: { annotations: ['x'] } }, /metadata.annotations must be a map of strings, not a list/],
    ['an annotation is a number', { ...pod(), metadata: { annotations: { a: 1 } } }, /metadata.annotations\['a'\] must be a string, not a number/],
    ['metadata is a number', { ...pod(), metadata: 7 }, /request.object.metadata must be an object, not a number/],
    ['a container without a name', { spec: { containers: [{ image: 'a' }] } }, /spec.containers\[0\].name must be a string/],
  ])('a Pod whose %s is refused with 400 and the field', async (_, object, message) => {
    const r = await post(reviewOf(object));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(message);
  });

  test('every patch returned applies to the request\'s object (RFC 6902), whatever optional parts are missing', async () => {
    const shapes = [
      pod(),
      { spec: { containers: [{ name: 'app' }] } },
      { metadata: {}, spec: { containers: [{ name: 'app' }] } },
      { metadata: { labels: null, annotations: null }, spec: { containers: [{ name: 'app' }], initContainers: [] } },
      { metadata: { annotations: { [POD_INJECT_KEY]: 'true' } }, spec: {} },
      pod({ annotations: { 'switchyard.dev/sidecar-mode': 'classic' } }),
    ];
    for (const object of shapes) {
      const r = await post(reviewOf(object));
      expect(r.status).toBe(200);
      const patch = JSON.parse(Buffer.from(r.body.response.patch, 'base64').toString());
      const patched = applyPatch(structuredClone(object), patch, true, false).newDocument as any;
      expect(patched.metadata.labels['switchyard.dev/managed']).toBe('true');
      expect([...(patched.spec.initContainers ?? []), ...(patched.spec.containers ?? [])].map((c: { name: string }) => c.name)).toContain('switchyard-proxy');
    }
  });

  test('a connection that never starts TLS is closed after the handshake timeout, not held for minutes', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const guard = new Promise<'held'>((resolve) => setTimeout(() => resolve('held'), 4_000).unref());
    expect(await Promise.race([closed.then(() => 'closed' as const), guard])).toBe('closed');
  });

  test('TLS below 1.2 is refused', async () => {
    await expect(post(reviewOf(pod()), 'application/json', { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })).rejects.toThrow();
  });

  test('a rotated certificate is served to new connections with no failed request', async () => {
    const rotated = await generateCertificates({ service: 'switchyard-webhook', namespace: 'switchyard-system', ipAddresses: ['127.0.0.1'], ca: { cert: bundle.caCert, key: bundle.caKey } });
    const before = new X509Certificate(bundle.cert).fingerprint256;
    const after = new X509Certificate(rotated.cert).fingerprint256;
    const seen = new Set<string>();
    let failures = 0;
    let rotatedAt = -1;
    for (let i = 0; i < 120; i++) {
      if (i === 40) {
        // Secret volumes swap both files; write the new pair, then the server notices.
        fs.writeFileSync(path.join(dir, 'tls.key.new'), rotated.key);
        fs.writeFileSync(path.join(dir, 'tls.crt.new'), rotated.cert);
        fs.renameSync(path.join(dir, 'tls.key.new'), path.join(dir, 'tls.key'));
        fs.renameSync(path.join(dir, 'tls.crt.new'), path.join(dir, 'tls.crt'));
        expect(server.reloadCertificates()).toBe(true);
        rotatedAt = i;
      }
      const r = await post(reviewOf(pod())).catch(() => null);
      if (!r || r.status !== 200) failures++;
      else if (r.fingerprint) seen.add(`${i >= rotatedAt && rotatedAt >= 0 ? 'after' : 'before'}:${r.fingerprint}`);
    }
    expect(failures).toBe(0);
    expect(seen).toEqual(new Set([`before:${before}`, `after:${after}`]));
    expect(server.reloadCertificates()).toBe(false); // unchanged files: nothing to do
  });

  test('health, readiness and metrics on the plain port', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(503);
    ready = true;
    expect((await get('/readyz')).status).toBe(200);
    const m = (await get('/metrics')).text;
    expect(m).toMatch(/switchyard_webhook_requests_total\{decision="inject",reason="namespace-enabled"\} \d+/);
    expect(m).toMatch(/switchyard_webhook_requests_total\{decision="deny",reason="invalid-annotation"\} 1/);
    expect(m).toMatch(/switchyard_webhook_requests_total\{decision="error",reason="too-large"\} 1/);
    expect(m).toContain('switchyard_webhook_request_duration_seconds_bucket');
    expect(m).toMatch(/switchyard_webhook_certificate_reloads_total\{result="ok"\} 1/);
  });

  test('one log line per decision says who, what and why', async () => {
    logs.length = 0;
    await post(reviewOf({ metadata: { generateName: 'web-7d9f-', ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d9f' }] }, spec: { containers: [{ name: 'a' }] } }));
    expect(logs).toHaveLength(1);
    expect(JSON.parse(logs[0])).toMatchObject({
      msg: 'pod injected',
      namespace: 'apps',
      pod: 'web-7d9f-*',
      owner: 'ReplicaSet/web-7d9f',
      decision: 'inject',
      reason: 'namespace-enabled',
      detail: 'the namespace has switchyard.dev/injection=enabled',
    });
    expect(Number(JSON.parse(logs[0]).duration_ms)).toBeGreaterThanOrEqual(0);
  });

  test('the webhook configuration is generated from the same rules', () => {
    const mwc = mutatingWebhookConfiguration(DEFAULT_CONFIG, { endpoint: { url: `https://127.0.0.1:${port}/mutate` }, caBundlePem: bundle.caCert }) as any;
    expect(mwc.webhooks).toHaveLength(2);
    for (const w of mwc.webhooks) {
      expect(w).toMatchObject({ sideEffects: 'None', failurePolicy: 'Fail', reinvocationPolicy: 'IfNeeded', admissionReviewVersions: ['v1'], timeoutSeconds: 10 });
      expect(w.namespaceSelector.matchExpressions).toContainEqual({
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: ['kube-system', 'kube-public', 'kube-node-lease', 'switchyard-system'],
      });
      expect(Buffer.from(w.clientConfig.caBundle, 'base64').toString()).toBe(bundle.caCert);
    }
  });
});
