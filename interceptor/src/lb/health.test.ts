import * as http from 'http';
import type { AddressInfo } from 'net';
import { HealthCheckServer } from './health';

const get = (port: number) =>
  new Promise<{ status: number; weight: string | undefined; type: string | undefined; body: unknown }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, weight: res.headers['x-load-balancing-endpoint-weight'] as string, type: res.headers['content-type'], body: JSON.parse(body) }));
      })
      .on('error', reject);
  });

/** A port the kernel just handed out and took back: free for the server under test. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = http.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

describe("healthCheckNodePort, as kube-proxy's service health server answers it", () => {
  const logs: Record<string, unknown>[] = [];
  const server = new HealthCheckServer((_level, msg, fields) => logs.push({ msg, ...fields }), '127.0.0.1');
  afterAll(() => server.close());

  test('200 with the local endpoint count; 503 at zero; closed when the Service goes', async () => {
    const port = await freePort();
    const service = { namespace: 'apps', name: 'web' };
    server.sync([{ service, port, localEndpoints: 2 }]);
    await new Promise((r) => setImmediate(r));
    const up = await get(port);
    expect(up).toEqual({ status: 200, weight: '2', type: 'application/json', body: { service, localEndpoints: 2, serviceProxyHealthy: true } });

    server.sync([{ service, port, localEndpoints: 0 }]);
    const down = await get(port);
    expect([down.status, down.weight, (down.body as { localEndpoints: number }).localEndpoints]).toEqual([503, '0', 0]);

    server.sync([]);
    expect(server.ports()).toEqual([]);
    await expect(get(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  test('a port another process holds is logged, not fatal', async () => {
    const other = http.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => other.once('listening', r));
    const port = (other.address() as AddressInfo).port;
    server.sync([{ service: { namespace: 'apps', name: 'busy' }, port, localEndpoints: 1 }]);
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setImmediate(r));
    expect(logs.some((l) => l.msg === 'health check port not served' && l.port === port && l.error === 'EADDRINUSE')).toBe(true);
    other.close();
  });
});
