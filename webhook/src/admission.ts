/**
 * admission.k8s.io/v1 AdmissionReview in, AdmissionReview out. Pure: the
 * server passes the parsed body and a namespace-label lookup, and gets back
 * the response body plus a record for the log line and metrics.
 */
import { InjectorConfig } from './config';
import { injectPod, ownerDisplay, podDisplayName, PodLike } from './inject';
import { Decision, decision } from './reasons';
import { podShapeProblem } from './shape';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  resource?: { group?: string; version?: string; resource?: string };
  subResource?: string;
  namespace?: string;
  operation?: string;
  dryRun?: boolean;
  object?: unknown;
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  status?: { code: number; message: string };
}

/** A request the server must refuse with 400, with the reason. */
export class BadReview extends Error {}

export interface ReviewOutcome {
  review: AdmissionReview;
  decision: Decision;
  namespace: string;
  pod: string;
  owner: string;
  /** The pod as submitted, for Events about it (undefined for requests that are not about a pod). */
  object?: PodLike;
  dryRun: boolean;
  patchBytes: number;
}

export type NamespaceLabels = (namespace: string) => Record<string, string> | undefined;

/** Throws BadReview when the body is not a usable AdmissionReview. */
export function parseReview(body: unknown): AdmissionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadReview('the body is not a JSON object');
  const r = body as Partial<AdmissionReview>;
  if (r.kind !== 'AdmissionReview') throw new BadReview(`kind is ${JSON.stringify(r.kind)}, expected "AdmissionReview"`);
  if (r.apiVersion !== ADMISSION_API_VERSION) throw new BadReview(`apiVersion is ${JSON.stringify(r.apiVersion)}, expected "${ADMISSION_API_VERSION}"`);
  const req = r.request;
  if (typeof req !== 'object' || req === null) throw new BadReview('request is missing');
  if (typeof req.uid !== 'string' || req.uid === '') throw new BadReview('request.uid is missing');
  return req;
}

export function review(body: unknown, namespaceLabels: NamespaceLabels, config: InjectorConfig): ReviewOutcome {
  const req = parseReview(body);
  const respond = (d: Decision, namespace: string, pod: PodLike | undefined, patch?: string): ReviewOutcome => {
    const response: AdmissionResponse = { uid: req.uid, allowed: d.action !== 'deny' };
    if (d.action === 'deny') response.status = { code: 400, message: d.message };
    if (patch) Object.assign(response, { patchType: 'JSONPatch', patch });
    return {
      review: { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response },
      decision: d,
      namespace,
      pod: pod ? podDisplayName(pod) : '-',
      owner: pod ? ownerDisplay(pod) : '-',
      object: pod,
      dryRun: req.dryRun === true,
      patchBytes: patch ? Buffer.byteLength(patch, 'base64') : 0,
    };
  };

  const isPod = req.kind?.kind === 'Pod' && (req.kind.group ?? '') === '' && !req.subResource;
  if (!isPod) return respond(decision('skip', 'not-a-pod', `${req.kind?.kind ?? 'unknown kind'}`), req.namespace ?? '-', undefined);
  const pod = req.object as PodLike | undefined;
  if (typeof pod !== 'object' || pod === null) throw new BadReview('request.object is missing for a Pod request');
  const namespace = (typeof pod.metadata?.namespace === 'string' && pod.metadata.namespace) || req.namespace || '';
  if (req.operation !== 'CREATE') return respond(decision('skip', 'not-a-create', req.operation), namespace, pod);
  const problem = podShapeProblem(pod);
  if (problem) throw new BadReview(problem);

  const result = injectPod(pod, { namespace, labels: namespaceLabels(namespace) }, config);
  const patch = result.patch.length ? Buffer.from(JSON.stringify(result.patch)).toString('base64') : undefined;
  return respond(result.decision, namespace, pod, patch);
}
