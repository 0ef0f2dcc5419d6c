/**
 * The node agent's unix-socket API as switchyard-cni (Go) and the CLI speak
 * it: where the socket is, the CNI paths, the request and reply bodies, and
 * the plugin-specific CNI error codes. api/agent-wire.json holds the same
 * facts for the Go side; api/agent-wire.test.ts and
 * interceptor/cni/wire_test.go hold both sides to that file.
 */

/** The agent's socketPath default, and the plugin's agentSocket default. */
export const DEFAULT_AGENT_SOCKET = '/run/switchyard/agent.sock';

export const CNI_PATHS = { add: '/v1/cni/add', del: '/v1/cni/del', check: '/v1/cni/check' } as const;

/** CNI error codes 100 and up are the plugin's own (the spec keeps 0-99). */
export const CNI_ERRORS = {
  /** switchyard-cni: the agent's socket did not answer (failOpen applies). */
  agentUnreachable: 100,
  /** switchyard-cni: the agent answered with an error it did not code, or an unreadable reply. */
  agentRefused: 101,
  registrationFailed: 102,
  invalidAnnotations: 103,
  checkFailed: 104,
} as const;

/** POST body of /v1/cni/{add,del,check}. */
export interface CniRequest {
  cniVersion?: string;
  containerId: string;
  netns: string;
  ifname: string;
  podNamespace: string;
  podName: string;
  podUid?: string;
  ips: string[];
}

/** 200 reply. */
export interface CniReply {
  registered: boolean;
  reason: string;
  netnsCookie?: string;
}

/** Non-200 reply; the plugin prints it as a CNI error with this code. */
export interface CniErrorReply {
  code: number;
  message: string;
  details?: string;
}
