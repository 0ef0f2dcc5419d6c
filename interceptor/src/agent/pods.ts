/**
 * Pods on this node, from an informer restricted by field selector
 * (spec.nodeName=<node>). ADD waits here, boundedly, for a pod the kubelet
 * knows about but our watch has not delivered yet.
 */
import * as k8s from '@kubernetes/client-node';
import { EventEmitter } from 'events';
import { PodObject } from './decision';

export class PodCache extends EventEmitter {
  private readonly byKey = new Map<string, PodObject>();
  private informer?: k8s.Informer<k8s.V1Pod>;
  synced = false;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly nodeName: string,
    private readonly onError: (e: unknown) => void,
  ) {
    super();
    this.setMaxListeners(0);
  }

  get(namespace: string, name: string): PodObject | undefined {
    return this.byKey.get(`${namespace}/${name}`);
  }

  all(): PodObject[] {
    return [...this.byKey.values()];
  }

  async start(): Promise<void> {
    const api = this.kc.makeApiClient(k8s.CoreV1Api);
    const selector = `spec.nodeName=${this.nodeName}`;
    const informer = k8s.makeInformer(this.kc, `/api/v1/pods?fieldSelector=${encodeURIComponent(selector)}`, () =>
      api.listPodForAllNamespaces(undefined, undefined, selector),
    );
    const key = (p: k8s.V1Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;
    informer.on('add', (p) => {
      this.byKey.set(key(p), p as PodObject);
      this.emit('upsert', p, undefined);
    });
    informer.on('update', (p) => {
      const old = this.byKey.get(key(p));
      this.byKey.set(key(p), p as PodObject);
      this.emit('upsert', p, old);
    });
    informer.on('delete', (p) => {
      // A tombstone may carry a stale object; the key and uid are what matter.
      this.byKey.delete(key(p));
      this.emit('delete', p);
    });
    informer.on('error', (err: unknown) => {
      this.onError(err);
      setTimeout(() => void informer.start().catch(this.onError), 1000).unref();
    });
    this.informer = informer;
    await informer.start();
    this.synced = true;
  }

  /** The pod with this name (and uid, when given), waiting up to timeoutMs for the watch to deliver it. */
  waitFor(namespace: string, name: string, uid: string | undefined, timeoutMs: number): Promise<PodObject | undefined> {
    const ok = (p?: PodObject) => p && (!uid || p.metadata?.uid === uid);
    const now = this.get(namespace, name);
    if (ok(now)) return Promise.resolve(now);
    return new Promise((resolve) => {
      const onUpsert = (p: PodObject) => {
        if (p.metadata?.namespace === namespace && p.metadata?.name === name && ok(p)) done(p);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (p: PodObject | undefined) => {
        clearTimeout(timer);
        this.off('upsert', onUpsert);
        resolve(p);
      };
      this.on('upsert', onUpsert);
    });
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
  }
}
