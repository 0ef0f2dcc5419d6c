/**
 * Namespace labels from a reflector (paged list, then watch with bookmarks),
 * never from an API call per admission request. The cache is "synced" after
 * the first list; the webhook reports not-ready until then.
 */
import type { V1Namespace } from '@kubernetes/client-node';
import { Logger, stdoutLogger } from '../../lib/log';
import { KubeClient } from '../../lib/kube/client';
import { Reflector } from '../../lib/kube/reflector';

/** What admission reads of a Namespace. */
export type NamespaceObject = { metadata?: Pick<NonNullable<V1Namespace['metadata']>, 'name' | 'labels' | 'resourceVersion'> };

export const slimNamespace = (raw: V1Namespace): NamespaceObject => ({
  metadata: { name: raw?.metadata?.name, labels: raw?.metadata?.labels, resourceVersion: raw?.metadata?.resourceVersion },
});

export class NamespaceCache {
  private readonly reflector: Reflector<NamespaceObject>;

  constructor(
    client: KubeClient,
    private readonly log: Logger = stdoutLogger,
  ) {
    this.reflector = new Reflector<NamespaceObject>({
      client,
      path: '/api/v1/namespaces',
      slim: slimNamespace,
      key: (ns) => ns.metadata?.name ?? '',
      resourceVersion: (ns) => ns.metadata?.resourceVersion,
      onError: (e) => this.log('warn', 'namespace watch failed; retrying', { error: e.message }),
    });
  }

  get synced(): boolean {
    return this.reflector.synced;
  }

  labels = (name: string): Record<string, string> | undefined => {
    const ns = this.reflector.get(name);
    return ns && { ...(ns.metadata?.labels ?? {}) };
  };

  async start(): Promise<void> {
    await this.reflector.start();
    if (this.synced) this.log('info', 'namespace cache synced', { namespaces: this.reflector.all().length });
  }

  stop(): void {
    this.reflector.stop();
  }
}
