import * as fs from 'fs';
import * as path from 'path';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { frontendKey, serviceFrontends, slimEndpointSlice, slimService } from './services';
import { nodeFrontends } from './node-frontends';

const fixture = (f: string) => JSON.parse(fs.readFileSync(path.join(__dirname, '../../../test/fixtures/k8s', f), 'utf8'));
const slices = () => (fixture('endpointslices-web.json') as V1EndpointSlice[]).map(slimEndpointSlice);
/** apps/web as a NodePort or LoadBalancer Service: http 80 → nodePort 30080, dns 53/UDP → 30053. */
const svc = (spec: Record<string, unknown> = {}, status?: Record<string, unknown>) => {
  const raw = fixture('service-web.json');
  raw.spec = { ...raw.spec, type: 'NodePort', ...spec };
  raw.spec.ports = raw.spec.ports.map((p: { port: number }) => ({ ...p, nodePort: p.port === 80 ? 30080 : 30053 }));
  if (status) raw.status = status;
  return slimService(raw);
};
const ctx = { nodeName: 'node-a', nodeAddresses: ['192.168.1.10', '10.0.0.10'] };
const view = (fs: { frontend: Parameters<typeof frontendKey>[0]; backends: { ip: string; port: number; local?: boolean }[] }[]) =>
  Object.fromEntries(fs.map((f) => [frontendKey(f.frontend), f.backends.map((b) => `${b.ip}:${b.port}${b.local ? '(local)' : ''}`)]));

describe('Service + EndpointSlices → node frontends', () => {
  test('NodePort on every node address; Cluster policy: every ready endpoint, this node\'s marked local', () => {
    const { node, connect, health } = nodeFrontends(svc(), slices(), ctx);
    const all = ['10.244.1.12:8080(local)', '10.244.1.13:8080(local)', '10.244.2.9:8080'];
    expect(view(node)).toMatchObject({ '192.168.1.10:30080/TCP': all, '10.0.0.10:30080/TCP': all });
    expect(Object.keys(view(node)).sort()).toEqual(['10.0.0.10:30053/UDP', '10.0.0.10:30080/TCP', '192.168.1.10:30053/UDP', '192.168.1.10:30080/TCP']);
    expect(node.every((f) => f.kind === 'NodePort' && !f.local)).toBe(true);
    // In-cluster clients dialling the same addresses are balanced at connect, over every endpoint.
    expect(view(connect)).toEqual(view(node));
    expect(health).toBeUndefined();
  });

  test('externalTrafficPolicy Local: only this node\'s endpoints at the node, every endpoint at connect, and a health check port', () => {
    const { node, connect, health } = nodeFrontends(svc({ externalTrafficPolicy: 'Local', healthCheckNodePort: 32100 }), slices(), ctx);
    expect(view(node)['192.168.1.10:30080/TCP']).toEqual(['10.244.1.12:8080(local)', '10.244.1.13:8080(local)']);
    expect(node.every((f) => f.local)).toBe(true);
    expect(view(connect)['192.168.1.10:30080/TCP']).toHaveLength(3);
    expect(health).toEqual({ service: { namespace: 'apps', name: 'web' }, port: 32100, localEndpoints: 2 });
    // node-b has web-3 ready, and web-2 terminating: the terminating one is not used while one is ready.
    const b = nodeFrontends(svc({ externalTrafficPolicy: 'Local', healthCheckNodePort: 32100 }), slices(), { ...ctx, nodeName: 'node-b' });
    expect(view(b.node)['192.168.1.10:30080/TCP']).toEqual(['10.244.2.9:8080(local)']);
    const c = nodeFrontends(svc({ externalTrafficPolicy: 'Local', healthCheckNodePort: 32100 }), slices(), { ...ctx, nodeName: 'node-c' });
    expect([view(c.node)['192.168.1.10:30080/TCP'], c.health?.localEndpoints]).toEqual([[], 0]);
  });

  test('Local falls back to this node\'s terminating endpoints when none is ready', () => {
    const s = slices();
    for (const e of s[0].endpoints ?? []) if (e.nodeName === 'node-b') e.conditions = { ready: false, serving: true, terminating: true };
    const b = nodeFrontends(svc({ externalTrafficPolicy: 'Local' }), s, { ...ctx, nodeName: 'node-b' });
    expect(view(b.node)['192.168.1.10:30080/TCP']).toEqual(['10.244.2.7:8080(local)', '10.244.2.9:8080(local)']);
    expect(b.node[0].terminating).toBe(true);
  });

  test('externalIPs and LoadBalancer ingress IPs on the Service port; IPv6 ones and a ClusterIP Service\'s node ports are left out', () => {
    const lb = nodeFrontends(svc({ type: 'LoadBalancer', externalIPs: ['203.0.113.10', '2001:db8::1'] }, { loadBalancer: { ingress: [{ ip: '198.51.100.7' }, { hostname: 'lb.example' }] } }), slices(), ctx);
    const kinds = Object.fromEntries(lb.node.map((f) => [frontendKey(f.frontend), f.kind]));
    expect(kinds).toMatchObject({ '203.0.113.10:80/TCP': 'ExternalIP', '198.51.100.7:80/TCP': 'LoadBalancer', '198.51.100.7:53/UDP': 'LoadBalancer', '192.168.1.10:30080/TCP': 'NodePort' });
    expect(Object.keys(kinds).some((k) => k.includes('2001:db8'))).toBe(false);
    const cip = nodeFrontends(svc({ type: 'ClusterIP', externalIPs: ['203.0.113.10'] }), slices(), ctx);
    expect(Object.keys(view(cip.node)).sort()).toEqual(['203.0.113.10:53/UDP', '203.0.113.10:80/TCP']);
  });

  test('internalTrafficPolicy Local keeps ClusterIP clients on this node\'s endpoints', () => {
    const s = svc({ type: 'ClusterIP', internalTrafficPolicy: 'Local' });
    expect(view(serviceFrontends(s, slices(), 'node-a').frontends)['10.96.0.10:80/TCP']).toEqual(['10.244.1.12:8080(local)', '10.244.1.13:8080(local)']);
    expect(view(serviceFrontends(s, slices(), 'node-c').frontends)['10.96.0.10:80/TCP']).toEqual([]);
  });
});
