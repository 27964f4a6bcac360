/**
 * The postgres.js handle type, how the engine connects, and how its errors become IdnErrors.
 * The only place besides the engine's modules that imports postgres.js.
 */
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import { IdnError } from '../../errors.js';

/** A connection pool or a transaction (or savepoint) on one of its connections. */
export type Q = postgres.ISql;
export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

/** PostgreSQL error classes that mean the server is unreachable or going away, not a bad statement. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P)/;
/**
 * A deadline the server enforced: statement_timeout (57014), lock_timeout (55P03), idle in
 * transaction (25P03); and a write that reached a server that is read-only for now (25006: a
 * standby during a failover, before or while it is promoted).
 */
const REFUSED_SQLSTATE = new Set(['57014', '55P03', '25P03', '25006']);
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_DESTROYED',
  'ERR_SOCKET_CLOSED',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

/** The IdnError a postgres.js failure is: 503 while the server cannot be reached, else internal. */
export function translate(err: unknown, what: string): IdnError {
  if (err instanceof IdnError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code) || REFUSED_SQLSTATE.has(code)))
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
   * The longest a query, or a write transaction (`beginWithin`) between two answers, may wait:
   * past it the caller gets IDN_UNAVAILABLE and the pool's connections are replaced (0: none).
   */
  statementTimeoutMs?: number;
  /** The longest a new connection may take to be ready (TCP, startup, authentication). */
  connectTimeoutMs?: number;
}

interface Listener {
  fn: (payload: string) => void;
  onlisten: (() => void) | undefined;
}

/** What a pool proxy stands for: the postgres.js instance it forwards to now, and how it is replaced. */
interface Pool {
  current(): Sql;
  generation(): number;
  /** Replaces the instance of `generation` if it is still the current one; resolves once that one's connections are closed. */
  stalled(generation: number): Promise<void>;
  limits: PoolLimits;
}

const pools = new WeakMap<object, Pool>();

function deadlineError(ms: number, what: string): IdnError {
  return new IdnError('IDN_UNAVAILABLE', `the database did not answer ${what} within ${ms} ms (store.statementTimeoutMs)`);
}

/**
 * `work`, or IDN_UNAVAILABLE once `ms` passed without its answer (then `onExpire` runs); with
 * `lastAnswer`, `ms` counts from the time it returns (a transaction's deadline runs per answer).
 * The verdict waits for the next turn of the event loop: after a long synchronous stretch
 * timers run before the sockets are read, and an answer that is already there must count.
 */
