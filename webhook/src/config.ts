/** Injector configuration: what the sidecar looks like and the node-wide defaults. */
import * as fs from 'fs';
import { DEFAULT_INBOUND_PORT, DEFAULT_OUTBOUND_PORT, DEFAULT_SIDECAR_UID } from '../../api/interception';
import { SWITCHYARD_NAMESPACE } from '../../api/contract';

export type SidecarMode = 'native' | 'classic';

export interface Resources {
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
}

export interface InjectorConfig {
  /** Switchyard's own namespace: never injected, and excluded from the webhook. */
  ownNamespace: string;
  sidecar: {
    image: string;
    imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
    /** native: init container with restartPolicy Always (Kubernetes >= 1.29); classic: first app container. */
    mode: SidecarMode;
    outboundPort: number;
    inboundPort: number;
    adminPort: number;
    uid: number;
    resources: Resources;
  };
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  excludeOutboundCidrs: string[];
}

export const DEFAULT_CONFIG: InjectorConfig = {
  ownNamespace: SWITCHYARD_NAMESPACE,
  sidecar: {
    image: 'switchyard/proxy:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    mode: 'native',
    outboundPort: DEFAULT_OUTBOUND_PORT,
    inboundPort: DEFAULT_INBOUND_PORT,
    adminPort: 15021,
    uid: DEFAULT_SIDECAR_UID,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
  },
  excludeInboundPorts: [],
  excludeOutboundPorts: [],
  excludeOutboundCidrs: [],
};

/** The defaults, overridden by a JSON file (--config) whose sidecar settings merge over the default sidecar. */
export function loadConfig(file?: string): InjectorConfig {
  if (!file) return DEFAULT_CONFIG;
  return mergeConfig(JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<InjectorConfig>);
}

/** The defaults with a configuration's settings over them (the ConfigMap's injector.json, parsed). */
export function mergeConfig(patch: Partial<InjectorConfig>): InjectorConfig {
  return { ...DEFAULT_CONFIG, ...patch, sidecar: { ...DEFAULT_CONFIG.sidecar, ...(patch.sidecar ?? {}) } };
}
