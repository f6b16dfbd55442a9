import { CniCode, CniError } from '../../cni/errors.js';
import { NETWORKS_ANNOTATION } from '../annotations/index.js';

/**
 * A NetworkAttachmentDefinition cannot be used. A CniError (code 7, or 6 when spec.config is not JSON)
 * so that an ADD can fail with it as is; `message` names the NAD and every problem, fit for an Event.
 */
export class NadConfigError extends CniError {
  readonly problems: readonly string[];

  constructor(
    /** "namespace/name" of the NAD. */
    readonly nad: string,
    problems: readonly string[],
    opts: { code?: number; what?: string; cause?: unknown } = {},
  ) {
    super(opts.code ?? CniCode.InvalidNetworkConfig, `NetworkAttachmentDefinition ${nad}: ${opts.what ?? 'invalid spec.config'}`, problems.join('; '), opts.cause === undefined ? {} : { cause: opts.cause });
    this.name = 'NadConfigError';
    this.problems = problems;
  }
}

/**
 * An attachment asks for something (ips, mac, portMappings, ...) that no plugin of its network supports;
 * the spec says that attachment fails. Code 2 (unsupported field).
 */
export class CapabilityError extends CniError {
  constructor(
    readonly nad: string,
    readonly unsupported: readonly string[],
  ) {
    super(CniCode.UnsupportedField, `NetworkAttachmentDefinition ${nad} does not support ${unsupported.join(', ')}`, `the pod's ${NETWORKS_ANNOTATION} annotation requests ${unsupported.join(', ')}, which no plugin of the network declares`);
    this.name = 'CapabilityError';
  }
}
