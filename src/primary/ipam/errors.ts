import { CniCode, CniError } from '../../cni/errors.js';

/**
 * No free address left. Code 11 (try again later): addresses come back as pods are deleted, and the
 * runtime retries sandbox creation anyway.
 */
export class IpamExhaustedError extends CniError {
  constructor(
    readonly podCIDR: string,
    readonly inUse: number,
  ) {
    super(CniCode.TryAgainLater, `no free IP address in pod CIDR ${podCIDR}`, `all ${inUse} usable addresses are allocated`);
    this.name = 'IpamExhaustedError';
  }
}

export type IpamAddressProblem = 'invalid' | 'outside' | 'reserved' | 'in-use' | 'owner-has-other';

/**
 * A requested (static) address cannot be given. Taken by another owner is code 11, since it frees up
 * when that pod is deleted (a StatefulSet pod recreated before its predecessor's DEL); any other
 * problem is code 7: the request contradicts the network.
 */
export class IpamAddressError extends CniError {
  constructor(
    readonly problem: IpamAddressProblem,
    readonly ip: string,
    details: string,
  ) {
    super(problem === 'in-use' ? CniCode.TryAgainLater : CniCode.InvalidNetworkConfig, `requested IP address ${ip} is not available`, details);
    this.name = 'IpamAddressError';
  }
}

/** The state file cannot be read or does not describe this pod CIDR; the agent must not start on it. */
export class IpamStateError extends Error {
  constructor(
    readonly path: string,
    problem: string,
    opts: { cause?: unknown } = {},
  ) {
    super(`IPAM state file ${path}: ${problem}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IpamStateError';
  }
}
