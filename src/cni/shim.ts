// The seine-cni binary: what container runtimes execute for every pod network event. It answers
// VERSION itself and forwards everything else, unparsed, to the node agent's CNI server. Runs once per
// event, so it imports node built-ins and tiny local modules only (no ajv, no logger).
import { readSync, writeSync } from 'node:fs';
import { CniCode, CniError } from './errors.js';
import { HttpConnectionError, postJson, type HttpReply } from './shim-http.js';
import { CNI_ENDPOINT, FORWARDED_ENV, MAX_ENV_VALUE_BYTES, MAX_STDIN_BYTES, seinePluginSettings, type CniInvocation, type CniReply, type SeinePluginConf } from './shim-protocol.js';
import { CNI_COMMANDS, type CniCommand, type VersionResult } from './types.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from './version.js';

export const ABOUT = 'Seine CNI plugin (forwards to the seine agent on this node)';

interface Sink {
  write(chunk: string, cb?: (err?: Error | null) => void): unknown;
}

export interface ShimIo {
  env: Readonly<Record<string, string | undefined>>;
  /** 'fd0': read file descriptor 0 directly (the process's stdin, without building a stream). */
  stdin: AsyncIterable<string | Buffer> | 'fd0';
  stdout: Sink;
  stderr: Sink;
}

/** What the shim needs from the network config; the agent validates the rest. */
export interface ShimConf extends SeinePluginConf {
  cniVersion?: unknown;
}

/** The agent could not be asked (as opposed to: it answered with an error). */
class Unreachable extends Error {}

/**
 * Connection failures that mean "no agent is serving" (no socket, stale socket, agent died mid-request,
 * agent wedged): nothing this node set up can be acted on now.
 */
const UNREACHABLE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

