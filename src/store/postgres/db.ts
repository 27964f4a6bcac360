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
/** A deadline the server enforced: statement_timeout (57014), lock_timeout (55P03), idle in transaction (25P03). */
const TIMEOUT_SQLSTATE = new Set(['57014', '55P03', '25P03']);
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
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code) || TIMEOUT_SQLSTATE.has(code)))
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

/** How long the engine waits on PostgreSQL. */
export interface PoolLimits {
  /**
   * The longest a query, or a write transaction (`beginWithin`), may wait for its answer: past
   * it the caller gets IDN_UNAVAILABLE and the pool's connections are replaced (0: no deadline).
   */
  statementTimeoutMs?: number;
  /** The longest a new connection may take to be ready (TCP, startup, authentication). */
  connectTimeoutMs?: number;
}

interface Listener {
  channel: string;
  fn: (payload: string) => void;
  onlisten: (() => void) | undefined;
  handle: { unlisten(): Promise<void> } | undefined;
}

/** What a pool proxy stands for: the postgres.js instance it forwards to now, and how it is replaced. */
interface Pool {
  current(): Sql;
  generation(): number;
  stalled(generation: number): void;
  limits: PoolLimits;
}

const pools = new WeakMap<object, Pool>();

function deadlineError(ms: number, what: string): IdnError {
  return new IdnError('IDN_UNAVAILABLE', `the database did not answer ${what} within ${ms} ms (store.statementTimeoutMs)`);
}

/**
 * `work` raced against the pool's deadline: on expiry it rejects with IDN_UNAVAILABLE and the
 * pool instance it ran on is replaced, which rejects everything still waiting on it.
 */
function within<T>(pool: Pool, work: PromiseLike<T>, what: string): Promise<T> {
  const ms = pool.limits.statementTimeoutMs ?? 0;
  if (ms <= 0) return Promise.resolve(work);
  const generation = pool.generation();
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(deadlineError(ms, what));
      pool.stalled(generation);
    }, ms);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: Error) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * A postgres.js query whose `then` waits at most the deadline. Its modifiers (`.values()`, …)
 * return this proxy, so chains keep the deadline; a query is still sent when it is awaited.
 */
function boundQuery<T extends object>(pool: Pool, query: T): T {
  if (!(query instanceof Promise)) return query;
  let raced: Promise<unknown> | undefined;
  const proxy: T = new Proxy(query, {
    get(target, prop) {
      if (prop === 'then')
        return (ok?: (v: unknown) => unknown, fail?: (e: unknown) => unknown) =>
          (raced ??= within(pool, target as PromiseLike<unknown>, 'a query')).then(ok, fail);
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const out: unknown = (v as (...a: unknown[]) => unknown).apply(target, args);
        return out === target ? proxy : out;
      };
    },
  });
  return proxy;
}

/**
 * A pool on `url`: a few pipelined connections (many connections cost the server more than they
 * give, SCALE.md), int8 parsed as a JS number as SQLite's integers are. What it returns forwards
 * to a postgres.js instance that is replaced when a query misses its deadline (postgres.js has
 * no per-query timeout, and a query the server never answers would hold its connection for
 * ever). `fallback` (a standby's pool gets the primary's) takes the queries while this one is
 * replaced and until it answers again.
 */
