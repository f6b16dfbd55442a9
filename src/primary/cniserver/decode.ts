// A raw invocation (command, CNI_* env, stdin text) to a typed, validated request, with the same
// checks and error codes as a plugin built on skel would apply, and the same limits as the shim.
import { attachmentEnv } from '../../cni/args.js';
import { MIN_VERSION, REQUIRED_ENV } from '../../cni/commands.js';
import { CniCode, CniError } from '../../cni/errors.js';
import { convertResult } from '../../cni/result.js';
import { gcAttachments, parseJson, validateNetConf } from '../../cni/schema/validate.js';
import { FORWARDED_ENV, MAX_ENV_VALUE_BYTES, MAX_STDIN_BYTES, seinePluginSettings, type CniInvocation } from '../../cni/shim-protocol.js';
import { splitCniPath } from '../../cni/skel.js';
import { CNI_COMMANDS, type CniCommand, type CniResult } from '../../cni/types.js';
import { brief } from '../../cni/values.js';
import { compareVersions, CURRENT_VERSION, requireVersion, SUPPORTED_VERSIONS } from '../../cni/version.js';
import type { CniRequest, GcRequest, PodIdentity, StatusRequest } from './types.js';

/** CNI_ARGS keys the server understands; others need IgnoreUnknown (as libcni's LoadArgs). */
export const K8S_ARG_KEYS = ['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'] as const;

export type Decoded =
  | { command: 'VERSION' }
  | { command: 'ADD' | 'DEL' | 'CHECK'; req: Omit<CniRequest, 'signal'> }
  | { command: 'GC'; req: Omit<GcRequest, 'signal'> }
  | { command: 'STATUS'; req: Omit<StatusRequest, 'signal'> };

export interface DecodeOptions {
  /** CNI_ARGS keys accepted beside the K8S_* ones without IgnoreUnknown. */
  extraArgKeys?: readonly string[];
  /** Chained mode: Seine runs after the primary CNI, whose result comes as prevResult on ADD. */
  chained?: boolean;
}

/** Go's strconv.ParseBool, which libcni uses for IgnoreUnknown. */
function parseBool(key: string, v: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new CniError(CniCode.InvalidEnvironment, 'invalid CNI_ARGS value', `${key}=${JSON.stringify(v)} is not a boolean`);
}

/**
 * The pod named by CNI_ARGS; code 4 for unknown keys without IgnoreUnknown. Without both
 * K8S_POD_NAMESPACE and K8S_POD_NAME (podman passes only the name, other runtimes nothing) the container
 * is not a Kubernetes pod: undefined, and it gets the primary network without pod-specific features.
 */
export function podFromArgs(pairs: ReadonlyArray<readonly [string, string]>, opts: DecodeOptions = {}): PodIdentity | undefined {
  const rec = Object.fromEntries(pairs) as Record<string, string>;
  const ignoreUnknown = rec.IgnoreUnknown !== undefined && parseBool('IgnoreUnknown', rec.IgnoreUnknown);
  if (!ignoreUnknown) {
    const known = new Set<string>(['IgnoreUnknown', ...K8S_ARG_KEYS, ...(opts.extraArgKeys ?? [])]);
    const unknown = pairs.map(([k]) => k).filter((k) => !known.has(k));
    if (unknown.length) throw new CniError(CniCode.InvalidEnvironment, 'unknown CNI_ARGS keys', `${unknown.join(', ')} (set IgnoreUnknown=1 to pass keys this plugin does not use)`);
  }
  const namespace = rec.K8S_POD_NAMESPACE;
  const name = rec.K8S_POD_NAME;
  if (!namespace || !name) return undefined;
  return {
    namespace,
    name,
    ...(rec.K8S_POD_INFRA_CONTAINER_ID ? { infraContainerId: rec.K8S_POD_INFRA_CONTAINER_ID } : {}),
    ...(rec.K8S_POD_UID ? { uid: rec.K8S_POD_UID } : {}),
  };
}

