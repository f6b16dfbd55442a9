// The wire contract between the seine-cni plugin (cmd/seine-cni, which repeats these constants) and the
// agent's CNI server, and the limits both ends apply to the same input.
import { CniCode, CniError } from './errors.js';
import { brief, hasControlCharacters } from './values.js';

/** The one endpoint: POST, JSON body CniInvocation, JSON reply CniReply (HTTP 200 for both outcomes). */
export const CNI_ENDPOINT = '/v1/cni';

/** Where the agent listens unless the network config's `cniSocket` says otherwise. */
export const DEFAULT_CNI_SOCKET = '/var/run/seine/cni.sock';

/**
 * How long the shim waits for the agent's answer unless the config's `cniTimeoutSeconds` says
 * otherwise. Longer than the server's own request timeout, so that a slow driver call comes back as
 * the server's CNI error rather than as the shim giving up.
 */
export const DEFAULT_SHIM_TIMEOUT_MS = 110_000;

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

/** Bound on the network configuration (stdin), for the shim, the agent and skel plugins alike. */
export const MAX_STDIN_BYTES = 1 << 20;

/** Bound on each forwarded CNI_* value: Linux's own bound on one environment string (MAX_ARG_STRLEN). */
export const MAX_ENV_VALUE_BYTES = 128 * 1024;

/**
 * The largest request body a shim sends: JSON escaping turns one byte into at most six (a control
 * character becomes \u00XX), so any stdin and env within the limits above fits, however it escapes.
 */
export const MAX_REQUEST_BODY_BYTES = 6 * (MAX_STDIN_BYTES + FORWARDED_ENV.length * MAX_ENV_VALUE_BYTES) + 4096;

/** Node fires a timer of more than 2^31-1 ms after 1 ms (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function invalidConfig(details: string): CniError {
  return new CniError(CniCode.InvalidNetworkConfig, 'invalid network configuration', details);
}

/**
 * A configured duration in seconds as a timer's milliseconds. Every config number that becomes a timer
 * goes through here: code 7 unless it is a positive number a timer can hold.
 */
export function timerMsFromSeconds(value: unknown, field: string): number {
  const ms = typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.ceil(value * 1000) : NaN;
  if (!(ms <= MAX_TIMER_MS)) throw invalidConfig(`${field}: must be a number of seconds above 0 and at most ${MAX_TIMER_MS / 1000} (got ${brief(value)})`);
  return ms;
}

/** The network config keys of the `seine` plugin itself. */
export interface SeinePluginConf {
  /** Agent socket; default DEFAULT_CNI_SOCKET. */
  cniSocket?: unknown;
  /** How long the shim waits for the agent; default DEFAULT_SHIM_TIMEOUT_MS. */
  cniTimeoutSeconds?: unknown;
}

/** Socket path and timeout from the network config; code 7 when unusable. The shim and the agent both check them. */
export function seinePluginSettings(conf: SeinePluginConf): { socketPath: string; timeoutMs: number } {
  const s = conf.cniSocket ?? DEFAULT_CNI_SOCKET;
  if (typeof s !== 'string' || !s.startsWith('/') || hasControlCharacters(s)) throw invalidConfig(`cniSocket: must be an absolute path without control characters (got ${brief(s)})`);
  const t = conf.cniTimeoutSeconds;
  return { socketPath: s, timeoutMs: t === undefined ? DEFAULT_SHIM_TIMEOUT_MS : timerMsFromSeconds(t, 'cniTimeoutSeconds') };
}
