/**
 * The shared Kubernetes layer: kubeconfig loading (client-node's loader,
 * checked once), the credentials each request carries (certificates,
 * tokens, exec plugins, the service account), and the reflector's
 * list/watch loop against a server speaking the real wire protocol
 * (resourceVersion, paging, bookmarks, 410 Gone).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { V1Pod } from '@kubernetes/client-node';
import { FakeApiServer } from '../../lab/src/fake-apiserver';
import { KubeClient, withCredentials } from './client';
import { KubeConfigError, kubeconfigForServer, kubeconfigFromFile, kubeconfigInCluster } from './config';
import { Reflector } from './reflector';

type SlimPod = { metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> }; status?: { podIP?: string } };
const slimPod = (p: V1Pod): SlimPod => ({
  metadata: { name: p.metadata?.name, namespace: p.metadata?.namespace, resourceVersion: p.metadata?.resourceVersion, labels: p.metadata?.labels },
  status: { podIP: p.status?.podIP },
});
const podKey = (p: SlimPod) => `${p.metadata?.namespace}/${p.metadata?.name}`;

function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => (cond() ? resolve() : Date.now() > deadline ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(tick, 10));
    tick();
  });
}

/** What a request made with this config would carry. */
async function applied(kc: ReturnType<typeof kubeconfigFromFile>) {
  const opts = (await withCredentials(kc, {})) as { headers?: Record<string, string>; ca?: Buffer; cert?: Buffer; key?: Buffer };
  return { ca: opts.ca?.toString(), cert: opts.cert?.toString(), key: opts.key?.toString(), authorization: opts.headers?.Authorization };
}

describe('kubeconfig', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-kc-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string, mode = 0o644) => {
    fs.writeFileSync(path.join(dir, name), text, { mode });
    return path.join(dir, name);
  };

  test('reads the current context: server, inline CA, client cert files relative to the kubeconfig, token', async () => {
    write('client.crt', 'CERT');
    write('client.key', 'KEY');
    const f = write(
      'kc',
      `apiVersion: v1
kind: Config
current-context: b
clusters:
- {name: one, cluster: {server: "https://10.0.0.1:6443"}}
- {name: two, cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: ${Buffer.from('CA').toString('base64')}}}
users:
- {name: u, user: {client-certificate: client.crt, client-key: client.key, token: abc}}
contexts:
- {name: a, context: {cluster: one, user: u}}
- {name: b, context: {cluster: two, user: u}}
`,
    );
    const kc = kubeconfigFromFile(f);
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(await applied(kc)).toEqual({ ca: 'CA', cert: 'CERT', key: 'KEY', authorization: 'Bearer abc' });
  });

  test.each([
    ['no current-context', 'clusters: []\n', /no current-context/],
    ['a context that does not exist', 'current-context: x\ncontexts: []\n', /context 'x' is not defined/],
    ['a cluster that does not exist', 'current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: []\nusers: [{name: u, user: {}}]\n', /names cluster 'c', which is not defined/],
    ['a cluster without server', 'current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n', /cannot read the kubeconfig|has no server/],
    ['a server that is not a URL', 'current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: "10.0.0.1"}}]\n', /not a URL such as https/],
    ['a CA file that is not there', 'current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: "https://h", certificate-authority: nope.crt}}]\n', /cannot read the certificate-authority file .*nope.crt/],
    ['not YAML', '{{{', /cannot read the kubeconfig/],
  ])('%s is one clear error naming the file', (_n, text, re) => {
    const f = write('kc', text);
    expect(() => kubeconfigFromFile(f)).toThrow(KubeConfigError);
    expect(() => kubeconfigFromFile(f)).toThrow(re);
    expect(() => kubeconfigFromFile(f)).toThrow(f);
  });

  test('in-cluster: the service host (IPv6 in brackets), its CA, and the token file (its newline trimmed: Node refuses it in a header)', async () => {
    const env = { ...process.env };
    try {
      process.env.KUBERNETES_SERVICE_HOST = 'fd00::1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      write('token', 'one\n');
      write('ca.crt', 'CA');
      const kc = kubeconfigInCluster(dir);
      expect(new URL(kc.getCurrentCluster()!.server).host).toBe('[fd00::1]');
      expect(await applied(kc)).toMatchObject({ ca: 'CA', authorization: 'Bearer one' });
      expect(process.env.TOKEN_FILE_PATH).toBe(env.TOKEN_FILE_PATH); // the loader leaves the environment as it was
      delete process.env.KUBERNETES_SERVICE_HOST;
      expect(() => kubeconfigInCluster(dir)).toThrow(/KUBERNETES_SERVICE_HOST/);
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      fs.rmSync(path.join(dir, 'token'));
      expect(() => kubeconfigInCluster(dir)).toThrow(/no service-account token/);
    } finally {
      process.env = env;
    }
  });

  test('an exec credential plugin (as EKS and GKE use) supplies the token the API server sees', async () => {
    const api = new FakeApiServer('/api/v1/pods', 'PodList');
    const url = await api.start();
    const plugin = write(
      'get-token',
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec-plugin"}}'\n`,
      0o755,
    );
    const f = write(
      'kc',
      `apiVersion: v1
kind: Config
current-context: c
clusters: [{name: k, cluster: {server: "${url}"}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: "${plugin}", interactiveMode: Never}}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
`,
    );
    const client = new KubeClient(kubeconfigFromFile(f));
    try {
      expect((await client.getJson<{ kind: string }>('/api/v1/pods')).kind).toBe('PodList');
      expect(api.authorizations.at(-1)).toBe('Bearer from-exec-plugin');
    } finally {
      client.close();
      await api.stop();
    }
  });
});

