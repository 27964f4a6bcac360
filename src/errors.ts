/**
 * Every error idnode answers with: a stable IDN_* code, the Handle responseCode and the
 * HTTP status. README.md and docs/API.md carry the same table; test/errors.test.ts keeps
 * them in step.
 * This file imports nothing from src/.
 */

export const ERRORS = {
  IDN_INVALID_IDENTIFIER: { http: 400, responseCode: 102 },
  IDN_NOT_RESPONSIBLE: { http: 400, responseCode: 301 },
  IDN_BAD_REQUEST: { http: 400, responseCode: 4 },
  IDN_BODY_UNPARSABLE: { http: 400, responseCode: 4 },
  IDN_BODY_TOO_LARGE: { http: 400, responseCode: 4 },
  IDN_INVALID_VALUE: { http: 400, responseCode: 202 },
  IDN_AUTH_REQUIRED: { http: 401, responseCode: 402 },
  IDN_AUTH_FAILED: { http: 401, responseCode: 403 },
  IDN_FORBIDDEN: { http: 403, responseCode: 401 },
  IDN_PREFIX_NOT_ACTIVE: { http: 403, responseCode: 401 },
  IDN_NOT_FOUND: { http: 404, responseCode: 100 },
  IDN_VALUE_NOT_FOUND: { http: 400, responseCode: 200 },
  IDN_PREFIX_NOT_FOUND: { http: 404, responseCode: 100 },
  IDN_TOKEN_NOT_FOUND: { http: 404, responseCode: 100 },
  IDN_TEMPLATE_NOT_FOUND: { http: 404, responseCode: 100 },
  IDN_ROUTE_NOT_FOUND: { http: 404, responseCode: 100 },
  IDN_HANDLE_EXISTS: { http: 409, responseCode: 101 },
  IDN_HANDLE_DELETED: { http: 409, responseCode: 101 },
  IDN_VALUE_EXISTS: { http: 409, responseCode: 201 },
  IDN_PREFIX_EXISTS: { http: 409, responseCode: 101 },
  IDN_PREFIX_NOT_EMPTY: { http: 409, responseCode: 101 },
  IDN_TEMPLATE_IN_USE: { http: 409, responseCode: 101 },
  IDN_NOT_SUPPORTED: { http: 501, responseCode: 5 },
  IDN_UNAVAILABLE: { http: 503, responseCode: 3 },
  IDN_HOP_LIMIT: { http: 508, responseCode: 6 },
  IDN_UPSTREAM_BAD_ANSWER: { http: 502, responseCode: 2 },
  IDN_UPSTREAM_UNREACHABLE: { http: 502, responseCode: 2 },
  IDN_UPSTREAM_TIMEOUT: { http: 504, responseCode: 2 },
  IDN_INTERNAL: { http: 500, responseCode: 2 },
} as const satisfies Record<string, { http: number; responseCode: number }>;

export type ErrorCode = keyof typeof ERRORS;

/** HTTP status for a Handle responseCode (API.md §3); gateway errors are the documented exceptions. */
export function httpStatusFor(responseCode: number): number {
  switch (responseCode) {
    case 1:
    case 200:
      return 200;
    case 100:
      return 404;
    case 101:
    case 201:
      return 409;
    case 4:
    case 102:
    case 202:
    case 301:
      return 400;
    case 402:
      return 401;
    case 400:
    case 401:
    case 403:
    case 404:
      return 403;
    case 302:
    case 303:
      return 300;
    case 3:
    case 7:
      return 503;
    case 5:
      return 501;
    case 6:
      return 508;
    default:
      return 500;
  }
}

export class IdnError extends Error {
  readonly code: ErrorCode;
  readonly http: number;
  readonly responseCode: number;
  /** The identifier the request named, echoed as `handle` in the error body. */
  handle: string | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, message: string, opts: { handle?: string | undefined; cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IdnError';
    this.code = code;
    this.http = ERRORS[code].http;
    this.responseCode = ERRORS[code].responseCode;
    this.handle = opts.handle;
    this.headers = opts.headers;
  }

  toBody(): ErrorBody {
    return errorBody(this.code, this.message, this.handle);
  }
}

/** The body of an error answer, without an IdnError (whose stack capture a hot path cannot afford). */
export function errorBody(code: ErrorCode, message: string, handle?: string): ErrorBody {
  const body: ErrorBody = { responseCode: ERRORS[code].responseCode };
  if (handle !== undefined) body.handle = handle;
  body.message = message;
  body.code = code;
  return body;
}

export interface ErrorBody {
  responseCode: number;
  handle?: string;
  message?: string;
  code?: ErrorCode;
}

export function isIdnError(err: unknown): err is IdnError {
  return err instanceof IdnError;
}
