/** Prometheus metrics for the webhook, on their own registry (one per server). */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class WebhookMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'switchyard_webhook_requests_total',
    help: 'Admission requests by decision (inject, skip, deny, error) and reason.',
    labelNames: ['decision', 'reason'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'switchyard_webhook_request_duration_seconds',
    help: 'Time from request body parsed to response written.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly certReloads = new Counter({
    name: 'switchyard_webhook_certificate_reloads_total',
    help: 'Serving certificate reloads by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
