/**
 * Namespace labels from an informer (list + watch), never from an API call
 * per admission request. The cache is "synced" after the first list; the
 * webhook reports not-ready until then.
 */
import * as k8s from '@kubernetes/client-node';
import { Logger, stdoutLogger } from '../../lib/log';

export class NamespaceCache {
  private readonly labelsByName = new Map<string, Record<string, string>>();
  private informer?: k8s.Informer<k8s.V1Namespace>;
  synced = false;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly log: Logger = stdoutLogger,
  ) {}

  labels = (name: string): Record<string, string> | undefined => this.labelsByName.get(name);

  async start(): Promise<void> {
    const api = this.kc.makeApiClient(k8s.CoreV1Api);
    const informer = k8s.makeInformer(this.kc, '/api/v1/namespaces', () => api.listNamespace());
    const put = (ns: k8s.V1Namespace) => ns.metadata?.name && this.labelsByName.set(ns.metadata.name, { ...(ns.metadata.labels ?? {}) });
    informer.on('add', put);
    informer.on('update', put);
    informer.on('delete', (ns) => ns.metadata?.name && this.labelsByName.delete(ns.metadata.name));
    informer.on('error', (err: unknown) => {
      this.log('warn', 'namespace watch failed; restarting', { error: String((err as Error)?.message ?? err) });
      setTimeout(() => void informer.start().catch(() => undefined), 1000).unref();
    });
    this.informer = informer;
    await informer.start();
    this.synced = true;
    this.log('info', 'namespace cache synced', { namespaces: this.labelsByName.size });
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
  }
}
