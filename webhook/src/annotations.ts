/**
 * Reading a pod's Switchyard annotations into validated settings. Every
 * malformed value is reported with the annotation's name and the expected
 * form, and the result is checked with the interceptor's own validator, so
 * the webhook never writes settings that the node would reject.
 */
import { ConfigError, validateInterception } from '../../interceptor/src/dataplane/config';
import { parseCidr } from '../../interceptor/src/dataplane/addr';
import { ANNOTATIONS, InterceptionAnnotations, SIDECAR_ANNOTATIONS } from './contract';
import { InjectorConfig, Resources, SidecarMode } from './config';

export class AnnotationError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'AnnotationError';
  }
}

const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const IMAGE = /^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/;

function ports(key: string, raw: string, problems: string[]): number[] {
  const out: number[] = [];
  for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const n = Number(part);
    if (!/^\d+$/.test(part) || n < 1 || n > 65535) {
      problems.push(`annotation ${key}: '${part}' is not a port; expected a comma-separated list of ports 1-65535, e.g. "9090,9091"`);
    } else out.push(n);
  }
  return out;
}

function cidrs(key: string, raw: string, problems: string[]): string[] {
  const out: string[] = [];
  for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    try {
      parseCidr(part);
      out.push(part);
    } catch {
      problems.push(`annotation ${key}: '${part}' is not a CIDR; expected a comma-separated list like "10.96.0.0/12,fd00::/8"`);
    }
  }
  return out;
}

const uniqueSorted = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);

/** The sockmap opt-out: absent or "true" is on, "false" is off. */
function sockmap(raw: string | undefined, problems: string[]): boolean {
  if (raw === undefined || raw === 'true') return true;
  if (raw === 'false') return false;
  problems.push(`annotation ${ANNOTATIONS.sockmap}: '${raw}' must be "true" or "false"`);
  return true;
}

export interface PodSettings {
  interception: InterceptionAnnotations;
  image: string;
  mode: SidecarMode;
  resources: Resources;
}

/** The settings for one pod: config defaults, overridden by the pod's annotations. */
export function podSettings(annotations: Record<string, string>, config: InjectorConfig): PodSettings {
  const problems: string[] = [];
  const a = (k: string) => annotations[k];
  const sc = config.sidecar;

  const inbound = a(ANNOTATIONS.excludeInboundPorts) !== undefined
    ? ports(ANNOTATIONS.excludeInboundPorts, a(ANNOTATIONS.excludeInboundPorts), problems)
    : config.excludeInboundPorts;
  const outbound = a(ANNOTATIONS.excludeOutboundPorts) !== undefined
    ? ports(ANNOTATIONS.excludeOutboundPorts, a(ANNOTATIONS.excludeOutboundPorts), problems)
    : config.excludeOutboundPorts;
  const outCidrs = a(ANNOTATIONS.excludeOutboundCidrs) !== undefined
    ? cidrs(ANNOTATIONS.excludeOutboundCidrs, a(ANNOTATIONS.excludeOutboundCidrs), problems)
    : config.excludeOutboundCidrs;

  const image = a(SIDECAR_ANNOTATIONS.image) ?? sc.image;
  if (!IMAGE.test(image)) problems.push(`annotation ${SIDECAR_ANNOTATIONS.image}: '${image}' is not an image reference, e.g. "registry.example/switchyard/proxy:0.1.0"`);

  const mode = (a(SIDECAR_ANNOTATIONS.mode) ?? sc.mode) as SidecarMode;
  if (mode !== 'native' && mode !== 'classic') problems.push(`annotation ${SIDECAR_ANNOTATIONS.mode}: '${mode}' is not a mode; expected "native" or "classic"`);

  const resources: Resources = JSON.parse(JSON.stringify(sc.resources));
  const quantity = (key: string, set: (q: string) => void) => {
    const v = a(key);
    if (v === undefined) return;
    if (!QUANTITY.test(v)) problems.push(`annotation ${key}: '${v}' is not a resource quantity, e.g. "100m" or "64Mi"`);
    else set(v);
  };
  quantity(SIDECAR_ANNOTATIONS.cpuRequest, (q) => ((resources.requests ??= {}).cpu = q));
  quantity(SIDECAR_ANNOTATIONS.memoryRequest, (q) => ((resources.requests ??= {}).memory = q));
  quantity(SIDECAR_ANNOTATIONS.cpuLimit, (q) => ((resources.limits ??= {}).cpu = q));
  quantity(SIDECAR_ANNOTATIONS.memoryLimit, (q) => ((resources.limits ??= {}).memory = q));

  // The admin port answers kubelet probes: it must reach the sidecar directly.
  const interception: InterceptionAnnotations = {
    outboundPort: sc.outboundPort,
    inboundPort: sc.inboundPort,
    sidecarUid: sc.uid,
    excludeInboundPorts: uniqueSorted([...inbound, sc.adminPort]),
    excludeOutboundPorts: uniqueSorted(outbound),
    excludeOutboundCidrs: [...new Set(outCidrs)],
  };
  if (!sockmap(a(ANNOTATIONS.sockmap), problems)) interception.sockmap = false;
  if (problems.length === 0) {
    try {
      validateInterception(interception);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems.map((p) => `interception settings from annotations: ${p}`));
    }
  }
  if (problems.length) throw new AnnotationError(problems);
  return { interception, image, mode, resources };
}

/** The annotations the interceptor reads, as strings. The sockmap opt-out is written only when set. */
export function interceptionAnnotations(i: InterceptionAnnotations): Record<string, string> {
  return {
    [ANNOTATIONS.outboundPort]: String(i.outboundPort),
    [ANNOTATIONS.inboundPort]: String(i.inboundPort),
    [ANNOTATIONS.sidecarUid]: String(i.sidecarUid),
    [ANNOTATIONS.excludeInboundPorts]: i.excludeInboundPorts.join(','),
    [ANNOTATIONS.excludeOutboundPorts]: i.excludeOutboundPorts.join(','),
    [ANNOTATIONS.excludeOutboundCidrs]: i.excludeOutboundCidrs.join(','),
    ...(i.sockmap === false ? { [ANNOTATIONS.sockmap]: 'false' } : {}),
  };
}

/** The interceptor's side: annotations of an injected pod back into settings. Throws AnnotationError. */
export function parseInterceptionAnnotations(annotations: Record<string, string>): InterceptionAnnotations {
  const problems: string[] = [];
  const num = (k: string) => {
    const v = annotations[k];
    if (v === undefined || !/^\d+$/.test(v)) {
      problems.push(`annotation ${k} is ${v === undefined ? 'missing' : `'${v}'`}; expected a number`);
      return 0;
    }
    return Number(v);
  };
  const result: InterceptionAnnotations = {
    outboundPort: num(ANNOTATIONS.outboundPort),
    inboundPort: num(ANNOTATIONS.inboundPort),
    sidecarUid: num(ANNOTATIONS.sidecarUid),
    excludeInboundPorts: ports(ANNOTATIONS.excludeInboundPorts, annotations[ANNOTATIONS.excludeInboundPorts] ?? '', problems),
    excludeOutboundPorts: ports(ANNOTATIONS.excludeOutboundPorts, annotations[ANNOTATIONS.excludeOutboundPorts] ?? '', problems),
    excludeOutboundCidrs: cidrs(ANNOTATIONS.excludeOutboundCidrs, annotations[ANNOTATIONS.excludeOutboundCidrs] ?? '', problems),
  };
  if (!sockmap(annotations[ANNOTATIONS.sockmap], problems)) result.sockmap = false;
  if (problems.length) throw new AnnotationError(problems);
  return result;
}
