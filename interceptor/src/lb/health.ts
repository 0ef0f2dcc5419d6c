/**
 * healthCheckNodePort for Services with externalTrafficPolicy Local, served
 * the way kube-proxy serves it, so that cloud load balancers pick the nodes
 * that have endpoints: 200 with this node's endpoint count when it has any,
 * 503 otherwise; a JSON body naming the Service, and the count again in
 * X-Load-Balancing-Endpoint-Weight. One listener per port, opened and
 * closed as Services come and go.
 */
import * as http from 'http';
import type { Logger } from '../../../lib/log';
import type { HealthCheckSpec } from './node-frontends';

interface Listener {
  server: http.Server;
  spec: HealthCheckSpec;
}

export class HealthCheckServer {
  private readonly listeners = new Map<number, Listener>();

  constructor(
    private readonly log: Logger,
    private readonly host = '0.0.0.0',
  ) {}

  /** Makes the open listeners exactly these (by port); a port another process holds is logged and retried on the next sync. */
  sync(wanted: HealthCheckSpec[]): void {
    const byPort = new Map(wanted.map((w) => [w.port, w]));
    for (const [port, l] of this.listeners) {
      if (byPort.has(port)) continue;
      l.server.close();
      l.server.closeAllConnections(); // kept-alive probes too: the port is gone now, not at their idle timeout
      this.listeners.delete(port);
      this.log('info', 'health check port closed', { port });
    }
    for (const [port, spec] of byPort) {
      const l = this.listeners.get(port);
      if (l) {
        l.spec = spec;
        continue;
      }
      const listener: Listener = { server: http.createServer((_req, res) => respond(res, listener.spec)), spec };
      listener.server.on('error', (e: NodeJS.ErrnoException) => {
        this.listeners.delete(port);
        this.log('warn', 'health check port not served', { port, service: `${spec.service.namespace}/${spec.service.name}`, error: e.code ?? e.message });
      });
      listener.server.listen(port, this.host, () =>
        this.log('info', 'health check port open', { port, service: `${spec.service.namespace}/${spec.service.name}`, local_endpoints: listener.spec.localEndpoints }),
      );
      this.listeners.set(port, listener);
    }
  }

  ports(): number[] {
    return [...this.listeners.keys()];
  }

  close(): Promise<void> {
    const all = [...this.listeners.values()].map((l) => {
      const closed = new Promise<void>((r) => l.server.close(() => r()));
      l.server.closeAllConnections();
      return closed;
    });
    this.listeners.clear();
    return Promise.all(all).then(() => undefined);
  }
}

function respond(res: http.ServerResponse, spec: HealthCheckSpec): void {
  const count = spec.localEndpoints;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Load-Balancing-Endpoint-Weight', String(count));
  res.statusCode = count > 0 ? 200 : 503;
  res.end(JSON.stringify({ service: spec.service, localEndpoints: count, serviceProxyHealthy: true }, null, 2));
}
