/**
 * The postgres.js handle type, how the engine connects, and how its errors become IdnErrors.
 * The only place besides the engine's modules that imports postgres.js.
 */
import postgres from 'postgres';
import { IdnError } from '../../errors.js';

/** A connection pool or a transaction (or savepoint) on one of its connections. */
export type Q = postgres.ISql;
export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

/** PostgreSQL error classes that mean the server is unreachable or going away, not a bad statement. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P)/;
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

/** The IdnError a postgres.js failure is: 503 while the server cannot be reached, else internal. */
export function translate(err: unknown, what: string): IdnError {
  if (err instanceof IdnError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code)))
    return new IdnError('IDN_UNAVAILABLE', `the database is unavailable (${what}): ${(err as Error).message}`, { cause: err });
  return new IdnError('IDN_INTERNAL', what, { cause: err });
}

/** Runs `fn`, turning a postgres.js failure into an IdnError. */
export async function guarded<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw translate(err, what);
  }
}

/** Wraps each async method so a failure rejects with an IdnError naming it. */
export function guardAll<T extends object>(ops: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(ops))
    out[name] =
      typeof fn === 'function'
        ? (...args: unknown[]) => guarded(`the store's ${name} failed`, () => (fn as (...a: unknown[]) => Promise<unknown>)(...args))
        : fn;
  return out as T;
}

/**
 * A pool on `url`: a few pipelined connections (many connections cost the server more than they
 * give, SCALE.md), int8 parsed as a JS number as SQLite's integers are.
 */
export function connectPool(url: string, max: number): Sql {
  return postgres(url, {
    max,
    onnotice: () => undefined,
    types: { bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
    connection: { application_name: 'idnode' },
  });
}
