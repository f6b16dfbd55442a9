// Kubernetes API errors: every failure a client sees is a `kind: Status` body with the reason and code
// the real apiserver uses, since client-go, client-node and kubectl branch on them.
import type { StatusCause } from '../../k8s/field-errors.js';

export { cause, formatValue, type StatusCause } from '../../k8s/field-errors.js';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: { resourceVersion?: string; continue?: string };
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** The resource a message names: `pods` in core, `widgets.example.com` elsewhere, as kube does. */
export interface GroupResource {
  group: string;
  resource: string;
}

export function qualifiedResource(gr: GroupResource): string {
  return gr.group ? `${gr.resource}.${gr.group}` : gr.resource;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    readonly listMeta?: { continue?: string; resourceVersion?: string },
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Status {
    const s: Status = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: { ...(this.listMeta ?? {}) },
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) s.details = this.details;
    return s;
  }
}

export function isApiError(e: unknown, code?: number): e is ApiError {
  return e instanceof ApiError && (code === undefined || e.code === code);
}

export function successStatus(details?: StatusDetails): Status {
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 200 };
  if (details) s.details = details;
  return s;
}

export const errors = {
  notFound(gr: GroupResource, name: string): ApiError {
    return new ApiError(404, 'NotFound', `${qualifiedResource(gr)} "${name}" not found`, {
      name,
      ...(gr.group ? { group: gr.group } : {}),
      kind: gr.resource,
    });
  },
  /** The path names no resource the server serves. */
  noRoute(): ApiError {
    return new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
  },
  alreadyExists(gr: GroupResource, name: string): ApiError {
    return new ApiError(409, 'AlreadyExists', `${qualifiedResource(gr)} "${name}" already exists`, {
      name,
      ...(gr.group ? { group: gr.group } : {}),
      kind: gr.resource,
    });
  },
  conflict(gr: GroupResource, name: string, why: string): ApiError {
    return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(gr)} "${name}": ${why}`, {
      name,
      ...(gr.group ? { group: gr.group } : {}),
      kind: gr.resource,
    });
  },
  staleResourceVersion(gr: GroupResource, name: string): ApiError {
    return errors.conflict(gr, name, 'the object has been modified; please apply your changes to the latest version and try again');
  },
  /** 422 with one cause a field, named by Kind as kube does (`Pod "x" is invalid: ...`). */
  invalid(group: string, kind: string, name: string, causes: StatusCause[]): ApiError {
    const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message ?? ''}` : (c.message ?? '')));
    const summary = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
    const qualified = group ? `${kind}.${group}` : kind;
    return new ApiError(422, 'Invalid', `${qualified} "${name}" is invalid: ${summary}`, {
      name,
      ...(group ? { group } : {}),
      kind,
      causes,
    });
  },
  badRequest(message: string): ApiError {
    return new ApiError(400, 'BadRequest', message);
  },
  unauthorized(): ApiError {
    return new ApiError(401, 'Unauthorized', 'Unauthorized');
  },
  forbidden(gr: GroupResource, name: string, why: string, causes?: StatusCause[]): ApiError {
    const what = name ? `${qualifiedResource(gr)} "${name}"` : qualifiedResource(gr);
    return new ApiError(403, 'Forbidden', `${what} is forbidden: ${why}`, {
      ...(name ? { name } : {}),
      ...(gr.group ? { group: gr.group } : {}),
      kind: gr.resource,
      ...(causes ? { causes } : {}),
    });
  },
  methodNotAllowed(): ApiError {
    return new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});
  },
  notAcceptable(types: string[]): ApiError {
    return new ApiError(406, 'NotAcceptable', `only the following media types are accepted: ${types.join(', ')}`);
  },
  unsupportedMediaType(contentType: string, accepted: string[]): ApiError {
    return new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format${contentType ? ` (${contentType})` : ''} - accepted media types include: ${accepted.join(', ')}`,
    );
  },
  gone(message: string, listMeta?: { continue?: string; resourceVersion?: string }): ApiError {
    return new ApiError(410, 'Expired', message, undefined, listMeta);
  },
  tooLarge(message: string): ApiError {
    return new ApiError(413, 'RequestEntityTooLarge', message);
  },
  timeout(message: string, retryAfterSeconds: number): ApiError {
    return new ApiError(504, 'Timeout', message, { retryAfterSeconds });
  },
  internal(message: string): ApiError {
    return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
  },
};
