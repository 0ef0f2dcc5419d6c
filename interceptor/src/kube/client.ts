/**
 * A small Kubernetes API client for the node agent: connection settings from
 * a kubeconfig file or the in-cluster service account, and JSON GETs plus
 * streamed watches over https (or http, for a local test server).
 *
 * The agent runs on every node, so it does not carry a general-purpose
 * client: it only lists and watches a few resources, and keeps slim copies.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as path from 'path';
import YAML from 'yaml';

export class KubeConfigError extends Error {
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'KubeConfigError';
  }
}

export interface Connection {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Read per request: projected service-account tokens rotate. */
  token?: () => string;
  insecureSkipTLSVerify?: boolean;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The in-cluster service account, as client-go's rest.InClusterConfig reads it. */
export function inClusterConnection(saDir = SA_DIR): Connection {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubeConfigError('in-cluster config', 'KUBERNETES_SERVICE_HOST/PORT are not set: give a kubeconfig in the agent config or KUBECONFIG');
  const tokenFile = path.join(saDir, 'token');
  if (!fs.existsSync(tokenFile)) throw new KubeConfigError('in-cluster config', `no service-account token at ${tokenFile}: mount the service account or give a kubeconfig`);
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ca: fs.readFileSync(path.join(saDir, 'ca.crt')),
    token: () => fs.readFileSync(tokenFile, 'utf8').trim(),
  };
}

/** The current context of a kubeconfig file. */
export function kubeconfigConnection(file: string): Connection {
  let doc: any;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KubeConfigError(file, `cannot read the kubeconfig: ${(e as Error).message}`);
  }
  const named = (list: unknown, name: unknown, what: string) => {
    const hit = Array.isArray(list) ? list.find((x) => x?.name === name) : undefined;
    if (!hit) throw new KubeConfigError(file, `the current context names ${what} '${String(name)}', which is not defined`);
    const entry = hit[what] ?? {};
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new KubeConfigError(file, `${what} '${String(name)}' must be a mapping`);
    return entry;
  };
  const current = doc?.['current-context'];
  if (typeof current !== 'string' || !current) throw new KubeConfigError(file, 'no current-context is set');
  const context = named(doc.contexts, current, 'context');
  const cluster = named(doc.clusters, context.cluster, 'cluster');
  const user = context.user ? named(doc.users, context.user, 'user') : {};
  if (typeof cluster.server !== 'string') throw new KubeConfigError(file, `cluster '${context.cluster}' has no server`);
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new KubeConfigError(file, `cluster '${context.cluster}' has server '${cluster.server}', which is not a URL such as https://10.0.0.1:6443`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:') throw new KubeConfigError(file, `cluster '${context.cluster}' has server '${cluster.server}': only https:// and http:// are supported`);
  const rel = (p: string) => (path.isAbsolute(p) ? p : path.join(path.dirname(file), p));
  const read = (what: string, p: string) => {
    try {
      return fs.readFileSync(rel(p));
    } catch (e) {
      throw new KubeConfigError(file, `cannot read the ${what} file ${rel(p)}: ${(e as Error).message}`);
    }
  };
  const material = (what: string, data: unknown, ref: unknown): Buffer | undefined =>
    typeof data === 'string' ? Buffer.from(data, 'base64') : typeof ref === 'string' ? read(what, ref) : undefined;
  const tokenFile = typeof user.tokenFile === 'string' ? rel(user.tokenFile) : undefined;
  return {
    server,
    ca: material('certificate-authority', cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: material('client-certificate', user['client-certificate-data'], user['client-certificate']),
    key: material('client-key', user['client-key-data'], user['client-key']),
    token: typeof user.token === 'string' ? () => user.token : tokenFile ? () => fs.readFileSync(tokenFile, 'utf8').trim() : undefined,
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
  };
}

/** An error status from the API server, with its HTTP code (410 means: relist). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class KubeClient {
  private readonly agent: http.Agent;

  constructor(readonly conn: Connection) {
    const tls = conn.server.protocol === 'https:';
    this.agent = tls
      ? new https.Agent({ keepAlive: true, ca: conn.ca, cert: conn.cert, key: conn.key, rejectUnauthorized: !conn.insecureSkipTLSVerify })
      : new http.Agent({ keepAlive: true });
  }

  private open(pathAndQuery: string, timeoutMs: number, write?: { method: 'POST' | 'PATCH'; contentType: string; body: string }): Promise<http.IncomingMessage> {
    const url = new URL(pathAndQuery, this.conn.server);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'switchyard-interceptor' };
    if (write) headers['content-type'] = write.contentType;
    const token = this.conn.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    const request = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(url, { agent: this.agent, headers, timeout: timeoutMs, method: write?.method ?? 'GET' }, resolve);
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(write?.body);
    });
  }

  /** One write (the agent writes only Events): POST a JSON object, or PATCH with a JSON merge patch. */
  async send(method: 'POST' | 'PATCH', path: string, body: unknown, timeoutMs = 10_000): Promise<void> {
    const contentType = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
    const res = await this.open(path, timeoutMs, { method, contentType, body: JSON.stringify(body) });
    const text = await KubeClient.body(res);
    if ((res.statusCode ?? 0) >= 300) throw KubeClient.statusError(res.statusCode ?? 0, text, `${method} ${path}`);
  }

  private static async body(res: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private static statusError(code: number, text: string, what: string): ApiError {
    let message = text.slice(0, 300);
    try {
      message = JSON.parse(text).message ?? message;
    } catch {
      /* not a Status object */
    }
    return new ApiError(code, `${what}: HTTP ${code}: ${message}`);
  }

  async getJson<T>(pathAndQuery: string, timeoutMs = 30_000): Promise<T> {
    const res = await this.open(pathAndQuery, timeoutMs);
    const text = await KubeClient.body(res);
    if (res.statusCode !== 200) throw KubeClient.statusError(res.statusCode ?? 0, text, `GET ${pathAndQuery}`);
    return JSON.parse(text) as T;
  }

  /**
   * Streams watch events, one parsed JSON object per line, until the server
   * ends the watch or `signal` aborts. Resolves when the stream ends.
   */
  async watch(pathAndQuery: string, onEvent: (e: { type: string; object: any }) => void, signal: AbortSignal): Promise<void> {
    // The server ends a watch after timeoutSeconds; the socket timeout only guards against a dead peer.
    const res = await this.open(pathAndQuery, 15 * 60_000);
    if (res.statusCode !== 200) throw KubeClient.statusError(res.statusCode ?? 0, await KubeClient.body(res), `watch ${pathAndQuery}`);
    const abort = () => res.destroy();
    signal.addEventListener('abort', abort, { once: true });
    try {
      let pending = '';
      for await (const chunk of res) {
        pending += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line) onEvent(JSON.parse(line));
        }
      }
    } catch (e) {
      if (!signal.aborted) throw e;
    } finally {
      signal.removeEventListener('abort', abort);
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

export function connectionFor(kubeconfig?: string): Connection {
  return kubeconfig ? kubeconfigConnection(kubeconfig) : inClusterConnection();
}
