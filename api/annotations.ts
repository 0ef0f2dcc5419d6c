/**
 * The interception settings as pod annotations: what the webhook writes and
 * the agent reads back, with the parsers both use. Every malformed value is
 * reported with the annotation's name and the expected form.
 */
import { parseCidr } from './addr';
import { ANNOTATIONS } from './contract';
import { Interception } from './interception';

export class AnnotationError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'AnnotationError';
  }
}

export function parsePorts(key: string, raw: string, problems: string[]): number[] {
  const out: number[] = [];
  for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const n = Number(part);
    if (!/^\d+$/.test(part) || n < 1 || n > 65535) {
      problems.push(`annotation ${key}: '${part}' is not a port; expected a comma-separated list of ports 1-65535, e.g. "9090,9091"`);
    } else out.push(n);
  }
  return out;
}

export function parseCidrs(key: string, raw: string, problems: string[]): string[] {
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

/** The sockmap opt-out: absent or "true" is on, "false" is off. */
export function parseSockmap(raw: string | undefined, problems: string[]): boolean {
  if (raw === undefined || raw === 'true') return true;
  if (raw === 'false') return false;
  problems.push(`annotation ${ANNOTATIONS.sockmap}: '${raw}' must be "true" or "false"`);
  return true;
}

/** The annotations the interceptor reads, as strings. The sockmap opt-out is written only when set. */
export function interceptionAnnotations(i: Interception): Record<string, string> {
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
export function parseInterceptionAnnotations(annotations: Record<string, string>): Interception {
  const problems: string[] = [];
  const num = (k: string) => {
    const v = annotations[k];
    if (v === undefined || !/^\d+$/.test(v)) {
      problems.push(`annotation ${k} is ${v === undefined ? 'missing' : `'${v}'`}; expected a number`);
      return 0;
    }
    return Number(v);
  };
  const result: Interception = {
    outboundPort: num(ANNOTATIONS.outboundPort),
    inboundPort: num(ANNOTATIONS.inboundPort),
    sidecarUid: num(ANNOTATIONS.sidecarUid),
    excludeInboundPorts: parsePorts(ANNOTATIONS.excludeInboundPorts, annotations[ANNOTATIONS.excludeInboundPorts] ?? '', problems),
    excludeOutboundPorts: parsePorts(ANNOTATIONS.excludeOutboundPorts, annotations[ANNOTATIONS.excludeOutboundPorts] ?? '', problems),
    excludeOutboundCidrs: parseCidrs(ANNOTATIONS.excludeOutboundCidrs, annotations[ANNOTATIONS.excludeOutboundCidrs] ?? '', problems),
  };
  if (!parseSockmap(annotations[ANNOTATIONS.sockmap], problems)) result.sockmap = false;
  if (problems.length) throw new AnnotationError(problems);
  return result;
}
