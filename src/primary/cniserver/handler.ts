// Transport-independent part of the CNI server: one raw invocation in, one reply out. Decoding,
// ordering, the request timeout, result conversion, error mapping and the request log live here.
import { CniCode, CniError } from '../../cni/errors.js';
import { convertResult } from '../../cni/result.js';
import { resultProblems } from '../../cni/schema/validate.js';
import type { CniInvocation, CniReply } from '../../cni/shim-protocol.js';
import type { CniResult, VersionResult } from '../../cni/types.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from '../../cni/version.js';
import { logger, type Logger } from '../../util/log.js';
import { decodeInvocation, replyVersion, type Decoded, type DecodeOptions } from './decode.js';
import { RequestScheduler } from './scheduler.js';
import type { CniDriver } from './types.js';

/**
 * Below the shim's default wait (110 s) so that a slow driver call is reported by the server, and below
 * kubelet's runtime request timeout (2 min), so the answer reaches the runtime while kubelet still waits.
 * Generous because it counts the wait for a turn: a node taking dozens of pods at once queues their ADDs.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 100_000;

export interface CniHandlerOptions extends DecodeOptions {
  driver: CniDriver;
  /** From arrival (queueing included) to answer; the answer is then code 11. Default 100 s. */
  requestTimeoutMs?: number;
  /** Attachment calls (ADD/DEL/CHECK) running at once; the rest wait in arrival order. Default 4. */
  maxConcurrentCalls?: number;
  log?: Logger;
}

/** Why a request's signal was aborted. */
export class RequestTimeoutError extends CniError {
  constructor(command: string, what: string, ms: number) {
    super(CniCode.TryAgainLater, `seine agent timed out on ${command}`, `${what}: no answer within ${ms} ms`);
    this.name = 'RequestTimeoutError';
  }
}

export class CniHandler {
  readonly scheduler: RequestScheduler;
  private readonly driver: CniDriver;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private inFlight = 0;

  constructor(private readonly opts: CniHandlerOptions) {
    this.driver = opts.driver;
    this.scheduler = new RequestScheduler(opts.maxConcurrentCalls);
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.log = opts.log ?? logger('cniserver');
  }

  /** Requests being answered right now. */
  get pending(): number {
    return this.inFlight;
  }

  /** Never throws: every failure is a CNI error in the reply. */
  async handle(inv: CniInvocation): Promise<CniReply> {
    const started = performance.now();
    this.inFlight++;
    let decoded: Decoded | undefined;
    let reply: CniReply;
    try {
      decoded = decodeInvocation(inv, this.opts);
      reply = await this.dispatch(decoded);
    } catch (e) {
      const err = CniError.from(e);
      reply = { error: err.toJSON(replyVersion(inv.stdin)) };
    } finally {
      this.inFlight--;
    }
    this.logRequest(inv, decoded, reply, performance.now() - started);
    return reply;
  }

  private logRequest(inv: CniInvocation, decoded: Decoded | undefined, reply: CniReply, ms: number): void {
    const req = decoded && 'req' in decoded ? decoded.req : undefined;
    const fields: Record<string, unknown> = {
      command: inv.command,
      containerId: inv.env.CNI_CONTAINERID,
      ifname: inv.env.CNI_IFNAME,
      durationMs: Math.round(ms * 10) / 10,
      outcome: reply.error ? 'error' : 'ok',
    };
    if (req && 'pod' in req && req.pod) fields.pod = `${req.pod.namespace}/${req.pod.name}`;
    if (req) fields.cniVersion = req.cniVersion;
    if (reply.error) Object.assign(fields, { code: reply.error.code, msg: reply.error.msg, details: reply.error.details });
    if (reply.error) this.log.warn(fields, 'CNI request failed');
    else this.log.info(fields, 'CNI request');
  }

  private async dispatch(d: Decoded): Promise<CniReply> {
    if (d.command === 'VERSION') {
      return { result: { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] } satisfies VersionResult };
    }
    const ac = new AbortController();
    const what = 'containerId' in d.req ? `container ${d.req.containerId} ${d.req.ifname}` : 'network';
    const timeout = new RequestTimeoutError(d.command, what, this.timeoutMs);
    // Checked again when the request's turn comes: a call that timed out in the queue never starts.
    const guarded = <T>(fn: () => Promise<T>) => () => {
      if (ac.signal.aborted) throw timeout;
      return fn();
    };
    let work: Promise<CniReply>;
    switch (d.command) {
      case 'STATUS': {
        const req = { ...d.req, signal: ac.signal };
        work = (async () => {
          await this.driver.status(req);
          return {};
        })();
        break;
      }
      case 'GC': {
        const req = { ...d.req, signal: ac.signal };
        work = this.scheduler.exclusive(guarded(() => this.driver.gc(req)), ac.signal).then(() => ({}));
        break;
      }
      default: {
        const req = { ...d.req, command: d.command, signal: ac.signal };
        work = this.scheduler.attachment(
          req.containerId,
          guarded(async (): Promise<CniReply> => {
            if (req.command === 'ADD') return { result: this.toVersion(await this.driver.add(req), req.cniVersion) };
            await (req.command === 'DEL' ? this.driver.del(req) : this.driver.check(req));
            return {};
          }),
        );
      }
    }
    return this.withTimeout(work, ac, timeout, d.command, what);
  }

  private toVersion(result: CniResult, cniVersion: string): CniResult {
    const problems = resultProblems(result);
    if (problems.length) throw new CniError(CniCode.Internal, 'seine agent produced an invalid result', problems.join('; '));
    return convertResult(result, cniVersion);
  }

  private withTimeout(work: Promise<CniReply>, ac: AbortController, timeout: CniError, command: string, what: string): Promise<CniReply> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ac.abort(timeout);
        reject(timeout);
        // The runtime has its answer; the call still holds its container's turn until it ends.
        const t0 = performance.now();
        work.then(
          () => this.log.warn({ command, what, lateMs: Math.round(performance.now() - t0) }, 'timed-out CNI request finished late'),
          (e: unknown) =>
            e === timeout
              ? this.log.info({ command, what }, 'timed-out CNI request dropped before it started')
              : this.log.warn({ command, what, err: (e as Error)?.message }, 'timed-out CNI request failed late'),
        );
      }, this.timeoutMs);
    });
    return Promise.race([work, expired]).finally(() => clearTimeout(timer));
  }
}