async function readAll(stdin: ShimIo['stdin']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const add = (b: Buffer) => {
    size += b.length;
    if (size > MAX_STDIN_BYTES) throw new CniError(CniCode.IoFailure, 'configuration on stdin is too large', `more than ${MAX_STDIN_BYTES} bytes`);
    chunks.push(b);
  };
  if (stdin === 'fd0') {
    // Blocking reads of fd 0 skip process.stdin's stream set-up (a few ms per exec). A non-blocking
    // stdin that has nothing yet (EAGAIN) goes on through the stream, keeping what was read.
    for (;;) {
      const buf = Buffer.allocUnsafe(65536);
      let n: number;
      try {
        n = readSync(0, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw new CniError(CniCode.IoFailure, 'error reading stdin', (e as Error).message);
      }
      if (n === 0) return Buffer.concat(chunks).toString('utf8');
      add(buf.subarray(0, n));
    }
    stdin = process.stdin;
  }
  for await (const c of stdin) add(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

function write(sink: Sink, text: string): Promise<void> {
  return new Promise((resolve) => sink.write(text, () => resolve()));
}

/** Posts the invocation; Unreachable when no agent answers, CniError for a broken exchange. */
export async function forward(inv: CniInvocation, socketPath: string, timeoutMs: number): Promise<CniReply> {
  let res: HttpReply;
  try {
    res = await postJson(socketPath, CNI_ENDPOINT, JSON.stringify(inv), timeoutMs);
  } catch (e) {
    if (e instanceof HttpConnectionError && UNREACHABLE_CODES.has(e.code)) throw new Unreachable(`cannot reach ${socketPath}: ${e.code === 'ETIMEDOUT' || e.code === 'ECONNRESET' ? e.message : e.code}`);
    if (e instanceof HttpConnectionError) throw new CniError(CniCode.IoFailure, 'cannot talk to seine agent', `${socketPath}: ${e.code}: ${e.message}`);
    throw new CniError(CniCode.Internal, 'unexpected answer from seine agent', (e as Error).message);
  }
  if (res.status !== 200) throw new CniError(CniCode.Internal, 'seine agent rejected the request', `HTTP ${res.status}: ${res.body.slice(0, 400)}`);
  try {
    const reply = JSON.parse(res.body) as CniReply;
    if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) throw new Error('not an object');
    return reply;
  } catch (e) {
    throw new CniError(CniCode.Internal, 'unexpected answer from seine agent', `${(e as Error).message}: ${res.body.slice(0, 400)}`);
  }
}

/** What each command amounts to when the agent cannot be reached (DEL: nothing to undo here now). */
function unreachableOutcome(command: CniCommand, why: string): CniError | undefined {
  const details = `${why} (is the seine agent running on this node?)`;
  switch (command) {
    case 'DEL':
      return undefined;
    case 'STATUS':
      return new CniError(CniCode.PluginNotAvailable, 'seine agent is not reachable', details);
    default:
      return new CniError(CniCode.TryAgainLater, 'seine agent is not reachable', details);
  }
}

/**
 * One invocation: prints the result or error JSON on stdout and returns the exit code (0, or 1 on
 * error). Never throws.
 */
export async function runShim(io: ShimIo): Promise<number> {
  let version = CURRENT_VERSION;
  const fail = async (e: unknown): Promise<number> => {
    const err = CniError.from(e);
    if (!(e instanceof CniError) && e instanceof Error) await write(io.stderr, `seine-cni: ${e.stack ?? e.message}\n`);
    await write(io.stdout, `${JSON.stringify(err.toJSON(version))}\n`);
    return 1;
  };
  try {
    const command = io.env.CNI_COMMAND;
    if (!command) {
      await write(io.stderr, `${ABOUT}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
      throw new CniError(CniCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
    }
    if (!(CNI_COMMANDS as readonly string[]).includes(command)) throw new CniError(CniCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`);
    if (command === 'VERSION') {
      // Stdin is not read: a runtime may leave it open.
      await write(io.stdout, `${JSON.stringify({ cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] } satisfies VersionResult)}\n`);
      return 0;
    }
    const stdin = await readAll(io.stdin);
    let conf: ShimConf;
    try {
      conf = JSON.parse(stdin) as ShimConf;
    } catch (e) {
      throw new CniError(CniCode.DecodeFailure, 'cannot decode network configuration from stdin', (e as Error).message);
    }
    if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) throw new CniError(CniCode.InvalidNetworkConfig, 'invalid network configuration', '(root): must be object');
    if (typeof conf.cniVersion === 'string' && SUPPORTED_VERSIONS.includes(conf.cniVersion)) version = conf.cniVersion;
    const { socketPath, timeoutMs } = seinePluginSettings(conf);
    const env: CniInvocation['env'] = {};
    for (const name of FORWARDED_ENV) {
      const value = io.env[name];
      if (value === undefined) continue;
      if (Buffer.byteLength(value) > MAX_ENV_VALUE_BYTES) throw new CniError(CniCode.InvalidEnvironment, `${name} is too long`, `more than ${MAX_ENV_VALUE_BYTES} bytes`);
      env[name] = value;
    }

    let reply: CniReply;
    try {
      reply = await forward({ command, env, stdin }, socketPath, timeoutMs);
    } catch (e) {
      if (!(e instanceof Unreachable)) throw e;
      const err = unreachableOutcome(command as CniCommand, e.message);
      if (err) throw err;
      await write(io.stderr, `seine-cni: ${e.message}; DEL treated as done (the agent reconciles on start)\n`);
      return 0;
    }
    if (reply.error !== undefined) {
      const err = CniError.fromJSON(reply.error) ?? new CniError(CniCode.Internal, 'unexpected answer from seine agent', JSON.stringify(reply.error).slice(0, 400));
      await write(io.stdout, `${JSON.stringify(err.toJSON(err.cniVersion ?? version))}\n`);
      return 1;
    }
    if (reply.result !== undefined) await write(io.stdout, `${JSON.stringify(reply.result)}\n`);
    return 0;
  } catch (e) {
    return fail(e);
  }
}

/**
 * Writes straight to a file descriptor, skipping process.stdout's stream set-up (a few ms per exec);
 * a non-blocking descriptor that is full (EAGAIN) hands the rest to the stream.
 */
function fdSink(fd: number, stream: () => Sink): Sink {
  return {
    write(chunk: string, cb?: (err?: Error | null) => void) {
      let buf = Buffer.from(chunk);
      try {
        while (buf.length) buf = buf.subarray(writeSync(fd, buf));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return stream().write(buf.toString('utf8'), cb);
        cb?.(e as Error);
        return false;
      }
      cb?.();
      return true;
    },
  };
}

/** The process entry point (bin/seine-cni). */
export async function shimMain(): Promise<never> {
  const code = await runShim({ env: process.env, stdin: 'fd0', stdout: fdSink(1, () => process.stdout), stderr: fdSink(2, () => process.stderr) });
  process.exit(code);
}
