// Runs one CNI plugin binary the way libcni's invoke package does: look it up in CNI_PATH, pass the
// CNI_* env and the config on stdin, decode its result or error.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CommandError, run } from '../host/exec.js';
import { CniCode, CniError } from './errors.js';
import { parseResult } from './result.js';
import { validateVersionResult } from './schema/validate.js';
import type { CniCommand, CniResult, VersionResult } from './types.js';
import { CURRENT_VERSION } from './version.js';

/** How an invocation failed. */
export type PluginFailure =
  /** No executable of that name in any CNI_PATH directory. */
  | 'not-found'
  /** The plugin exited non-zero and printed a CNI error object (see `cniError`). */
  | 'plugin-error'
  /** Non-zero exit or signal without a decodable error, or it could not be started. */
  | 'crashed'
  /** Exit 0 but the output is not what the command returns (garbage, invalid result). */
  | 'bad-output'
  | 'timeout';

const EXCERPT = 400;

function excerpt(s: string): string {
  const t = s.trim();
  return t.length > EXCERPT ? `${t.slice(0, EXCERPT)}…` : t;
}

/** A failed plugin invocation, naming the plugin and command. */
export class PluginError extends Error {
  constructor(
    readonly kind: PluginFailure,
    readonly plugin: string,
    readonly command: CniCommand,
    detail: string,
    readonly extra: {
      pluginPath?: string;
      cniError?: CniError;
      exitCode?: number | null;
      signal?: NodeJS.Signals | null;
      stdout?: string;
      stderr?: string;
    } = {},
  ) {
    super(`plugin type="${plugin}" failed (${command.toLowerCase()}): ${detail}`, extra.cniError ? { cause: extra.cniError } : undefined);
    this.name = 'PluginError';
  }

  /** The error object the plugin printed, for 'plugin-error'. */
  get cniError(): CniError | undefined {
    return this.extra.cniError;
  }

  get stderr(): string {
    return this.extra.stderr ?? '';
  }

  /** What a plugin delegating to this one reports upward: the delegate's own error, else code 999. */
  toCniError(): CniError {
    return this.extra.cniError ?? new CniError(CniCode.Internal, this.message);
  }
}

export interface ExecOptions {
  /** Directories searched for the plugin, in order; also passed as CNI_PATH. */
  cniPath: readonly string[];
  /** Run the plugin process inside this network namespace (`nsenter --net=PATH`), e.g. a lab node's. */
  pluginNetns?: string;
  /** Kill the plugin after this long. Default 60 s. */
  timeoutMs?: number;
  /** Extra environment for the plugin, over this process's own (whose CNI_* variables are dropped). */
  env?: Readonly<Record<string, string>>;
}

/** One invocation; what a RuntimeConf plus command amounts to. */
export interface PluginRequest {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS, already built. */
  args?: string;
  /** Sent as JSON on stdin. */
  config: object;
}

/** As kubelet's runtime request timeout (2 min) bounds containerd's network setup of a sandbox. */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 120_000;

/** Absolute path of the plugin executable `type` in `dirs`; PluginError 'not-found' otherwise. */
export async function findPlugin(type: string, dirs: readonly string[], command: CniCommand = 'ADD'): Promise<string> {
  if (!type || type.includes('/') || type === '.' || type === '..') {
    throw new PluginError('not-found', type, command, 'plugin type must be a file name without "/"');
  }
  for (const dir of dirs) {
    const candidate = join(dir, type);
    try {
      if ((await stat(candidate)).isFile()) {
        await access(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      /* not here (or not executable): try the next directory */
    }
  }
  throw new PluginError('not-found', type, command, `no executable "${type}" in CNI_PATH [${dirs.join(':')}]`);
}

function pluginEnv(req: PluginRequest, opts: ExecOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_')) env[k] = v;
  Object.assign(env, opts.env);
  env.CNI_COMMAND = req.command;
  env.CNI_PATH = opts.cniPath.join(':');
  if (req.containerId !== undefined) env.CNI_CONTAINERID = req.containerId;
  if (req.netns !== undefined) env.CNI_NETNS = req.netns;
  if (req.ifname !== undefined) env.CNI_IFNAME = req.ifname;
  if (req.args !== undefined) env.CNI_ARGS = req.args;
  return env;
}

/** Runs the plugin to completion and returns its stdout; any failure is a PluginError. */
export async function execPlugin(type: string, req: PluginRequest, opts: ExecOptions): Promise<string> {
  const path = await findPlugin(type, opts.cniPath, req.command);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
  try {
    const { stdout } = await run(path, [], {
      input: JSON.stringify(req.config),
      env: pluginEnv(req, opts),
      netns: opts.pluginNetns,
      timeoutMs,
    });
    return stdout;
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    const facts = { pluginPath: path, exitCode: e.exitCode, signal: e.signal, stdout: e.stdout, stderr: e.stderr };
    if (e.signal === 'SIGKILL' && e.stderr.startsWith('timed out after')) {
      throw new PluginError('timeout', type, req.command, `no answer within ${timeoutMs} ms`, facts);
    }
    let decoded: unknown;
    try {
      decoded = JSON.parse(e.stdout);
    } catch {
      decoded = undefined;
    }
    const cniError = CniError.fromJSON(decoded);
    if (cniError) {
      throw new PluginError('plugin-error', type, req.command, `${cniError.message} (code ${cniError.code})`, { ...facts, cniError });
    }
    const how = e.signal ? `killed by ${e.signal}` : e.exitCode === null ? 'could not be started' : `exit ${e.exitCode}`;
    const said = [e.stdout.trim() && `stdout: ${excerpt(e.stdout)}`, e.stderr.trim() && `stderr: ${excerpt(e.stderr)}`].filter(Boolean).join('; ');
    throw new PluginError('crashed', type, req.command, `${how} without a CNI error${said ? ` (${said})` : ''}`, facts);
  }
}

/** ADD: the plugin's result, validated and converted to `cniVersion` (the config's). */
export async function invokeAdd(type: string, req: Omit<PluginRequest, 'command'>, cniVersion: string, opts: ExecOptions): Promise<CniResult> {
  const stdout = await execPlugin(type, { ...req, command: 'ADD' }, opts);
  let decoded: unknown;
  try {
    decoded = JSON.parse(stdout);
  } catch {
    throw new PluginError('bad-output', type, 'ADD', `result is not JSON: ${JSON.stringify(excerpt(stdout))}`, { stdout });
  }
  try {
    return parseResult(decoded, { toVersion: cniVersion, code: CniCode.DecodeFailure, msg: 'invalid result' });
  } catch (e) {
    throw new PluginError('bad-output', type, 'ADD', (e as Error).message, { stdout });
  }
}

/** DEL, CHECK, GC or STATUS: success is the exit status; stdout is ignored as libcni does. */
export async function invokeNoResult(type: string, req: PluginRequest, opts: ExecOptions): Promise<void> {
  await execPlugin(type, req, opts);
}

/** VERSION: the spec versions the plugin supports. */
export async function pluginVersionInfo(type: string, opts: ExecOptions): Promise<VersionResult> {
  const stdout = await execPlugin(type, { command: 'VERSION', config: { cniVersion: CURRENT_VERSION } }, opts);
  try {
    return validateVersionResult(JSON.parse(stdout));
  } catch (e) {
    const why = e instanceof SyntaxError ? `answer is not JSON: ${JSON.stringify(excerpt(stdout))}` : (e as Error).message;
    throw new PluginError('bad-output', type, 'VERSION', why, { stdout });
  }
}
