/**
 * JSON requests and streamed watches against the Kubernetes API, with the
 * credentials of a client-node KubeConfig (applied per request, so exec
 * plugins and rotated tokens are honoured). The one HTTP path to the API
 * for the agent, the webhook and the lab.
 *
 * Why not client-node's generated API classes: the agent lists with paging
 * and watches with bookmarks and a field selector (reflector.ts), keeps slim
 * objects, and writes Events as JSON merge patches; the typed 0.x classes
 * would parse every object into a model first. Types still come from
 * client-node (`V1Pod` and friends), narrowed with Pick<> where each cache
 * is defined.
 */
import * as http from 'http';
import * as https from 'https';
import { KubeConfig } from '@kubernetes/client-node';

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

/**
 * The KubeConfig's TLS material and Authorization header, applied to one
 * request's options. A token read from a file keeps its trailing newline in
 * client-node (client-go trims it); a header with a newline is refused by
 * Node, so it is trimmed here.
 */
export async function withCredentials(kc: KubeConfig, opts: https.RequestOptions): Promise<https.RequestOptions> {
  await kc.applyToHTTPSOptions(opts);
  const headers = opts.headers as Record<string, string> | undefined;
  if (headers?.Authorization) headers.Authorization = headers.Authorization.trim();
  return opts;
}

export type WriteMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface WatchEvent {
  type: string;
  object: any;
}

export class KubeClient {
  private readonly server: URL;
  private readonly agent: http.Agent;

  constructor(
    readonly kc: KubeConfig,
    private readonly userAgent = 'switchyard',
  ) {
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new Error('the kubeconfig has no current cluster');
    this.server = new URL(server);
    this.agent = this.server.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  private async open(method: string, pathAndQuery: string, timeoutMs: number, body?: { contentType: string; data: string }): Promise<http.IncomingMessage> {
    const url = new URL(pathAndQuery, this.server);
    const opts: https.RequestOptions = {
      method,
      agent: this.agent,
      timeout: timeoutMs,
      headers: {
        accept: 'application/json',
        'user-agent': this.userAgent,
        ...(body ? { 'content-type': body.contentType, 'content-length': Buffer.byteLength(body.data) } : {}),
      },
    };
    await withCredentials(this.kc, opts); // fresh each time: exec plugins and rotated tokens
    const request = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(url, opts, resolve);
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body?.data);
    });
  }

  private static async text(res: http.IncomingMessage): Promise<string> {
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

  private async exchange(method: 'GET' | WriteMethod, pathAndQuery: string, body: unknown, contentType: string, timeoutMs: number): Promise<{ status: number; text: string }> {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const res = await this.open(method, pathAndQuery, timeoutMs, data === undefined ? undefined : { contentType, data });
    return { status: res.statusCode ?? 0, text: await KubeClient.text(res) };
  }

  /** Any request; the status is the caller's to judge. A JSON body is parsed, other text is returned as is. */
  async request(method: 'GET' | WriteMethod, pathAndQuery: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<{ status: number; body: any }> {
    const r = await this.exchange(method, pathAndQuery, body, contentType, timeoutMs);
    let parsed: unknown = r.text;
    try {
      parsed = JSON.parse(r.text);
    } catch {
      /* plain text (/readyz) */
    }
    return { status: r.status, body: parsed };
  }

  async getJson<T>(pathAndQuery: string, timeoutMs = 30_000): Promise<T> {
    const r = await this.exchange('GET', pathAndQuery, undefined, 'application/json', timeoutMs);
    if (r.status !== 200) throw KubeClient.statusError(r.status, r.text, `GET ${pathAndQuery}`);
    return JSON.parse(r.text) as T;
  }

  /** One write: POST a JSON object, or PATCH with a JSON merge patch. Throws ApiError on a status of 300 or more. */
  async send(method: 'POST' | 'PATCH', path: string, body: unknown, timeoutMs = 10_000): Promise<void> {
    const r = await this.exchange(method, path, body, method === 'PATCH' ? 'application/merge-patch+json' : 'application/json', timeoutMs);
    if (r.status >= 300) throw KubeClient.statusError(r.status, r.text, `${method} ${path}`);
  }

  /**
   * Streams watch events, one parsed JSON object per line, until the server
   * ends the watch or `signal` aborts. Resolves when the stream ends.
   */
  async watch(pathAndQuery: string, onEvent: (e: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    // The server ends a watch after timeoutSeconds; the socket timeout only guards against a dead peer.
    const res = await this.open('GET', pathAndQuery, 15 * 60_000);
    if (res.statusCode !== 200) throw KubeClient.statusError(res.statusCode ?? 0, await KubeClient.text(res), `watch ${pathAndQuery}`);
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