function within<T>(ms: number, work: PromiseLike<T>, what: string, onExpire: () => void, lastAnswer?: () => number): Promise<T> {
  if (ms <= 0) return Promise.resolve(work);
  const start = performance.now();
  const since = lastAnswer ?? (() => start);
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout;
    const check = () => {
      if (done) return;
      const idle = performance.now() - since();
      if (idle < ms) timer = setTimeout(() => setImmediate(check), ms - idle);
      else {
        done = true;
        reject(deadlineError(ms, what));
        onExpire();
      }
    };
    timer = setTimeout(() => setImmediate(check), ms);
    work.then(
      (v) => {
        done = true;
        clearTimeout(timer);
        resolve(v);
      },
      (err: Error) => {
        done = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** `work` within the pool's deadline: on expiry the instance it ran on is replaced, which rejects all that waited on it. */
function bounded<T>(pool: Pool, work: PromiseLike<T>, what: string): Promise<T> {
  const generation = pool.generation();
  return within(pool.limits.statementTimeoutMs ?? 0, work, what, () => void pool.stalled(generation));
}

/**
 * A postgres.js query whose answer goes through `settle` (a deadline, a note of progress). Its
 * modifiers (`.values()`, …) return this proxy, so chains keep it; a query is still sent when
 * it is awaited, as postgres.js sends it.
 */
function wrapQuery<T extends object>(query: T, settle: (q: PromiseLike<unknown>) => PromiseLike<unknown>): T {
  if (!(query instanceof Promise)) return query;
  let settled: PromiseLike<unknown> | undefined;
  const proxy: T = new Proxy(query, {
    get(target, prop) {
      if (prop === 'then')
        return (ok?: (v: unknown) => unknown, fail?: (e: unknown) => unknown) => (settled ??= settle(target as PromiseLike<unknown>)).then(ok, fail);
      // Through `then` too: on the query itself they would send it past `settle`.
      if (prop === 'catch') return (fail?: (e: unknown) => unknown) => (proxy as PromiseLike<unknown>).then(undefined, fail);
      if (prop === 'finally')
        return (fn?: () => void) =>
          (proxy as PromiseLike<unknown>).then(
            (v) => (fn?.(), v),
            (err: Error) => {
              fn?.();
              throw err;
            },
          );
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

const boundQuery = <T extends object>(pool: Pool, query: T): T => wrapQuery(query, (q) => bounded(pool, q, 'a query'));

/** An error that means the connection is gone (not a statement that failed on a live one). */
function connectionLost(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || /^(08|57P)/.test(code));
}

/**
 * A transaction's connection that died. postgres.js 3.4.9 crashes the process when a statement
 * is sent on a transaction's connection after its socket closed (a write deferred with
 * setImmediate to a socket it has set to null: porsager/postgres#1208), and it sends ROLLBACK
 * itself once the transaction's function fails. So once the connection is known lost, no more
 * statements are sent, and every failure is held back until the pool's connections are
 * terminated, after which postgres.js refuses to send instead.
 */
interface TxGuard {
  lost: Promise<void> | undefined;
  lose(): Promise<void>;
}

/** `tx` whose every answer (or error) from the server calls `progress`, and that sends nothing once its connection is lost. */
function watchedTx(tx: Tx, progress: () => void, guard: TxGuard): Tx {
  const held = (err: unknown) =>
    guard.lose().then(() => {
      throw err;
    });
  const note = <T extends object>(query: T): T =>
    wrapQuery(query, (q) =>
      guard.lost !== undefined
        ? held(new IdnError('IDN_UNAVAILABLE', 'the connection of this write transaction was lost'))
        : q.then(
            (v) => (progress(), v),
            (err: Error) => {
              progress();
              if (connectionLost(err)) return held(err);
              throw err;
            },
          ),
    );
  return new Proxy(tx, {
    apply(target, _this, args: unknown[]) {
      return note((target as unknown as (...a: unknown[]) => object)(...args));
    },
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (prop === 'unsafe' || prop === 'file') return (...args: unknown[]) => note((v as (...a: unknown[]) => object)(...args));
      return v;
    },
  });
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
  const retryMs = Math.max(deadline, 100);
  const options = {
    onnotice: () => undefined,
    types: { bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
    ...(limits.connectTimeoutMs !== undefined ? { connect_timeout: limits.connectTimeoutMs / 1000 } : {}),
    connection: {
      application_name: 'idnode',
      // A node that froze or lost its network inside a transaction (holding the chain head's
      // row lock) is disconnected by the server, so the other nodes' writes go on.
      ...(deadline > 0 ? { idle_in_transaction_session_timeout: Math.max(deadline, 1000) } : {}),
    },
  };
  let current: Sql = postgres(url, { ...options, max });
  let generation = 0;
  /** Replaced instances whose connections are not all closed yet, by generation. */
  const retiring = new Map<number, Promise<void>>();
  let closed = false;
  /** Set while a replaced standby pool has not answered yet: queries go to `fallback`. */
  let down = false;

  // LISTEN has a connection of its own, owned here rather than by postgres.js's sql.listen, which
  // re-subscribes once when its connection closes and gives up silently if the server is down then.
  const channels = new Map<string, Set<Listener>>();
  let listener: Sql | undefined;
  let relistening = false;
  function openListener(): Sql {
    const inst: Sql = postgres(url, {
      ...options,
      max: 1,
      // Never closed for being idle or old: a LISTEN connection is idle by design.
      idle_timeout: 0,
      max_lifetime: 0,
      fetch_types: false,
      onnotify: (channel: string, payload: string) => {
        for (const l of channels.get(channel) ?? []) l.fn(payload);
      },
      onclose: () => {
        if (inst === listener) relisten();
      },
    } as Parameters<typeof postgres>[1]);
    return inst;
  }
  function replaceListener(): void {
    const old = listener;
    if (closed || old === undefined) return;
    listener = openListener();
    void old.end({ timeout: 0 }).catch(() => undefined);
    relisten();
  }
  function listenOn(inst: Sql, channel: string): Promise<void> {
    const work = inst.unsafe(`LISTEN "${channel.replace(/"/g, '""')}"`).then(() => {
      // Notifications sent while it was not listening are lost: the listeners re-read.
      for (const l of channels.get(channel) ?? []) l.onlisten?.();
    });
    return within(deadline, work, 'LISTEN', () => {
      if (inst === listener) replaceListener();
    });
  }
  /** Listens again on every channel, retrying until it holds (one attempt at a time). */
  function relisten(): void {
    if (closed || relistening || listener === undefined || channels.size === 0) return;
    relistening = true;
    const inst = listener;
    Promise.all([...channels.keys()].map((c) => listenOn(inst, c))).then(
      () => void (relistening = false),
      () => {
        relistening = false;
        setTimeout(relisten, retryMs).unref();
      },
    );
  }

  /** A probe of the replaced standby pool: `down` ends once it answers. */
  function probe(gen: number): void {
    if (closed || gen !== generation) return;
    bounded(pool, current`SELECT 1`, 'a probe').then(
      () => {
        if (gen === generation) down = false;
      },
      () => setTimeout(() => probe(generation), retryMs).unref(),
    );
  }

  const pool: Pool = {
    current: () => current,
    generation: () => generation,
    limits,
    stalled(gen) {
      if (closed || gen > generation) return Promise.resolve();
      if (gen < generation) return retiring.get(gen) ?? Promise.resolve();
      generation++;
      const old = current;
      current = postgres(url, { ...options, max });
      // timeout 0: every connection is closed at once and what waited on them rejects
      // (CONNECTION_DESTROYED), instead of waiting for answers that may never come.
      const ended = old.end({ timeout: 0 }).catch(() => undefined);
      retiring.set(gen, ended);
      void ended.then(() => retiring.delete(gen));
      // The same server: its LISTEN connection is as stuck.
      replaceListener();
      if (fallback !== undefined) {
        down = true;
        probe(generation);
      }
      return ended;
    },
  };

  async function listen(channel: string, fn: (payload: string) => void, onlisten?: () => void) {
    listener ??= openListener();
    const l: Listener = { fn, onlisten };
    let set = channels.get(channel);
    if (set !== undefined) {
      set.add(l);
      l.onlisten?.();
    } else {
      channels.set(channel, (set = new Set([l])));
      try {
        await listenOn(listener, channel);
      } catch (err) {
        channels.delete(channel);
        throw err;
      }
    }
    const listening = set;
    return {
      state: undefined,
      async unlisten() {
        listening.delete(l);
        if (listening.size > 0 || channels.get(channel) !== listening) return;
        channels.delete(channel);
        await listener?.unsafe(`UNLISTEN "${channel.replace(/"/g, '""')}"`).catch(() => undefined);
      },
    };
  }

  async function end(opts?: { timeout?: number }) {
    closed = true;
    // The LISTEN connection has nothing to finish: ended at once, so that a LISTEN still queued
    // is rejected (postgres.js would open a new connection for it once the old one closed).
    await Promise.all([current.end(opts), listener?.end({ timeout: 0 })]);
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
 * `sql.begin(fn)` within the pool's deadline, counted from the database's last answer: a
 * transaction of many statements (a bulk chunk, the seed) may take longer as long as the
 * database keeps answering, and its COMMIT gets the whole deadline. Its statements and lock
 * waits are bounded on the server too (SET LOCAL). A transaction that misses it rejects with
 * IDN_UNAVAILABLE, whether or not its COMMIT reached the server, and the pool is replaced.
 */
export function beginWithin<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const pool = pools.get(sql);
  const ms = pool?.limits.statementTimeoutMs ?? 0;
  if (pool === undefined || ms <= 0) return sql.begin(fn) as Promise<T>;
  const generation = pool.generation();
  let last = performance.now();
  const progress = () => void (last = performance.now());
  const guard: TxGuard = {
    lost: undefined,
    lose: () => (guard.lost ??= pool.stalled(generation)),
  };
  const work = pool.current().begin(async (tx) => {
    progress();
    // Sent ahead of fn's first statement on the same connection: no round trip of its own.
    tx.unsafe(`SET LOCAL statement_timeout = ${ms}; SET LOCAL lock_timeout = ${ms}`).catch(() => undefined);
    const out = await fn(watchedTx(tx, progress, guard));
    progress();
    return out;
  }) as Promise<T>;
  // postgres.js rejects the transaction as soon as its connection closes, while fn may still run.
  work.catch((err: unknown) => {
    if (connectionLost(err)) void guard.lose();
  });
  return within(
    ms,
    work,
    'a write transaction',
    () => void guard.lose(),
    () => last,
  );
}
