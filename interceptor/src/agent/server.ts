/**
 * The agent's two doors:
 *  - a root-only unix socket (0600) for switchyard-cni (POST /v1/cni/{add,del,check})
 *    and the node CLI (GET /v1/status[/ns/pod], GET /v1/services, GET /v1/explain,
 *    GET /v1/monitor: decision events as NDJSON, for as long as the client reads,
 *    GET /v1/node: what the node offers the dataplane, for `switchyard check`);
 *  - a plain-HTTP port for /healthz, /readyz and /metrics.
 */
import express, { NextFunction, Request, Response } from 'express';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { AddressInfo, isIP } from 'net';
import { counterKey } from '../dataplane/abi';
import { Dataplane } from '../dataplane/dataplane';
import { AgentMetrics } from './metrics';
import { ExplainEnv, explain } from './explain';
import { frontendKey } from '../lb/services';
import { CniError, Registrar, validateCniRequest } from './registrar';
import { RecordStore } from './state';
import { DecisionMonitor } from './monitor';
import { MONITOR_PATH, NodeReport, NodeStatus, VERDICTS, Verdict } from '../../../api/agent-wire';

/** Bytes of monitor lines the agent holds for one slow client before it skips lines. */
const MONITOR_BACKLOG = 1 << 20;

function status(store: RecordStore, dp: Dataplane): NodeStatus {
  const stringify = (o: Record<string, bigint>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
  return {
    pods: store.all().map((r) => ({
      namespace: r.namespace,
      name: r.name,
      uid: r.uid,
      containerId: r.containerId,
      netnsCookie: r.netnsCookie,
      cgroup: r.cgroupPath,
      ips: r.ips,
      ifname: r.ifname,
      interception: r.interception,
      registeredAt: r.registeredAt,
      counters: stringify(dp.podCounters(BigInt(r.netnsCookie)) ?? {}),
    })),
    node: Object.fromEntries(Object.entries(dp.counters()).map(([k, v]) => [counterKey(k as never), String(v)])),
    maps: dp.mapFill(),
    memory: process.memoryUsage(),
  };
}

export function agentApi(
  registrar: Registrar,
  store: RecordStore,
  dp: Dataplane,
  services: () => unknown[] | undefined = () => undefined,
  monitor?: DecisionMonitor,
  node?: () => NodeReport,
  /** Node frontends (NodePort, external and LoadBalancer IPs), when they are on. */
  nodeFrontends: () => unknown[] | undefined = () => undefined,
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '64kb' }));

  const cni = (verb: 'add' | 'del' | 'check') => async (req: Request, res: Response) => {
    try {
      const body = validateCniRequest(req.body);
      const reply = verb === 'add' ? await registrar.add(body) : verb === 'del' ? registrar.del(body) : registrar.check(body);
      res.json(reply);
    } catch (e) {
      const err = e instanceof CniError ? e : new CniError(999, `internal error: ${(e as Error).message}`);
      res.status(err.code === 11 ? 503 : 422).json({ code: err.code, message: err.message, details: err.details });
    }
  };
  app.post('/v1/cni/add', cni('add'));
  app.post('/v1/cni/del', cni('del'));
  app.post('/v1/cni/check', cni('check'));

  app.get('/v1/status', (_req, res) => void res.json(status(store, dp)));
  app.get('/v1/services', (_req, res) => {
    const s = services();
    if (!s) res.status(404).json({ error: 'Service load balancing is off on this node (serviceLoadBalancing: false)' });
    else {
      const nf = nodeFrontends();
      res.json({ services: s, ...(nf ? { nodeFrontends: nf } : {}) });
    }
  });
  app.get('/v1/status/:namespace/:name', (req, res) => {
    const pod = status(store, dp).pods.find((p) => p.namespace === req.params.namespace && p.name === req.params.name);
    if (!pod) res.status(404).json({ error: `pod ${req.params.namespace}/${req.params.name} is not registered on this node` });
    else res.json(pod);
  });
  app.get('/v1/explain', (req, res) => {
    const [ns, name] = String(req.query.pod ?? '').split('/');
    const dst = String(req.query.dst ?? '');
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(dst);
    const uid = req.query.uid === undefined ? 0 : Number(req.query.uid);
    if (!m || !isIP(m[1]) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      res.status(400).json({ error: `destination '${dst}' must be IP:PORT (IPv6 as [IP]:PORT)` });
      return;
    }
    if (!Number.isInteger(uid) || uid < 0 || uid > 0xffffffff) {
      res.status(400).json({ error: `uid '${req.query.uid}' must be a whole number from 0 to 4294967295` });
      return;
    }
    const record = store.byPod(ns, name);
    if (!record) {
      res.json({ verdict: 'direct', target: dst, reasons: [`${ns}/${name} is not a registered mesh pod on this node: nothing is intercepted`], counters: ['SY_C_CONNECT_NOT_MESH'] });
      return;
    }
    const config = dp.pod(BigInt(record.netnsCookie));
    if (!config) {
      res.status(409).json({ error: `${ns}/${name} has a record but no map entry; the agent will repair it on reconcile` });
      return;
    }
    const names = new Map(((services() ?? []) as { frontend: string; service: string }[]).map((s) => [s.frontend, s.service]));
    const env: ExplainEnv = {
      localPodByIp: (ip) => {
        const r = store.all().find((x) => x.ips.includes(ip));
        const c = r && dp.pod(BigInt(r.netnsCookie));
        return r && c ? { name: `${r.namespace}/${r.name}`, config: c } : undefined;
      },
      // The frontends the kernel holds, not the API's: what a connect meets now.
      frontend: (ip, port) => {
        const frontend = { ip, port, protocol: 'TCP' as const };
        const f = dp.service(frontend);
        return f && { service: names.get(frontendKey(frontend)) ?? `service id ${f.serviceId}`, backends: f.backends };
      },
    };
    res.json(explain({ pod: config, uid, foreignCgroup: req.query.foreign === 'true' }, { ip: m[1], port: Number(m[2]) }, env));
  });

  app.get('/v1/node', (_req, res) => {
    if (!node) res.status(404).json({ error: 'this agent has no node report' });
    else res.json(node());
  });

  app.get(MONITOR_PATH, (req, res) => {
    const pod = req.query.pod === undefined ? undefined : String(req.query.pod);
    const verdict = req.query.type === undefined ? undefined : String(req.query.type);
    if (!monitor) return void res.status(404).json({ error: 'this agent has no decision monitor' });
    if (pod !== undefined && !/^[^/]+\/[^/]+$/.test(pod)) return void res.status(400).json({ error: `pod '${pod}' must be NAMESPACE/NAME` });
    if (verdict !== undefined && !VERDICTS.includes(verdict as Verdict)) {
      return void res.status(400).json({ error: `type '${verdict}' must be one of ${VERDICTS.join(', ')}` });
    }
    res.status(200).set({ 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    const write = (line: string) => {
      if (res.destroyed) return false;
      if (res.writableLength < MONITOR_BACKLOG) res.write(`${line}\n`); // a client that does not read loses lines, the agent no memory
      return true;
    };
    const unsubscribe = monitor.subscribe({ filter: { pod, verdict: verdict as Verdict | undefined }, write, end: () => res.end() });
    res.on('close', unsubscribe);
  });

  app.use((err: Error & { type?: string }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    res.status(400).json({ code: 6, message: `switchyard-cni sent an unreadable request: ${err.message}` });
  });
  return app;
}

/** Listens on a unix socket that only root can connect to. */
export async function listenUnix(app: express.Express, socketPath: string): Promise<http.Server> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  fs.rmSync(socketPath, { force: true }); // a socket left by a previous agent
  const server = http.createServer(app);
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
  } finally {
    process.umask(old);
  }
  fs.chmodSync(socketPath, 0o600);
  return server;
}

export async function listenMetrics(metrics: AgentMetrics, ready: () => boolean, host: string, port: number): Promise<{ server: http.Server; port: number }> {
  const app = express();
  app.get('/healthz', (_req, res) => void res.send('ok\n'));
  app.get('/readyz', (_req, res) => void (ready() ? res.send('ready\n') : res.status(503).send('not ready\n')));
  app.get('/metrics', async (_req, res) => void res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()));
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
