// Field errors as kube-apiserver reports them (a Status's causes): the same reasons and wording, so kubectl and
// users see familiar lines whether the lab's API server or the controller's own validation wrote them.

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

// Cause builders in kube's wording, so kubectl prints familiar lines.
export const cause = {
  required(field: string, detail = ''): StatusCause {
    return { reason: 'FieldValueRequired', message: `Required value${detail ? `: ${detail}` : ''}`, field };
  },
  invalid(field: string, value: unknown, detail: string): StatusCause {
    return { reason: 'FieldValueInvalid', message: `Invalid value: ${formatValue(value)}: ${detail}`, field };
  },
  notSupported(field: string, value: unknown, allowed: unknown[]): StatusCause {
    return {
      reason: 'FieldValueNotSupported',
      message: `Unsupported value: ${formatValue(value)}: supported values: ${allowed.map(formatValue).join(', ')}`,
      field,
    };
  },
  forbidden(field: string, detail: string): StatusCause {
    return { reason: 'FieldValueForbidden', message: `Forbidden: ${detail}`, field };
  },
  duplicate(field: string, value: unknown): StatusCause {
    return { reason: 'FieldValueDuplicate', message: `Duplicate value: ${formatValue(value)}`, field };
  },
  tooLong(field: string, max: number): StatusCause {
    return { reason: 'FieldValueTooLong', message: `Too long: may not be more than ${max} bytes`, field };
  },
  tooMany(field: string, max: number): StatusCause {
    return { reason: 'FieldValueTooMany', message: `Too many: must have at most ${max} items`, field };
  },
};

/** Values as kube prints them in causes: strings quoted, scalars bare, objects by type. */
export function formatValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return '[]interface {}';
  return '"object"';
}
