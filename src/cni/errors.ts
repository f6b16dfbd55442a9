// Kept dependency-free: the plugin side imports this on every invocation.

/** Well-known CNI error codes (spec 1.1 "Error"); 100 and above are plugin specific. */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  PluginNotAvailableLimited: 51,
  /** What libcni's skel reports for a plain (non-CNI) error escaping a plugin handler. */
  Internal: 999,
} as const;

export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

/** The error object a plugin prints on stdout. */
export interface CniErrorJson {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

/** A CNI protocol error: what a plugin reports, or what the plugin side reports for bad input. */
export class CniError extends Error {
  readonly code: number;
  readonly msg: string;
  readonly details: string;
  /** The version the error was (or will be) printed in, when known. */
  readonly cniVersion: string | undefined;

  constructor(code: number, msg: string, details = '', opts: { cniVersion?: string; cause?: unknown } = {}) {
    super(details ? `${msg}: ${details}` : msg, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CniError';
    this.code = code;
    this.msg = msg;
    this.details = details;
    this.cniVersion = opts.cniVersion;
  }

  /** The stdout form; `cniVersion` defaults to the one the error carries. */
  toJSON(cniVersion?: string): CniErrorJson {
    const v = cniVersion ?? this.cniVersion;
    return { ...(v ? { cniVersion: v } : {}), code: this.code, msg: this.msg, ...(this.details ? { details: this.details } : {}) };
  }

  /** Whether a decoded value has the shape of a CNI error object. */
  static isErrorJson(value: unknown): value is CniErrorJson {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
    const v = value as Record<string, unknown>;
    return (
      typeof v.code === 'number' &&
      Number.isInteger(v.code) &&
      typeof v.msg === 'string' &&
      (v.details === undefined || typeof v.details === 'string') &&
      (v.cniVersion === undefined || typeof v.cniVersion === 'string')
    );
  }

  /** Decodes an error object (already parsed JSON); undefined when it is not one. */
  static fromJSON(value: unknown): CniError | undefined {
    if (!CniError.isErrorJson(value)) return undefined;
    return new CniError(value.code, value.msg, value.details ?? '', { cniVersion: value.cniVersion });
  }

  /** Any thrown value as a CniError; plain errors become code 999 as libcni's skel does. */
  static from(e: unknown): CniError {
    if (e instanceof CniError) return e;
    if (e instanceof Error) return new CniError(CniCode.Internal, e.message, '', { cause: e });
    return new CniError(CniCode.Internal, String(e));
  }
}
