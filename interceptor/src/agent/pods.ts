/**
 * Pods on this node, from a reflector restricted by field selector
 * (spec.nodeName=<node>). ADD waits here, boundedly, for a pod the kubelet
 * knows about but our watch has not delivered yet. Pods are kept slim: only
 * the fields registration reads.
 */
import { EventEmitter } from 'events';
import type { V1Pod } from '@kubernetes/client-node';
import { KubeClient } from '../../../lib/kube/client';
import { Reflector } from '../../../lib/kube/reflector';
import { PodObject, podKey } from './decision';

/** The fields of a Pod that the agent reads; everything else is dropped on arrival. */
export function slimPod(raw: V1Pod): PodObject {
  const m = raw?.metadata ?? {};
  const s = raw?.status ?? {};
  return {
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, labels: m.labels, annotations: m.annotations, resourceVersion: m.resourceVersion },
    spec: { nodeName: raw?.spec?.nodeName, hostNetwork: raw?.spec?.hostNetwork },
    status: { podIP: s.podIP, podIPs: s.podIPs, phase: s.phase },
  };
}

export class PodCache extends EventEmitter {
  private readonly reflector: Reflector<PodObject>;

  constructor(client: KubeClient, nodeName: string, onError: (e: Error) => void) {
    super();
    this.setMaxListeners(0);
    this.reflector = new Reflector<PodObject>({
      client,
      path: '/api/v1/pods',
      params: { fieldSelector: `spec.nodeName=${nodeName}` },
      slim: slimPod,
      key: podKey,
      resourceVersion: (p) => p.metadata?.resourceVersion,
      onError,
    });
    this.reflector.on('upsert', (p, old) => this.emit('upsert', p, old));
    this.reflector.on('delete', (p) => this.emit('delete', p));
  }

  get synced(): boolean {
    return this.reflector.synced;
  }

  get(namespace: string, name: string): PodObject | undefined {
    return this.reflector.get(`${namespace}/${name}`);
  }

  all(): PodObject[] {
    return this.reflector.all();
  }

  start(): Promise<void> {
    return this.reflector.start();
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

  stop(): void {
    this.reflector.stop();
  }
}