describe('reflector', () => {
  let api: FakeApiServer;
  let client: KubeClient;
  let r: Reflector<SlimPod>;
  const errors: Error[] = [];
  const events: string[] = [];
  const pod = (name: string, node = 'n1', extra: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'apps', uid: `uid-${name}`, labels: { app: name }, managedFields: [{ big: 'x'.repeat(1000) }] },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'i', env: [{ name: 'E', value: 'v' }] }] },
    status: { phase: 'Running', podIP: '10.0.0.1' },
    ...extra,
  });

  beforeEach(async () => {
    api = new FakeApiServer('/api/v1/pods', 'PodList');
    const url = await api.start();
    client = new KubeClient(kubeconfigForServer(url));
    events.length = 0;
    errors.length = 0;
    r = new Reflector<SlimPod>({
      client,
      path: '/api/v1/pods',
      params: { fieldSelector: 'spec.nodeName=n1' },
      slim: slimPod,
      key: podKey,
      resourceVersion: (p) => p.metadata?.resourceVersion,
      onError: (e) => errors.push(e),
      pageSize: 2,
    });
    r.on('upsert', (p, old) => events.push(`${old ? 'update' : 'add'} ${p.metadata?.name}`));
    r.on('delete', (p) => events.push(`delete ${p.metadata?.name}`));
  });

  afterEach(async () => {
    r.stop();
    client.close();
    await api.stop();
  });

  test('lists in pages, keeps slim objects of its node only, then follows the watch', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) api.upsert(pod(n));
    api.upsert(pod('elsewhere', 'n2'));
    await r.start();
    expect(r.all().map((p) => p.metadata?.name).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(api.requests.filter((q) => q.includes('continue='))).toHaveLength(2); // 5 items, pages of 2
    expect(JSON.stringify(r.get('apps/a'))).not.toContain('managedFields');
    expect(JSON.stringify(r.get('apps/a'))).not.toContain('env');
    expect(r.get('apps/a')?.status?.podIP).toBe('10.0.0.1');

    api.upsert(pod('f'));
    api.upsert({ ...pod('a'), metadata: { ...pod('a').metadata, labels: { app: 'changed' } } });
    api.remove('b');
    await waitFor(() => events.includes('delete b'), 'the watch to deliver the delete');
    expect(events.slice(5)).toEqual(['add f', 'update a', 'delete b']);
    expect(r.get('apps/a')?.metadata?.labels).toEqual({ app: 'changed' });
    const watch = api.requests.find((q) => q.includes('watch=1'))!;
    expect(watch).toContain('allowWatchBookmarks=true');
    expect(watch).toContain('fieldSelector=spec.nodeName%3Dn1');
  });

  test('a dropped watch resumes from the last resourceVersion, bookmarks included, without a relist', async () => {
    api.upsert(pod('a'));
    await r.start();
    api.upsert(pod('b'));
    await waitFor(() => events.includes('add b'), 'b');
    api.bookmark();
    const watchesBefore = api.requests.filter((q) => q.includes('watch=1')).length;
    api.dropWatches();
    api.upsert(pod('c')); // happens while no watch is open
    await waitFor(() => events.includes('add c'), 'c after the re-watch');
    expect(api.requests.filter((q) => q.includes('watch=1')).length).toBeGreaterThan(watchesBefore);
    expect(r.lists).toBe(1);
    expect(events.filter((e) => e === 'add b')).toHaveLength(1); // not replayed
  });

  test('410 Gone relists, and objects deleted while the watch was gone are reported deleted', async () => {
    api.upsert(pod('a'));
    api.upsert(pod('b'));
    await r.start();
    api.oldestWatchable = Number.MAX_SAFE_INTEGER; // every resourceVersion is now too old
    api.dropWatches();
    api.remove('a');
    api.upsert(pod('c'));
    await waitFor(() => r.lists >= 2 && events.includes('delete a') && events.includes('add c'), 'relist');
    expect(r.all().map((p) => p.metadata?.name).sort()).toEqual(['b', 'c']);
    expect(events.filter((e) => e === 'add b')).toHaveLength(1); // unchanged objects raise no event
  });

  test('an API server that is down at start is retried until it answers', async () => {
    const url = await (async () => {
      const s = new FakeApiServer('/api/v1/pods', 'PodList');
      const u = await s.start();
      await s.stop();
      return u;
    })();
    const down = new KubeClient(kubeconfigForServer(url));
    const r2 = new Reflector<SlimPod>({ client: down, path: '/api/v1/pods', slim: slimPod, key: podKey, resourceVersion: () => '', onError: (e) => errors.push(e) });
    const started = r2.start();
    await waitFor(() => errors.length >= 2, 'two failed attempts');
    expect(errors[0].message).toMatch(/ECONNREFUSED/);
    r2.stop();
    await started;
    expect(r2.synced).toBe(false);
    down.close();
  });
});
