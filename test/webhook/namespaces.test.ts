/**
 * The namespace label cache: the shared reflector (list, then watch) against
 * an API server speaking the list/watch wire protocol. No API call happens
 * per admission request.
 */
import { KubeClient } from '../../lib/kube/client';
import { kubeconfigForServer } from '../../lib/kube/config';
import { NamespaceCache } from '../../webhook/src/namespaces';
import { FakeApiServer } from '../../lab/src/fake-apiserver';
import { waitUntil } from '../../lab/src/proc';

describe('namespace cache', () => {
  let api: FakeApiServer;
  let cache: NamespaceCache;
  let client: KubeClient;

  beforeAll(async () => {
    api = new FakeApiServer('/api/v1/namespaces', 'NamespaceList');
    api.upsert({ metadata: { name: 'apps', labels: { 'switchyard.dev/injection': 'enabled' } } });
    api.upsert({ metadata: { name: 'plain' } });
    const url = await api.start();
    client = new KubeClient(kubeconfigForServer(url));
    cache = new NamespaceCache(client, () => undefined);
    await cache.start();
  });
  afterAll(async () => {
    cache?.stop();
    client?.close();
    await api?.stop();
  });

  test('is synced with the initial list', () => {
    expect(cache.synced).toBe(true);
    expect(cache.labels('apps')).toEqual({ 'switchyard.dev/injection': 'enabled' });
    expect(cache.labels('plain')).toEqual({});
    expect(cache.labels('nope')).toBeUndefined();
  });

  test('follows label changes, new namespaces and deletions from the watch', async () => {
    await waitUntil(() => api.requests.some((r) => r.includes('watch=1')), 'the reflector is watching');
    api.upsert({ metadata: { name: 'plain', labels: { 'switchyard.dev/injection': 'disabled' } } });
    api.upsert({ metadata: { name: 'fresh', labels: { 'switchyard.dev/injection': 'enabled' } } });
    api.bookmark();
    api.remove('apps');
    await waitUntil(() => cache.labels('apps') === undefined && cache.labels('fresh') !== undefined, 'watch events applied');
    expect(cache.labels('plain')).toEqual({ 'switchyard.dev/injection': 'disabled' });
  });

  test('lookups are served from memory: no request per lookup', () => {
    const before = api.requests.length;
    for (let i = 0; i < 1000; i++) cache.labels('plain');
    expect(api.requests.length).toBe(before);
  });
});
