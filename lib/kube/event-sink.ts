/**
 * The EventSink (../events.ts) over the API: events.k8s.io/v1 create, and
 * a JSON merge patch for a series' count. Plain JSON, because client-node's
 * typed Events API re-serializes the body and wants Date objects for
 * MicroTime fields.
 */
import { EventSink, eventPath } from '../events';
import { KubeClient } from './client';

export function apiEventSink(client: KubeClient): EventSink {
  return {
    create: (ns, event) => client.send('POST', eventPath(ns), event),
    patch: (ns, name, patch) => client.send('PATCH', eventPath(ns, name), patch),
  };
}
