/**
 * Kubernetes Events (events.k8s.io/v1) for decisions a user should see in
 * `kubectl describe` and `kubectl get events`: deduplicated and rate-limited,
 * never blocking or failing the caller.
 *
 *   record(spec) ── same object, reason and note seen within the window? ──┐
 *        │ no: create an Event                                        yes: count it; the
 *        ▼                                                                 series {count,
 *   token bucket (burst, then perSecond): no token → counted, retried 1 s later  lastObservedTime}
 *                                                                          is patched when a
 *                                                                          token allows
 * The sink does the HTTP (the webhook's client-node, the agent's own
 * client), so this file knows no Kubernetes client.
 */
import { randomBytes } from 'crypto';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
}

export interface EventSpec {
  regarding: ObjectRef;
  type: 'Normal' | 'Warning';
  /** UpperCamelCase, what happened (e.g. NotRegistered). */
  reason: string;
  /** What the controller did or failed to do (e.g. Register). */
  action: string;
  /** The sentence a user reads; the typed reason code leads it. */
  note: string;
}

/** The API path of a namespace's events.k8s.io/v1 Events, or of one of them. */
export function eventPath(namespace: string, name?: string): string {
  return `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events${name ? `/${encodeURIComponent(name)}` : ''}`;
}

export interface EventSink {
  create(namespace: string, event: Record<string, unknown>): Promise<void>;
  patch(namespace: string, name: string, patch: Record<string, unknown>): Promise<void>;
}

export interface RecorderOptions {
  /** reportingController, e.g. switchyard.dev/interceptor. */
  controller: string;
  /** reportingInstance, e.g. the node or pod name. */
  instance: string;
  /** Same object, reason and note within this window make one Event with a count. Default 10 min. */
  windowMs?: number;
  burst?: number;
  perSecond?: number;
  now?: () => number;
  onError?: (e: Error) => void;
}

interface Entry {
  name: string;
  namespace: string;
  first: number;
  count: number;
  /** The count the API has. */
  sent: number;
  created: boolean;
  inFlight: boolean;
  retry?: NodeJS.Timeout;
}

/** MicroTime: RFC 3339 with microseconds, as the API requires for eventTime. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
const NOTE_LIMIT = 1024;

export class EventRecorder {
  private readonly entries = new Map<string, Entry>();
  private tokens: number;
  private refilled: number;
  private readonly now: () => number;

  constructor(
    private readonly sink: EventSink,
    private readonly opts: RecorderOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.tokens = opts.burst ?? 25;
    this.refilled = this.now();
  }

  private take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.opts.burst ?? 25, this.tokens + ((t - this.refilled) / 1000) * (this.opts.perSecond ?? 1));
    this.refilled = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Records one occurrence. Returns at once; the API calls run in the background. */
  record(spec: EventSpec): void {
    const t = this.now();
    const r = spec.regarding;
    const key = JSON.stringify([r.kind, r.namespace, r.name, r.uid, spec.reason, spec.note]);
    let e = this.entries.get(key);
    if (e && t - e.first > (this.opts.windowMs ?? 600_000)) {
      this.entries.delete(key);
      e = undefined;
    }
    if (!e) {
      const stem = r.name.slice(0, 200).replace(/[^a-z0-9.-]/g, '-');
      e = { name: `${stem}.${randomBytes(8).toString('hex')}`, namespace: r.namespace ?? 'default', first: t, count: 0, sent: 0, created: false, inFlight: false };
      this.entries.set(key, e);
      this.prune(t);
    }
    e.count++;
    this.flush(e, spec);
  }

  /** Sends what the API does not have yet, if a token allows and nothing is in flight for this Event. */
  private flush(e: Entry, spec: EventSpec): void {
    if (e.inFlight || e.sent === e.count) return;
    if (!this.take()) {
      // Out of tokens: try again in a second, so that the count is not left unsent.
      e.retry ??= setTimeout(() => {
        e.retry = undefined;
        this.flush(e, spec);
      }, 1000).unref();
      return;
    }
    const count = e.count;
    const at = microTime(this.now());
    e.inFlight = true;
    const call = e.created
      ? this.sink.patch(e.namespace, e.name, { series: { count, lastObservedTime: at } })
      : this.sink.create(e.namespace, {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name: e.name, namespace: e.namespace },
          eventTime: microTime(e.first),
          ...(count > 1 ? { series: { count, lastObservedTime: at } } : {}),
          reportingController: this.opts.controller,
          reportingInstance: this.opts.instance,
          action: spec.action,
          reason: spec.reason,
          regarding: spec.regarding,
          note: spec.note.length > NOTE_LIMIT ? `${spec.note.slice(0, NOTE_LIMIT - 1)}…` : spec.note,
          type: spec.type,
        });
    call.then(
      () => {
        e.created = true;
        e.sent = count;
        e.inFlight = false;
        this.flush(e, spec); // occurrences that came in meanwhile
      },
      (err: Error) => {
        e.inFlight = false;
        this.opts.onError?.(err);
      },
    );
  }

  /** Forgets entries whose window has passed, so the map stays bounded. */
  private prune(t: number): void {
    if (this.entries.size < 1000) return;
    for (const [k, e] of this.entries) if (t - e.first > (this.opts.windowMs ?? 600_000) && !e.inFlight) this.entries.delete(k);
  }
}