/**
 * On ADD a prevResult comes from a plugin listed before Seine, which has already set the container up.
 * Unless the agent runs chained, Seine makes the container's interface itself: code 2 (the field it does
 * not support), before anything is allocated.
 */
function refuseChainedAdd(prev: CniResult): never {
  const made = [...(prev.interfaces ?? []).map((i) => `interface ${brief(i.name)}`), ...(prev.ips ?? []).map((ip) => `address ${brief(ip.address)}`)];
  throw new CniError(
    CniCode.UnsupportedField,
    'prevResult from another plugin is not supported in this mode',
    `prevResult (${made.length ? made.join(', ') : 'empty'}): seine must be the first plugin of its network configuration list unless its agent runs with mode: chained`,
  );
}

/** The version errors for this invocation are reported in: the config's when supported, else the newest. */
export function replyVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    if (typeof v === 'string' && SUPPORTED_VERSIONS.includes(v)) return v;
  } catch {
    /* undecodable stdin: reported in the newest version */
  }
  return CURRENT_VERSION;
}

/** Throws CniError with the code the CNI spec (and libcni's skel) gives each kind of bad input. */
export function decodeInvocation(inv: CniInvocation, opts: DecodeOptions = {}): Decoded {
  const cmd = inv.command;
  if (!cmd) throw new CniError(CniCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!(CNI_COMMANDS as readonly string[]).includes(cmd)) throw new CniError(CniCode.InvalidEnvironment, `unknown CNI_COMMAND: ${cmd}`);
  const command = cmd as CniCommand;
  const env = inv.env;
  const missing = REQUIRED_ENV[command].filter((name) => !env[name as keyof typeof env]);
  if (missing.length) throw new CniError(CniCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  if (command === 'VERSION') return { command };

  // The shim's limits, for a request that did not come through a shim.
  for (const name of FORWARDED_ENV) {
    if (Buffer.byteLength(env[name] ?? '') > MAX_ENV_VALUE_BYTES) throw new CniError(CniCode.InvalidEnvironment, `${name} is too long`, `more than ${MAX_ENV_VALUE_BYTES} bytes`);
  }
  if (Buffer.byteLength(inv.stdin) > MAX_STDIN_BYTES) throw new CniError(CniCode.IoFailure, 'configuration on stdin is too large', `more than ${MAX_STDIN_BYTES} bytes`);
  const config = validateNetConf(parseJson(inv.stdin, 'network configuration from stdin'));
  seinePluginSettings({ cniSocket: config.cniSocket, cniTimeoutSeconds: config.cniTimeoutSeconds });
  const cniVersion = config.cniVersion;
  const attachment = command === 'ADD' || command === 'DEL' || command === 'CHECK' ? attachmentEnv(env) : undefined;
  requireVersion(cniVersion);
  const min = MIN_VERSION[command];
  if (min && compareVersions(cniVersion, min) < 0) {
    throw new CniError(CniCode.IncompatibleVersion, `config version does not allow ${command}`, `${command} needs ${min} or later, config is ${cniVersion}`);
  }
  const base = { cniVersion, config, cniPath: splitCniPath(env.CNI_PATH) };
  if (command === 'GC') return { command, req: { ...base, command, validAttachments: gcAttachments(config) } };
  if (command === 'STATUS') return { command, req: { ...base, command } };

  const pod = podFromArgs(attachment!.argPairs, opts);
  const prevResult = config.prevResult ? convertResult(config.prevResult, cniVersion) : undefined;
  if (command === 'ADD' && prevResult && !opts.chained) refuseChainedAdd(prevResult);
  const rc = config.runtimeConfig;
  return {
    command,
    req: {
      ...base,
      command,
      ...attachment!,
      ...(pod ? { pod } : {}),
      ...(prevResult ? { prevResult } : {}),
      capabilityArgs: rc && typeof rc === 'object' && !Array.isArray(rc) ? { ...rc } : {},
    },
  };
}
