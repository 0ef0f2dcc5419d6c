/**
 * Reading a pod's Switchyard annotations into validated settings: the
 * sidecar's image, mode and resources, and the interception settings
 * (api/annotations.ts parses those). The result is checked with the same
 * validator the node uses, so the webhook never writes settings that the
 * node would reject.
 */
import { AnnotationError, parseCidrs, parsePorts, parseSockmap } from '../../api/annotations';
import { ANNOTATIONS, SIDECAR_ANNOTATIONS } from '../../api/contract';
import { ConfigError, Interception, validateInterception } from '../../api/interception';
import { InjectorConfig, Resources, SidecarMode } from './config';


const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const IMAGE = /^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/;

const uniqueSorted = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);

export interface PodSettings {
  interception: Interception;
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
    ? parsePorts(ANNOTATIONS.excludeInboundPorts, a(ANNOTATIONS.excludeInboundPorts), problems)
    : config.excludeInboundPorts;
  const outbound = a(ANNOTATIONS.excludeOutboundPorts) !== undefined
    ? parsePorts(ANNOTATIONS.excludeOutboundPorts, a(ANNOTATIONS.excludeOutboundPorts), problems)
    : config.excludeOutboundPorts;
  const outCidrs = a(ANNOTATIONS.excludeOutboundCidrs) !== undefined
    ? parseCidrs(ANNOTATIONS.excludeOutboundCidrs, a(ANNOTATIONS.excludeOutboundCidrs), problems)
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
  const interception: Interception = {
    outboundPort: sc.outboundPort,
    inboundPort: sc.inboundPort,
    sidecarUid: sc.uid,
    excludeInboundPorts: uniqueSorted([...inbound, sc.adminPort]),
    excludeOutboundPorts: uniqueSorted(outbound),
    excludeOutboundCidrs: [...new Set(outCidrs)],
  };
  if (!parseSockmap(a(ANNOTATIONS.sockmap), problems)) interception.sockmap = false;
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

