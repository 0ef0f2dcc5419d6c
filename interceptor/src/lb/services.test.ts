import * as fs from 'fs';
import * as path from 'path';
import type { V1Endpoint, V1EndpointSlice } from '@kubernetes/client-node';
import { LB_IGNORE_ANNOTATION, endpointUse, frontendKey, serviceFrontends, slimEndpointSlice, slimService } from './services';

const fixture = (f: string) => JSON.parse(fs.readFileSync(path.join(__dirname, '../../../test/fixtures/k8s', f), 'utf8'));
const svc = () => slimService(fixture('service-web.json'));
const slices = () => (fixture('endpointslices-web.json') as V1EndpointSlice[]).map(slimEndpointSlice);

describe('Service + EndpointSlices → frontends', () => {
  test('one frontend per ClusterIP × TCP/UDP port; ready endpoints of that family; named ports resolved from the slice', () => {
    const { frontends, skipped } = serviceFrontends(svc(), slices());
    expect(skipped).toBeUndefined();
    const view = Object.fromEntries(frontends.map((f) => [frontendKey(f.frontend), f.backends.map((b) => `${b.ip}:${b.port}`)]));
    expect(view).toEqual({
      '10.96.0.10:80/TCP': ['10.244.1.12:8080', '10.244.1.13:8080', '10.244.2.9:8080'], // not-ready web-2 left out; unset ready counts as ready
      '10.96.0.10:53/UDP': ['10.244.1.12:5353', '10.244.1.13:5353', '10.244.2.9:5353'],
      '[fd00:96::10]:80/TCP': ['fd00:244:1::12:8080'],
      '[fd00:96::10]:53/UDP': [], // no IPv6 slice carries the dns port: connects are refused, not sent elsewhere
    });
    expect(frontends.every((f) => f.affinityTimeoutSeconds === 0)).toBe(true);
  });

  test('sessionAffinity ClientIP carries its timeout (default 10800 s)', () => {
    const s = svc();
    s.spec!.sessionAffinity = 'ClientIP';
    expect(serviceFrontends(s, slices()).frontends[0].affinityTimeoutSeconds).toBe(10800);
    s.spec!.sessionAffinityConfig = { clientIP: { timeoutSeconds: 60 } };
    expect(serviceFrontends(s, slices()).frontends[0].affinityTimeoutSeconds).toBe(60);
  });

  test.each([
    ['headless', { clusterIP: 'None', clusterIPs: ['None'] }, 'headless'],
    ['ExternalName', { type: 'ExternalName', clusterIP: '', clusterIPs: undefined }, 'external-name'],
    ['no ClusterIP yet', { clusterIP: '', clusterIPs: [] }, 'no-cluster-ip'],
  ])('%s is not load-balanced', (_n, spec, reason) => {
    const s = svc();
    Object.assign(s.spec!, spec);
    expect(serviceFrontends(s, slices())).toEqual({ frontends: [], skipped: reason });
  });

  test('the ignore annotation opts a Service out', () => {
    const s = svc();
    s.metadata!.annotations = { [LB_IGNORE_ANNOTATION]: 'true' };
    expect(serviceFrontends(s, slices()).skipped).toBe('ignored-by-annotation');
  });

  test.each([
    [undefined, 'ready'],
    [{}, 'ready'],
    [{ ready: true }, 'ready'],
    [{ ready: null }, 'ready'],
    [{ ready: false }, 'none'],
    [{ ready: false, serving: false, terminating: true }, 'none'],
    [{ ready: false, serving: true, terminating: true }, 'terminating'],
    [{ ready: false, serving: true }, 'none'], // serving but not terminating: not ready for another reason
    [{ ready: false, terminating: true }, 'none'], // serving unset defers to ready
  ] as const)('endpoint conditions %j are used as %s', (c, use) => {
    expect(endpointUse(c as never)).toBe(use);
  });

  test('with no ready endpoint, terminating but serving ones take the traffic; one ready endpoint takes it back', () => {
    const ep = (ip: string, conditions: object): V1Endpoint => ({ addresses: [ip], conditions });
    const slice = (endpoints: V1Endpoint[]) =>
      slimEndpointSlice({ metadata: { name: 'web-x', namespace: 'apps' }, addressType: 'IPv4', endpoints, ports: [{ name: 'http', protocol: 'TCP', port: 8080 }] });
    const draining = ep('10.244.1.12', { ready: false, serving: true, terminating: true });
    const gone = ep('10.244.1.13', { ready: false, serving: false, terminating: true });
    const starting = ep('10.244.2.9', { ready: false, serving: false, terminating: false });
    const http = (eps: V1Endpoint[]) => serviceFrontends(svc(), [slice(eps)]).frontends.find((f) => frontendKey(f.frontend) === '10.96.0.10:80/TCP')!;

    const during = http([draining, gone, starting]);
    expect(during.backends).toEqual([{ ip: '10.244.1.12', port: 8080 }]);
    expect(during.terminating).toBe(true);

    const after = http([draining, gone, ep('10.244.2.9', { ready: true, serving: true, terminating: false })]);
    expect(after.backends).toEqual([{ ip: '10.244.2.9', port: 8080 }]);
    expect(after.terminating).toBeUndefined();

    const none = http([gone, starting]);
    expect(none.backends).toEqual([]); // nothing serving: connects are refused
  });

  test('slimming keeps only what the translation reads', () => {
    expect(JSON.stringify(svc())).not.toContain('managedFields');
    expect(JSON.stringify(slices())).not.toContain('targetRef');
  });
});
