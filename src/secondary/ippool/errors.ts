import { CniCode, CniError } from '../../cni/errors.js';

export type IPPoolProblem =
  /** No IPPool of that name. */
  | 'not-found'
  /** The pool's spec is unusable (ranges outside the subnet, overlaps, ...). */
  | 'invalid-pool'
  /** No free address left in any of the pools. */
  | 'exhausted'
  /** A requested address is not an IPv4 address (or CIDR). */
  | 'invalid-ip'
  /** A requested address is in none of the pools' ranges. */
  | 'outside'
  /** A requested address is the subnet's network, broadcast or gateway address. */
  | 'reserved'
  /** A requested address is in the pool's `exclude` list. */
  | 'excluded'
  /** A requested address is held by another attachment. */
  | 'in-use'
  /** The attachment already holds another address of the pool. */
  | 'owner-has-other'
  /** A requested CIDR's prefix is not the pool's subnet prefix. */
  | 'prefix-mismatch'
  /** Too many write conflicts in a row, or the API server failed. */
  | 'unavailable';

const TRANSIENT = new Set<IPPoolProblem>(['exhausted', 'in-use', 'unavailable']);

/**
 * Why an IPPool operation failed. A CniError, so the CNI server can return it as is: code 11 (try again
 * later) for what resolves itself (exhaustion, an address held by a pod being deleted, API trouble), code 7
 * for a request that contradicts the network's configuration.
 */
export class IPPoolError extends CniError {
  readonly pool: string | undefined;
  readonly ip: string | undefined;

  constructor(
    readonly problem: IPPoolProblem,
    msg: string,
    details = '',
    opts: { pool?: string; ip?: string; cause?: unknown } = {},
  ) {
    super(TRANSIENT.has(problem) ? CniCode.TryAgainLater : CniCode.InvalidNetworkConfig, msg, details, opts.cause === undefined ? {} : { cause: opts.cause });
    this.name = 'IPPoolError';
    this.pool = opts.pool;
    this.ip = opts.ip;
  }
}
