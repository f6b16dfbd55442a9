// Plugin side of CNI: turns one invocation (env + stdin) into typed, validated arguments, calls the
// plugin's handler and prints the result or error. Seine's CNI binary starts on every pod event, so
// this module's import graph must stay small: no ajv (validators are precompiled), no logger.
import { attachmentEnv, type AttachmentEnv } from './args.js';
import { MIN_VERSION, REQUIRED_ENV } from './commands.js';
import { CniCode, CniError } from './errors.js';
import { convertResult } from './result.js';
import { gcAttachments, parseJson, resultProblems, validateNetConf } from './schema/validate.js';
import { MAX_STDIN_BYTES } from './shim-protocol.js';
import type { CniCommand, CniResult, GcAttachment, NetConf, VersionResult } from './types.js';
import { CNI_COMMANDS } from './types.js';
import { compareVersions, CURRENT_VERSION, requireVersion, SUPPORTED_VERSIONS } from './version.js';

export type SkelEnv = Readonly<Record<string, string | undefined>>;

interface Sink {
  write(chunk: string, cb?: (err?: Error | null) => void): unknown;
}

/** Where an invocation comes from and goes to; injectable for tests. */
export interface SkelIo {
  env: SkelEnv;
  stdin: string | Buffer | AsyncIterable<string | Buffer>;
  stdout: Sink;
  stderr?: Sink;
}

interface BaseArgs<C> {
  /** The config's version: results and errors are printed in it. */
  cniVersion: string;
  /** CNI_PATH split on ':' (for delegating to other plugins, e.g. IPAM). */
  path: string[];
  config: C;
  stdinData: string;
  env: SkelEnv;
}

/** ADD, DEL and CHECK: one attachment of a container to the network. */
export interface AttachmentArgs<C extends NetConf = NetConf> extends BaseArgs<C>, AttachmentEnv {
  command: 'ADD' | 'DEL' | 'CHECK';
  /** The previous result, converted to `cniVersion` (present for CHECK, for DEL after a cached ADD, and for chained ADDs). */
  prevResult?: CniResult;
}

export interface GcArgs<C extends NetConf = NetConf> extends BaseArgs<C> {
  command: 'GC';
  validAttachments: GcAttachment[];
}

export interface StatusArgs<C extends NetConf = NetConf> extends BaseArgs<C> {
  command: 'STATUS';
}

type Awaitable<T> = T | Promise<T>;

/** A thrown CniError is printed as is; anything else becomes code 999. */
export interface PluginHandlers<C extends NetConf = NetConf> {
  /** The result may be in any supported version: it is converted to the config's. */
  add(args: AttachmentArgs<C>): Awaitable<CniResult>;
  del(args: AttachmentArgs<C>): Awaitable<void>;
  check(args: AttachmentArgs<C>): Awaitable<void>;
  /** Absent: GC succeeds (nothing to collect). */
  gc?(args: GcArgs<C>): Awaitable<void>;
  /** Absent: STATUS succeeds (always ready). */
  status?(args: StatusArgs<C>): Awaitable<void>;
}

export interface PluginSpec<C extends NetConf = NetConf> {
  handlers: PluginHandlers<C>;
  /** Answered to VERSION and enforced on every config; default all of SUPPORTED_VERSIONS. */
  supportedVersions?: readonly string[];
  /** Printed on stderr when run without CNI_COMMAND, e.g. "Seine CNI plugin v0.1.0". */
  about?: string;
  /** Bound on stdin; more is code 5. Default 1 MiB. */
  maxStdinBytes?: number;
  /** Plugin-specific config checks after the generic ones; throw CniError (e.g. code 2 or 7). */
  parseConfig?(config: NetConf): C;
}

export const DEFAULT_MAX_STDIN_BYTES = MAX_STDIN_BYTES;


async function readStdin(stdin: SkelIo['stdin'], max: number): Promise<string> {
  const tooBig = () => new CniError(CniCode.IoFailure, 'configuration on stdin is too large', `more than ${max} bytes`);
  if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
    const buf = typeof stdin === 'string' ? Buffer.from(stdin) : stdin;
    if (buf.length > max) throw tooBig();
    return buf.toString('utf8');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of stdin) {
      const b = typeof c === 'string' ? Buffer.from(c) : c;
      size += b.length;
      if (size > max) throw tooBig();
      chunks.push(b);
    }
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw new CniError(CniCode.IoFailure, 'error reading stdin', (e as Error).message);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function write(sink: Sink, text: string): Promise<void> {
  return new Promise((resolve) => {
    sink.write(text, () => resolve());
  });
}

/** Splits CNI_PATH; empty entries are dropped. */
export function splitCniPath(path: string | undefined): string[] {
  return (path ?? '').split(':').filter(Boolean);
}

