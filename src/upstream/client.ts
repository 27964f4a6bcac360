/**
 * The only module that imports undici: one keep-alive Pool per origin, explicit connect,
 * headers and body timeouts (each phase bounded by upstream.timeoutMs), a total deadline per
 * request (upstream.deadlineMs), a bound on in-flight requests per
 * origin (over it: 503/3 at once, never a queue), a response size limit, validation of what
 * comes back (a Handle answer, for the identifier asked, with valid values), and a breaker
 * that marks an origin down after repeated failures so callers fail fast until a probe succeeds.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { IdnError } from '../errors.js';
import { foldCase, parseIdentifier } from '../identifier/index.js';

export const HOP_HEADER = 'idn-hop-count';
export const MAX_HOPS = 8;

export interface UpstreamOptions {
  timeoutMs: number;
  /** Bounds a whole request (connect, headers, entire body): undici's timeouts restart on every chunk. */
  deadlineMs: number;
  maxInFlight: number;
  maxResponseBytes: number;
  /** Consecutive failures that mark an origin down. */
  failuresToDown: number;
  /** How long an origin stays down before one probe request is let through. */
  downCooldownMs: number;
  now?: () => number;
  /** Called after every forwarded resolution: origin, ms, and the IDN_* code of a failure (metrics). */
  onResult?: (base: string, ms: number, failure: string | undefined) => void;
}

/** A Handle answer from another node: relayed as it came, status and bytes. */
/** A strong entity tag (RFC 9110 §8.8.3): quoted, no W/ prefix, visible ASCII only. */
const STRONG_ETAG = /^"[\x21\x23-\x7e]{1,128}"$/;

export interface UpstreamAnswer {
  status: number;
  /** The answer's bytes as UTF-8 text (decoded once, for validation and for the cache entry). */
  text: string;
  responseCode: number;
  handle: string | undefined;
  values: Array<{ index: number; type: string; ttl?: unknown }> | undefined;
  cacheStatus: string | undefined;
  /** The upstream's strong ETag for these exact bytes, if it sent one (kept: the bytes are relayed unchanged). */
  etag: string | undefined;
}

export interface OriginStats {
  state: 'up' | 'down' | 'probing';
  inFlight: number;
  /** Every request sent (forwarded resolutions and sync reports). */
  requests: number;
  /** Forwarded resolutions alone. */
  resolutions: number;
  failures: number;
  consecutiveFailures: number;
}

export interface ResolveOptions {
  hops: number;
  auth: boolean;
  /**
   * Checks a success answer's value list and returns what is wrong with it (`values[2].ttl is
   * missing`), or undefined. Passed in by the caller: the rules live with the write path's.
   */
  checkValues: (values: unknown[]) => string | undefined;
}

export interface UpstreamClient {
  /** GET {base}/api/handles/{identifier}[?auth=true], with the hop count this request carries; `identifier` is a parsed identifier's text. */
  resolve(base: string, identifier: string, opts: ResolveOptions): Promise<UpstreamAnswer>;
  /** POST JSON to {base}{path} with a bearer token (sync reports); any HTTP status is returned. */
  postJson(base: string, path: string, body: unknown, token: string): Promise<{ status: number; json: unknown }>;
  stats(): Record<string, OriginStats>;
  close(): Promise<void>;
}

interface Origin {
  pool: Pool;
  basePath: string;
  inFlight: number;
  requests: number;
  resolutions: number;
  failures: number;
  consecutiveFailures: number;
  downUntil: number;
  probing: boolean;
}

/** Path of an identifier on another node: percent-encoded once, `/` kept readable. */
export function identifierPath(identifier: string): string {
  if (PLAIN_PATH.test(identifier)) return `/api/handles/${identifier}`;
  return `/api/handles/${encodeURIComponent(identifier).replace(/%2F/g, '/')}`;
}

/** Whether an answer's `handle` names `asked` (already parsed): ASCII case-insensitive, `88.1` the same as `0.NA/88.1`. */
function namesAsked(handle: string, asked: string): boolean {
  // The usual answer echoes the spelling asked, which the resolver parsed already.
  if (handle === asked) return true;
  try {
    return parseIdentifier(handle, { slashlessIsPrefix: true }).key === foldCase(asked);
  } catch {
    return false;
  }
}

/** What an exchange is failed with when its deadline passes (no stack: it is never thrown as is). */
const DEADLINE_PASSED = Object.freeze({ deadline: true });
/** What an exchange is failed with when the answer passes upstream.maxResponseBytes. */
const TOO_LARGE = Object.freeze({ tooLarge: true });
const NO_BYTES = Buffer.alloc(0);