export function connectPool(url: string, max: number, limits: PoolLimits = {}, fallback?: Sql): Sql {
  const deadline = limits.statementTimeoutMs ?? 0;
  const open = () =>
    postgres(url, {
      max,
      onnotice: () => undefined,
      types: { bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
      ...(limits.connectTimeoutMs !== undefined ? { connect_timeout: limits.connectTimeoutMs / 1000 } : {}),
      connection: {
        application_name: 'idnode',
        // A node that froze or lost its network inside a transaction (holding the chain head's
        // row lock) is disconnected by the server, so the other nodes' writes go on.
        ...(deadline > 0 ? { idle_in_transaction_session_timeout: Math.max(deadline, 1000) } : {}),
      },
    });
  let current = open();
  let generation = 0;
  let closed = false;
  /** Set while a replaced standby pool has not answered yet: queries go to `fallback`. */
  let down = false;
  const listeners = new Set<Listener>();

  function subscribe(l: Listener, gen: number): Promise<void> {
    return within(
      pool,
      current.listen(l.channel, l.fn, l.onlisten).then((handle) => {
        if (gen === generation) l.handle = handle;
        else void handle.unlisten().catch(() => undefined);
      }),
      'LISTEN',
    );
  }

  /** Re-subscribes on the new instance until it answers, or it is replaced in turn. */
  function resubscribe(l: Listener, gen: number): void {
    if (closed || gen !== generation || !listeners.has(l)) return;
    subscribe(l, gen).catch(() => setTimeout(() => resubscribe(l, gen), Math.max(deadline, 100)).unref());
  }

  /** A probe of the replaced standby pool: `down` ends once it answers. */
  function probe(gen: number): void {
    if (closed || gen !== generation) return;
    within(pool, current`SELECT 1`, 'a probe').then(
      () => {
        if (gen === generation) down = false;
      },
      () => setTimeout(() => probe(generation), Math.max(deadline, 100)).unref(),
    );
  }

  const pool: Pool = {
    current: () => current,
    generation: () => generation,
    limits,
    stalled(gen) {
      if (closed || gen !== generation) return;
      generation++;
      const old = current;
      current = open();
      // timeout 0: every connection is closed at once and what waited on them rejects
      // (CONNECTION_DESTROYED), instead of waiting for answers that may never come.
      void old.end({ timeout: 0 }).catch(() => undefined);
      for (const l of listeners) {
        l.handle = undefined;
        resubscribe(l, generation);
      }
      if (fallback !== undefined) {
        down = true;
        probe(generation);
      }
    },
  };

  async function listen(channel: string, fn: (payload: string) => void, onlisten?: () => void) {
    const l: Listener = { channel, fn, onlisten, handle: undefined };
    listeners.add(l);
    try {
      await subscribe(l, generation);
    } catch (err) {
      listeners.delete(l);
      throw err;
    }
    return {
      state: undefined,
      async unlisten() {
        listeners.delete(l);
        await l.handle?.unlisten();
      },
    };
  }

  async function end(opts?: { timeout?: number }) {
    closed = true;
    await current.end(opts);
  }

  // While a replaced standby pool is down, its queries are the fallback's (and bounded there).
  const proxy = new Proxy(function pool() {}, {
    apply(_target, _this, args: unknown[]) {
      if (down) return (fallback as unknown as (...a: unknown[]) => object)(...args);
      return boundQuery(pool, (current as unknown as (...a: unknown[]) => object)(...args));
    },
    get(_target, prop) {
      if (prop === 'listen') return listen;
      if (prop === 'end') return end;
      if (down && prop !== 'begin') return Reflect.get(fallback!, prop) as unknown;
      const v: unknown = Reflect.get(current, prop);
      if (prop === 'unsafe' || prop === 'file') return (...args: unknown[]) => boundQuery(pool, (v as (...a: unknown[]) => object)(...args));
      return v;
    },
  }) as unknown as Sql;
  pools.set(proxy, pool);
  return proxy;
}

/**
 * `sql.begin(fn)` within the pool's deadline: the transaction's statements and lock waits are
 * bounded on the server too (SET LOCAL), and the whole transaction on the client. A transaction
 * that misses it rejects with IDN_UNAVAILABLE, whether or not its COMMIT reached the server.
 */
export function beginWithin<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const pool = pools.get(sql);
  const ms = pool?.limits.statementTimeoutMs ?? 0;
  if (pool === undefined || ms <= 0) return sql.begin(fn) as Promise<T>;
  const work = pool.current().begin(async (tx) => {
    // Sent ahead of fn's first statement on the same connection: no round trip of its own.
    tx.unsafe(`SET LOCAL statement_timeout = ${ms}; SET LOCAL lock_timeout = ${ms}`).catch(() => undefined);
    return fn(tx);
  }) as Promise<T>;
  return within(pool, work, 'a write transaction');
}