/** The command from the environment: code 4 when missing or unknown. */
function commandOf(env: SkelEnv): CniCommand {
  const cmd = env.CNI_COMMAND;
  if (!cmd) throw new CniError(CniCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!(CNI_COMMANDS as readonly string[]).includes(cmd)) throw new CniError(CniCode.InvalidEnvironment, `unknown CNI_COMMAND: ${cmd}`);
  return cmd as CniCommand;
}

type Outcome = { print?: unknown };

function newestOf(versions: readonly string[]): string {
  return [...versions].sort(compareVersions).at(-1) ?? CURRENT_VERSION;
}

async function execute<C extends NetConf>(spec: PluginSpec<C>, io: SkelIo, setVersion: (v: string) => void): Promise<Outcome> {
  const supported = spec.supportedVersions ?? SUPPORTED_VERSIONS;
  const env = io.env;
  const command = commandOf(env);
  const missing = REQUIRED_ENV[command].filter((name) => !env[name]);
  if (missing.length) throw new CniError(CniCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);

  if (command === 'VERSION') {
    // Stdin is not read: a runtime may leave it open, as libcni's skel assumes too.
    return { print: { cniVersion: newestOf(supported), supportedVersions: [...supported] } satisfies VersionResult };
  }

  const stdinData = await readStdin(io.stdin, spec.maxStdinBytes ?? DEFAULT_MAX_STDIN_BYTES);
  const raw = parseJson(stdinData, 'network configuration from stdin');
  // Known before validation, so that even a config error is answered in the config's version.
  const claimed = (raw as { cniVersion?: unknown } | null)?.cniVersion;
  if (typeof claimed === 'string') setVersion(claimed);
  const generic = validateNetConf(raw);
  const cniVersion = generic.cniVersion;

  const attachment = command === 'ADD' || command === 'DEL' || command === 'CHECK' ? attachmentEnv(env) : undefined;
  requireVersion(cniVersion, supported);
  const min = MIN_VERSION[command];
  if (min && compareVersions(cniVersion, min) < 0) {
    throw new CniError(CniCode.IncompatibleVersion, `config version does not allow ${command}`, `${command} needs ${min} or later, config is ${cniVersion}`);
  }
  const prevResult = generic.prevResult ? convertResult(generic.prevResult, cniVersion) : undefined;
  const config = spec.parseConfig ? spec.parseConfig(generic) : (generic as C);
  const base = { cniVersion, path: splitCniPath(env.CNI_PATH), config, stdinData, env };

  switch (command) {
    case 'GC':
      await spec.handlers.gc?.({ ...base, command, validAttachments: gcAttachments(generic) });
      return {};
    case 'STATUS':
      await spec.handlers.status?.({ ...base, command });
      return {};
    default: {
      const args: AttachmentArgs<C> = { ...base, command, ...attachment!, ...(prevResult ? { prevResult } : {}) };
      if (command === 'ADD') {
        const result = await spec.handlers.add(args);
        const problems = resultProblems(result);
        if (problems.length) throw new CniError(CniCode.Internal, 'plugin produced an invalid result', problems.join('; '));
        return { print: convertResult(result, cniVersion) };
      }
      await (command === 'DEL' ? spec.handlers.del(args) : spec.handlers.check(args));
      return {};
    }
  }
}

/**
 * Runs one invocation: prints the result (ADD, VERSION) or the error object on stdout and returns the
 * exit code (0, or 1 on error as libcni's skel does). Never throws.
 */
export async function dispatch<C extends NetConf>(spec: PluginSpec<C>, io: SkelIo): Promise<number> {
  let cniVersion: string | undefined;
  try {
    const out = await execute(spec, io, (v) => (cniVersion = v));
    if (out.print !== undefined) await write(io.stdout, `${JSON.stringify(out.print)}\n`);
    return 0;
  } catch (e) {
    const err = CniError.from(e);
    if (!io.env.CNI_COMMAND && spec.about && io.stderr) {
      await write(io.stderr, `${spec.about}\nCNI protocol versions supported: ${(spec.supportedVersions ?? SUPPORTED_VERSIONS).join(', ')}\n`);
    }
    if (!(e instanceof CniError) && e instanceof Error && io.stderr) await write(io.stderr, `${e.stack ?? e.message}\n`);
    const supported = spec.supportedVersions ?? SUPPORTED_VERSIONS;
    // In the config's version when it is one we speak, else in our newest.
    const version = cniVersion && supported.includes(cniVersion) ? cniVersion : newestOf(supported);
    await write(io.stdout, `${JSON.stringify(err.toJSON(version))}\n`);
    return 1;
  }
}

/** The main of a CNI plugin binary: dispatches on the process's env/stdin/stdout and exits. */
export async function pluginMain<C extends NetConf>(spec: PluginSpec<C>): Promise<never> {
  const code = await dispatch(spec, { env: process.env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
  process.exit(code);
}