/**
 * One request in flight, as undici's dispatch handler: the body is kept as it arrives (one
 * chunk, usually, so no copy) instead of through a Readable and its async iterator, and the
 * headers stay the raw list undici parsed (two are read). Settles its promise exactly once.
 */
class Exchange {
  status = 0;
  rawHeaders: Buffer[] = [];
  size = 0;
  private first: Buffer | undefined = undefined;
  private rest: Buffer[] | undefined = undefined;
  private abort: ((err?: Error) => void) | undefined = undefined;
  private settled = false;

  constructor(
    readonly deadline: number,
    private readonly limit: number,
    private readonly resolve: (x: Exchange) => void,
    private readonly reject: (err: unknown) => void,
    private readonly pending: Set<Exchange>,
  ) {}

  get body(): Buffer {
    if (this.rest !== undefined) return Buffer.concat(this.rest, this.size);
    return this.first ?? NO_BYTES;
  }

  /** The value of response header `name` (lower case); several are joined with ", ". */
  header(name: string): string | undefined {
    let out: string | undefined;
    const h = this.rawHeaders;
    for (let i = 0; i < h.length; i += 2) {
      const k = h[i]!;
      if (k.length !== name.length || k.toString('latin1').toLowerCase() !== name) continue;
      const v = h[i + 1]!.toString('latin1');
      out = out === undefined ? v : `${out}, ${v}`;
    }
    return out;
  }

  /** Settles with `reason` and, once undici has the request on a socket, aborts it there (undici destroys the socket). */
  fail(reason: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.pending.delete(this);
    this.reject(reason);
    // Not yet on a socket: onConnect aborts it when it gets one.
    this.abort?.(reason instanceof Error ? reason : new Error('aborted'));
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.settled) abort(new Error('aborted'));
    else this.abort = abort;
  }

  onHeaders(status: number, headers: Buffer[]): boolean {
    // 1xx: the final answer comes after.
    if (status < 200) return true;
    this.status = status;
    this.rawHeaders = headers;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.settled) return false;
    this.size += chunk.length;
    if (this.size > this.limit) {
      this.fail(TOO_LARGE);
      return false;
    }
    if (this.first === undefined) this.first = chunk;
    else if (this.rest === undefined) this.rest = [this.first, chunk];
    else this.rest.push(chunk);
    return true;
  }

  onComplete(): void {
    if (this.settled) return;
    this.settled = true;
    this.pending.delete(this);
    this.resolve(this);
  }

  onError(err: Error): void {
    this.fail(err);
  }
}

/** The request headers for each hop count, built once. */
const FORWARD_HEADERS = Array.from({ length: MAX_HOPS + 1 }, (_, hops) => [HOP_HEADER, String(hops), 'accept', 'application/json']);

