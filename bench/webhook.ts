/**
 * Webhook benchmarks (issue: p99 <= 5 ms at 200 req/s over HTTPS; a
 * 2000-env-var pod injected in <= 10 ms; patch size flat in pod size).
 *
 * Latency is measured open-loop at a fixed arrival rate, well below
 * saturation, over HTTPS keep-alive connections, so queueing does not skew
 * the percentiles. Prints JSON to stdout.
 *
 *   node dist/bench/webhook.js [--rate 200] [--seconds 10]
 */
import * as https from 'https';
import { startInProcessWebhook } from '../lab/src/webhook-inproc';
import { DEFAULT_CONFIG } from '../webhook/src/config';
import { NAMESPACE_INJECTION_LABEL } from '../api/contract';
import { injectPod, PodLike } from '../webhook/src/inject';
import { percentile } from './stats';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};


const envPod = (n: number, valueLen = 40): PodLike => ({
  metadata: { name: 'big', namespace: 'apps' },
  spec: { containers: [{ name: 'app', image: 'a', env: Array.from({ length: n }, (_, i) => ({ name: `VAR_${i}`, value: 'v'.repeat(valueLen) })) }] },
});

export async function benchWebhook(rate: number, seconds: number) {
  const webhook = await startInProcessWebhook({ namespaceLabels: () => ({ [NAMESPACE_INJECTION_LABEL]: 'enabled' }) });
  const { port } = webhook;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 16, ca: webhook.bundle.caCert });
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'apps', object: envPod(20) },
  });
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });

  for (let i = 0; i < 200; i++) await once(); // warm up JIT and TLS sessions
  const latencies: number[] = [];
  const total = rate * seconds;
  const start = process.hrtime.bigint();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + BigInt(Math.round((i * 1e9) / rate));
    const wait = Number(due - process.hrtime.bigint()) / 1e6;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // open-loop arrival schedule
    inflight.push(once().then((ms) => void latencies.push(ms)));
  }
  await Promise.all(inflight);

  // The same full HTTPS path with a 2000-env-var pod in the review (parse, decide, patch, respond).
  const bigBody = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'apps', object: envPod(2000) },
  });
  const bigOnce = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(Number(process.hrtime.bigint() - t0) / 1e6));
      });
      req.on('error', reject);
      req.end(bigBody);
    });
  for (let i = 0; i < 20; i++) await bigOnce();
  const big2000: number[] = [];
  for (let i = 0; i < 100; i++) big2000.push(await bigOnce());
  big2000.sort((a, b) => a - b);
  agent.destroy();
  await webhook.close();
  latencies.sort((a, b) => a - b);

  const ns = { namespace: 'apps', labels: { [NAMESPACE_INJECTION_LABEL]: 'enabled' } };
  const big = envPod(2000);
  for (let i = 0; i < 50; i++) injectPod(big, ns, DEFAULT_CONFIG);
  const injectTimes: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = process.hrtime.bigint();
    injectPod(big, ns, DEFAULT_CONFIG);
    injectTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  injectTimes.sort((a, b) => a - b);

  const sizes = [1_000, 10_000, 100_000, 1_000_000].map((target) => {
    const n = Math.max(1, Math.round(target / 62));
    const p = envPod(n);
    return { podBytes: JSON.stringify(p).length, patchBytes: JSON.stringify(injectPod(p, ns, DEFAULT_CONFIG).patch).length };
  });

  return {
    https: { rate, seconds, requests: latencies.length, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: latencies[latencies.length - 1] },
    inject2000Env: {
      coreP50Ms: percentile(injectTimes, 50),
      coreP99Ms: percentile(injectTimes, 99),
      httpsRoundTripP50Ms: percentile(big2000, 50),
      httpsRoundTripP99Ms: percentile(big2000, 99),
      reviewBytes: bigBody.length,
    },
    patchSize: sizes,
    patchSizeRatio1MBvs1KB: sizes[3].patchBytes / sizes[0].patchBytes,
  };
}

if (require.main === module) {
  benchWebhook(arg('rate', 200), arg('seconds', 10)).then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'));
}
