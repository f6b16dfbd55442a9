// The wire contract between the seine-cni shim and the agent's CNI server. Dependency-free: the
// shim imports it on every pod event.

/** The one endpoint: POST, JSON body CniInvocation, JSON reply CniReply (HTTP 200 for both outcomes). */
export const CNI_ENDPOINT = '/v1/cni';

/** Where the agent listens unless the network config's `cniSocket` says otherwise. */
export const DEFAULT_CNI_SOCKET = '/var/run/seine/cni.sock';

/**
 * How long the shim waits for the agent's answer unless the config's `cniTimeoutSeconds` says
 * otherwise. Longer than the server's own request timeout, so that a slow driver call comes back as
 * the server's CNI error rather than as the shim giving up.
 */
export const DEFAULT_SHIM_TIMEOUT_MS = 55_000;

/** The CNI_* variables the shim passes on (CNI_COMMAND travels as `command`). */
export const FORWARDED_ENV = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

export type ForwardedEnvName = (typeof FORWARDED_ENV)[number];

/** One raw CNI invocation, exactly as the runtime made it. */
export interface CniInvocation {
  command: string;
  env: Partial<Record<ForwardedEnvName, string>>;
  /** The network configuration as the runtime wrote it on stdin, unparsed. */
  stdin: string;
}

/** The agent's answer: `result` for ADD (and VERSION), `error` for a failure, neither for other successes. */
export interface CniReply {
  result?: unknown;
  error?: { cniVersion?: string; code: number; msg: string; details?: string };
}

/** Bound on stdin, as skel's default. */
export const MAX_STDIN_BYTES = 1 << 20;
