/**
 * A minimal in-process Kubernetes API server for one resource collection,
 * speaking the real list/watch wire protocol: a list with
 * metadata.resourceVersion, then ?watch=true streaming newline-delimited
 * watch events (ADDED, MODIFIED, DELETED, BOOKMARK), and 410 Gone for a
 * resourceVersion that is too old. Used only where no real apiserver runs.
 */
import * as http from 'http';
import { AddressInfo } from 'net';

type Obj = { metadata: { name: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };

export class FakeApiServer {
  private readonly objects = new Map<string, Obj>();
  private readonly watchers = new Set<http.ServerResponse>();
  private rv = 100;
  /** resourceVersions older than this get 410 Gone on watch. */
  oldestWatchable = 0;
  private readonly server: http.Server;
  readonly requests: string[] = [];
  /** The Authorization header of each request, in the same order ('' when none). */
  readonly authorizations: string[] = [];

  constructor(
    private readonly path: string, // e.g. /api/v1/namespaces
    private readonly listKind: string, // e.g. NamespaceList
  ) {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.end();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private readonly selectors = new Map<http.ServerResponse, (o: Obj) => boolean>();

  /** Supports the one field selector the agent uses: spec.nodeName=<node>. */
  private static selector(url: URL): (o: Obj) => boolean {
    const fs = url.searchParams.get('fieldSelector');
    const m = fs ? /^spec\.nodeName=(.*)$/.exec(fs) : null;
    return m ? (o) => (o.spec as { nodeName?: string } | undefined)?.nodeName === m[1] : () => true;
  }

  /** Every change, so a watch from resourceVersion N first replays what happened after N. */
  private readonly history: { rv: number; type: string; object: Obj }[] = [];

  private emit(type: string, object: unknown): void {
    const o = object as Obj;
    if (type !== 'BOOKMARK') this.history.push({ rv: Number(o.metadata.resourceVersion), type, object: o });
    const line = JSON.stringify({ type, object }) + '\n';
    for (const w of this.watchers) if (type === 'BOOKMARK' || (this.selectors.get(w) ?? (() => true))(o)) w.write(line);
  }

  upsert(obj: Obj): void {
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    const type = this.objects.has(obj.metadata.name) ? 'MODIFIED' : 'ADDED';
    this.objects.set(obj.metadata.name, stored);
    this.emit(type, stored);
  }

  remove(name: string): void {
    const obj = this.objects.get(name);
    if (!obj) return;
    this.objects.delete(name);
    this.emit('DELETED', { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } });
  }

  get(name: string): Obj | undefined {
    return this.objects.get(name);
  }

  bookmark(): void {
    this.emit('BOOKMARK', { kind: 'Namespace', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } });
  }

  /** Ends every open watch, as an apiserver does on timeout. */
  dropWatches(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    this.authorizations.push(req.headers.authorization ?? '');
    if (url.pathname !== this.path) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404 }));
      return;
    }
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      const from = Number(url.searchParams.get('resourceVersion') ?? 0);
      if (from < this.oldestWatchable) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${from}` } }) + '\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const match = FakeApiServer.selector(url);
      for (const h of this.history) if (h.rv > from && match(h.object)) res.write(JSON.stringify({ type: h.type, object: h.object }) + '\n');
      this.watchers.add(res);
      this.selectors.set(res, match);
      req.on('close', () => {
        this.watchers.delete(res);
        this.selectors.delete(res);
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    const all = [...this.objects.values()].filter(FakeApiServer.selector(url));
    // Paging as the apiserver does it: limit, and an opaque continue token (here an offset).
    const offset = Number(url.searchParams.get('continue') || 0);
    const limit = Number(url.searchParams.get('limit') || all.length || 1);
    const items = all.slice(offset, offset + limit);
    const more = offset + limit < all.length;
    res.end(JSON.stringify({ kind: this.listKind, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(offset + limit) } : {}) }, items }));
  }
}

/** Several collections behind one address, each with its own resourceVersions and watches. */
export class FakeCluster {
  private readonly collections = new Map<string, FakeApiServer>();
  private readonly server = http.createServer((req, res) => {
    const c = this.collections.get(new URL(req.url ?? '/', 'http://x').pathname);
    if (c) c.handle(req, res);
    else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404 }));
  });

  add(path: string, listKind: string): FakeApiServer {
    const c = new FakeApiServer(path, listKind);
    this.collections.set(path, c);
    return c;
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const c of this.collections.values()) c.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