/** Characters encodeURIComponent leaves as they are, and `/`: such an identifier is its own path. */
const PLAIN_PATH = /^[\w.!~*'()/-]*$/;

export function createUpstreamClient(opts: UpstreamOptions): UpstreamClient {
  const now = opts.now ?? Date.now;
  const origins = new Map<string, Origin>();

  function originOf(base: string): Origin {
    let o = origins.get(base);
    if (o === undefined) {
      const url = new URL(base);
      o = {
        pool: new Pool(url.origin, {
          connections: Math.min(opts.maxInFlight, 64),
          connectTimeout: opts.timeoutMs,
          headersTimeout: opts.timeoutMs,
          bodyTimeout: opts.timeoutMs,
          keepAliveTimeout: 30_000,
        }),
        basePath: url.pathname.replace(/\/+$/, ''),
        inFlight: 0,
        requests: 0,
        resolutions: 0,
        failures: 0,
        consecutiveFailures: 0,
        downUntil: 0,
        probing: false,
      };
      origins.set(base, o);
    }
    return o;
  }

  /** Admission: the breaker, then the in-flight bound. Returns whether this call is the probe. */
  function admit(base: string, o: Origin, handle: string | undefined): boolean {
    if (o.downUntil > 0) {
      const wait = o.downUntil - now();
      if (wait > 0 || o.probing)
        throw new IdnError(
          'IDN_UNAVAILABLE',
          `the node at ${base} is marked down after ${o.consecutiveFailures} failures in a row; it is probed again in ${Math.max(1, Math.ceil(wait / 1000))} s`,
          {
            handle,
            headers: { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) },
          },
        );
      o.probing = true;
      return true;
    }
    if (o.inFlight >= opts.maxInFlight)
      throw new IdnError('IDN_UNAVAILABLE', `${o.inFlight} requests to ${base} are in flight (config upstream.maxInFlight); retry shortly`, {
        handle,
        headers: { 'retry-after': '1' },
      });
    return false;
  }

  function settle(o: Origin, probe: boolean, failed: boolean): void {
    if (probe) o.probing = false;
    if (!failed) {
      o.consecutiveFailures = 0;
      o.downUntil = 0;
      return;
    }
    o.failures++;
    o.consecutiveFailures++;
    if (probe || o.consecutiveFailures >= opts.failuresToDown) o.downUntil = now() + opts.downCooldownMs;
  }

  /** Translates transport errors into IDN_* errors, keeping the cause. */
  function transportError(base: string, err: unknown, handle: string | undefined): IdnError {
    if (err instanceof IdnError) return err;
    if (err === TOO_LARGE) return tooLarge(base, handle);
    if (err === DEADLINE_PASSED)
      return new IdnError(
        'IDN_UPSTREAM_TIMEOUT',
        `the node at ${base} did not send its whole answer within ${opts.deadlineMs} ms (config upstream.deadlineMs)`,
        { handle, cause: err },
      );
    const code = (err as { code?: string }).code ?? '';
    const name = (err as { name?: string }).name ?? '';
    if (
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT' ||
      code === 'UND_ERR_CONNECT_TIMEOUT' ||
      name === 'TimeoutError' ||
      code === 'UND_ERR_ABORTED'
    )
      return new IdnError('IDN_UPSTREAM_TIMEOUT', `the node at ${base} did not answer within ${opts.timeoutMs} ms (config upstream.timeoutMs)`, {
        handle,
        cause: err,
      });
    return new IdnError('IDN_UPSTREAM_UNREACHABLE', `could not reach the node at ${base} (${code || name || 'connection failed'})`, { handle, cause: err });
  }

  /**
   * One deadline for every request in flight: requests are kept in start order (the deadline
   * is the same for all, so the oldest expires first) and a single timer, armed for the
   * oldest, expires what is overdue. A timer and an AbortController per request cost about
   * 12 µs of a forward's CPU.
   */
  const pending = new Set<Exchange>();
  let sweepTimer: NodeJS.Timeout | undefined;

  function arm(ms: number): void {
    sweepTimer = setTimeout(sweep, Math.max(1, Math.ceil(ms)));
    // An exchange in flight holds its socket, which keeps the process alive; the timer need not.
    sweepTimer.unref();
  }

  function sweep(): void {
    sweepTimer = undefined;
    const t = performance.now();
    for (const x of pending) {
      if (x.deadline > t) return arm(x.deadline - t);
      x.fail(DEADLINE_PASSED);
    }
  }

  /** Sends one request on `o`'s pool; settles with the whole answer, an undici error, or DEADLINE_PASSED. */
  function exchange(o: Origin, path: string, method: 'GET' | 'POST', headers: string[], body: string | null, t0: number): Promise<Exchange> {
    return new Promise<Exchange>((resolve, reject) => {
      const x = new Exchange(t0 + opts.deadlineMs, opts.maxResponseBytes, resolve, reject, pending);
      pending.add(x);
      if (sweepTimer === undefined) arm(opts.deadlineMs);
      o.pool.dispatch({ path, method, headers, body }, x);
    });
  }

  function tooLarge(base: string, handle: string | undefined): IdnError {
    return new IdnError('IDN_UPSTREAM_BAD_ANSWER', `the node at ${base} sent more than ${opts.maxResponseBytes} bytes (config upstream.maxResponseBytes)`, {
      handle,
    });
  }

  function validate(
    base: string,
    status: number,
    text: string,
    handle: string,
    checkValues: ResolveOptions['checkValues'],
  ): Pick<UpstreamAnswer, 'responseCode' | 'handle' | 'values'> {
    const bad = (why: string) =>
      new IdnError('IDN_UPSTREAM_BAD_ANSWER', `the node at ${base} answered something that is not a Handle answer (${why})`, { handle });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw bad(`HTTP ${status}, not JSON`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('not a JSON object');
    const a = json as { responseCode?: unknown; handle?: unknown; values?: unknown };
    if (!Number.isInteger(a.responseCode)) throw bad('no responseCode');
    const rc = a.responseCode as number;
    if (rc === 1 || rc === 200) {
      if (status !== 200) throw bad(`responseCode ${rc} with HTTP ${status}`);
      if (typeof a.handle !== 'string' || a.values === undefined) throw bad('a success without handle and values');
      if (!Array.isArray(a.values))
        throw bad(`values is ${a.values === null ? 'null' : typeof a.values === 'object' ? 'an object' : `a ${typeof a.values}`}, not a list`);
      if (!namesAsked(a.handle, handle)) throw wrongHandle(base, a.handle, handle);
      const problem = checkValues(a.values);
      if (problem !== undefined) throw new IdnError('IDN_UPSTREAM_BAD_ANSWER', `the node at ${base} answered an invalid value: ${problem}`, { handle });
      return { responseCode: rc, handle: a.handle, values: a.values as UpstreamAnswer['values'] };
    }
    if (status < 400) throw bad(`error responseCode ${rc} with HTTP ${status}`);
    if (typeof a.handle === 'string' && !namesAsked(a.handle, handle)) throw wrongHandle(base, a.handle, handle);
    return { responseCode: rc, handle: typeof a.handle === 'string' ? a.handle : undefined, values: undefined };
  }

  function wrongHandle(base: string, got: string, asked: string): IdnError {
    const shown = got.length > 200 ? `${got.slice(0, 200)}…` : got;
    return new IdnError('IDN_UPSTREAM_BAD_ANSWER', `the node at ${base} answered for ${JSON.stringify(shown)} when asked for ${asked}`, { handle: asked });
  }

  return {
    async resolve(base, identifier, { hops, auth, checkValues }) {
      if (hops + 1 > MAX_HOPS)
        throw new IdnError(
          'IDN_HOP_LIMIT',
          `${identifier} was forwarded ${hops} times already (at most ${MAX_HOPS}); the delegations form a loop or are too deep`,
          { handle: identifier },
        );
      const o = originOf(base);
      const probe = admit(base, o, identifier);
      o.inFlight++;
      o.requests++;
      o.resolutions++;
      let failed = true;
      let failure: string | undefined = 'IDN_UPSTREAM_BAD_ANSWER';
      const t0 = performance.now();
      try {
        const path = `${o.basePath}${identifierPath(identifier)}${auth ? '?auth=true' : ''}`;
        const x = await exchange(o, path, 'GET', FORWARD_HEADERS[hops + 1]!, null, t0);
        const text = x.body.toString('utf8');
        const answer = validate(base, x.status, text, identifier, checkValues);
        failed = false;
        failure = undefined;
        const etag = x.header('etag');
        return {
          status: x.status,
          text,
          responseCode: answer.responseCode,
          handle: answer.handle,
          values: answer.values,
          cacheStatus: x.header('cache-status'),
          etag: etag !== undefined && STRONG_ETAG.test(etag) ? etag : undefined,
        };
      } catch (err) {
        const e = transportError(base, err, identifier);
        failure = e.code;
        throw e;
      } finally {
        o.inFlight--;
        settle(o, probe, failed);
        opts.onResult?.(base, performance.now() - t0, failure);
      }
    },

    async postJson(base, path, body, token) {
      const o = originOf(base);
      const probe = admit(base, o, undefined);
      o.inFlight++;
      o.requests++;
      let failed = true;
      try {
        const headers = ['content-type', 'application/json', 'authorization', `Bearer ${token}`];
        const x = await exchange(o, `${o.basePath}${path}`, 'POST', headers, JSON.stringify(body), performance.now());
        let json: unknown;
        try {
          json = JSON.parse(x.body.toString('utf8'));
        } catch {
          json = undefined;
        }
        failed = x.status >= 500;
        return { status: x.status, json };
      } catch (err) {
        throw transportError(base, err, undefined);
      } finally {
        o.inFlight--;
        settle(o, probe, failed);
      }
    },

    stats() {
      const out: Record<string, OriginStats> = {};
      for (const [base, o] of origins)
        out[base] = {
          state: o.probing ? 'probing' : o.downUntil > now() ? 'down' : 'up',
          inFlight: o.inFlight,
          requests: o.requests,
          resolutions: o.resolutions,
          failures: o.failures,
          consecutiveFailures: o.consecutiveFailures,
        };
      return out;
    },

    async close() {
      if (sweepTimer !== undefined) clearTimeout(sweepTimer);
      sweepTimer = undefined;
      await Promise.all([...origins.values()].map((o) => o.pool.close()));
      origins.clear();
    },
  };
}
