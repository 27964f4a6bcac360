/**
 * Load shedding: under overload, answer 503/3 with Retry-After at once instead of letting
 * latency grow without bound. Two signals: requests in flight on the fastify path (misses,
 * writes, forwarding: the work that queues), and event-loop delay (the loop itself is
 * behind, whatever the cause). Cache hits before fastify are never shed (answering one
 * costs less than refusing it; only the connection bound below refuses them); store misses before fastify are not counted in flight (they
 * are answered synchronously) but defer to fastify, and so are refused, while overloaded.
 *
 * The operator is never locked out: health checks, /metrics and calls with a valid admin
 * token are admitted (and counted in flight) even while overloaded. The token is looked up
 * only when a request with an Authorization header would otherwise be refused, so the shed
 * decision for anonymous traffic reads nothing.
 *
 * A slot is work, not a connection: fastify takes it once the body is in (a client trickling
 * a body holds none), and `createConnectionGuard` bounds what a slow or idle client may hold
 * instead: header time, body time, keep-alive idle time and the number of connections.
 *
 * The delay is the 90th percentile of the loop's lateness over a window (1 s), not the
 * longest single delay: one stall (a GC pause, a bulk chunk, the OS running other work on a
 * shared machine) is one late sample, while an overloaded loop is late on nearly every turn.
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { IdnError } from '../errors.js';
import { writeError, writeSocketError } from './answer.js';

export interface SheddingOptions {
  /** Requests in flight on the fastify path; more are refused (0: no bound). */
  maxInFlight: number;
  /** 90th percentile of event-loop delay over a window that turns shedding on, ms (0: off). */
  eventLoopDelayMs: number;
  /** The window the percentile is taken over, ms. */
  windowMs?: number;
  /** True for credentials of a valid, unrevoked admin token (asked only when about to refuse). */
  isAdmin?: (authorization: string) => boolean;
  /** Monotonic milliseconds (performance.now): how long the loop has gone without a turn; tests inject it. */
  now?: () => number;
}

/** Paths answered whatever the load: an overloaded node must still say so. */
const NEVER_SHED = new Set(['/healthz', '/readyz', '/metrics']);

function isNeverShed(url: string): boolean {
  const q = url.indexOf('?');
  return NEVER_SHED.has(q < 0 ? url : url.slice(0, q));
}

const DELAY_PERCENTILE = 90;
const DELAY_WINDOW_MS = 1000;

export interface Shedder {
  /** Whether to refuse a new request now; when it returns undefined the caller must `done()` later. */
  refuse(): string | undefined;
  /**
   * `refuse()` for a request on the fastify path, except that health checks, /metrics and
   * admin calls are admitted while overloaded; the caller must `done()` an admitted request.
   */
  admit(url: string, authorization: string | undefined): string | undefined;
  /** Why a new request would be refused now, without taking a slot (undefined: it would not). */
  reason(): string | undefined;
  /** True for what is never shed: health checks, /metrics, calls with a valid admin token. */
  exempt(url: string, authorization: string | undefined): boolean;
  /** Takes a slot whatever the load (an exempt request); the caller must `done()` it. */
  enter(): void;
  /** A property, not a method: it is passed around unbound as a 'close' listener. */
  done: () => void;
  inFlight(): number;
  /** True while new work past the cache would be refused (the fast path then defers to fastify). */
  overloaded(): boolean;
  /** How far the loop's current turn is past `eventLoopDelayMs`, ms (0: not behind); a store miss then defers to fastify too. */
  behind(): number;
  /** Feeds one event-loop delay measurement, ms (the monitor does this once per window; tests may too). */
  observeDelay(ms: number): void;
  /** Calls `listener` after every change of the in-flight count and every delay measurement; returns the unsubscribe. */
  watch(listener: () => void): () => void;
  stop(): void;
}

export function createShedder(opts: SheddingOptions): Shedder {
  let inFlight = 0;
  let overloaded = false;
  let lastDelay = 0;
  const listeners = new Set<() => void>();
  const changed = () => {
    if (listeners.size > 0) for (const l of [...listeners]) l();
  };
  const observeDelay = (ms: number) => {
    lastDelay = ms;
    overloaded = opts.eventLoopDelayMs > 0 && ms > opts.eventLoopDelayMs;
    changed();
  };
  let timer: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let monitor: ReturnType<typeof monitorEventLoopDelay> | undefined;
  const now = opts.now ?? (() => performance.now());
  /** When the loop last ran its timers: a busy turn that reads request after request never does. */
  let lastTurn = now();
  if (opts.eventLoopDelayMs > 0) {
    monitor = monitorEventLoopDelay({ resolution: 10 });
    monitor.enable();
    timer = setInterval(() => {
      lastTurn = now();
      observeDelay(monitor!.percentile(DELAY_PERCENTILE) / 1e6);
      monitor!.reset();
    }, opts.windowMs ?? DELAY_WINDOW_MS);
    timer.unref();
    ticker = setInterval(() => void (lastTurn = now()), Math.min(50, Math.max(5, Math.floor(opts.eventLoopDelayMs / 4))));
    ticker.unref();
  }
  /**
   * How far the current turn of the loop is past the threshold, ms (0: not behind). The
   * percentile is taken once a window; this is now: under a flood, one turn reads every ready
   * connection, and without it a turn admitted them all, seconds of work in which no new
   * connection, not even a health check, was read (bench/overload.ts).
   */
  function behind(): number {
    if (opts.eventLoopDelayMs <= 0) return 0;
    const late = now() - lastTurn;
    return late > opts.eventLoopDelayMs ? late : 0;
  }
  function reason(): string | undefined {
    if (overloaded) return `the node is overloaded (event loop ${Math.round(lastDelay)} ms behind; config shedding.eventLoopDelayMs); retry shortly`;
    const late = behind();
    if (late > 0) return `the node is overloaded (event loop ${Math.round(late)} ms behind; config shedding.eventLoopDelayMs); retry shortly`;
    if (opts.maxInFlight > 0 && inFlight >= opts.maxInFlight) return `${inFlight} requests are in flight (config shedding.maxInFlight); retry shortly`;
    return undefined;
  }
  function enter(): void {
    inFlight++;
    changed();
  }
  function refuse(): string | undefined {
    const why = reason();
    if (why === undefined) enter();
    return why;
  }
  function exempt(url: string, authorization: string | undefined): boolean {
    return isNeverShed(url) || (authorization !== undefined && opts.isAdmin !== undefined && opts.isAdmin(authorization));
  }
  return {
    refuse,
    reason,
    exempt,
    enter,
    admit(url, authorization) {
      const why = refuse();
      if (why === undefined) return undefined;
      if (!exempt(url, authorization)) return why;
      enter();
      return undefined;
    },
    done() {
      inFlight--;
      changed();
    },
    inFlight: () => inFlight,
    // Not the current turn's lateness: watchers ask this between turns, where a stall is history.
    overloaded: () => overloaded || (opts.maxInFlight > 0 && inFlight >= opts.maxInFlight),
    behind,
    observeDelay,
    watch(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      if (ticker !== undefined) clearInterval(ticker);
      monitor?.disable();
    },
  };
}

/** What a client may hold of the node: time for headers and body, idle time, connections. */
export interface ConnectionLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export interface ConnectionGuard {
  /** For node:http's createServer: the header deadline (bodies are timed by `request`). */
  serverOptions: ServerOptions;
  /** Sets keep-alive and counts the server's connections; returns the server. */
  attach<S extends Server>(server: S): S;
  /** Call first for every request: true when the guard answered it (a connection over the bound). */
  request(req: IncomingMessage, res: ServerResponse): boolean;
}

const STREAMED_TYPE = 'application/x-ndjson';
/** Idle checks per `bodyIdleTimeoutMs`: a silent upload is cut after 4 to 5 of them. */
const IDLE_STEPS = 4;
const OVER = Symbol('over limits.maxConnections');
type Marked = Socket & { [OVER]?: true };

/**
 * Bounds what slow, idle or too many clients hold. Headers: node:http's own deadline (it
 * answers through the server's clientError handler). Bodies: a timer per request that has
 * one (a GET costs a header check), measured from the end of the headers; a streamed bulk
 * upload is instead cut once its connection moves no byte either way for
 * `bodyIdleTimeoutMs`, counted in timer ticks rather than read from a clock. Connections over
 * `maxConnections` are accepted and answered 503 then closed, so a client learns to back off
 * instead of waiting in a full accept queue; what `exempt` says is never shed is answered.
 */
export function createConnectionGuard(limits: ConnectionLimits, exempt: (url: string, authorization: string | undefined) => boolean): ConnectionGuard {
  let open = 0;
  let over = 0;
  const serverOptions: ServerOptions = {
    headersTimeout: limits.headersTimeoutMs,
    // node:http would bound bulk uploads as a whole too; bodies are timed per request below.
    requestTimeout: 0,
    // node:http checks header deadlines on this interval (default 30 s): a quarter of the bound.
    connectionsCheckingInterval: Math.min(1000, Math.max(10, Math.floor(limits.headersTimeoutMs / 4))),
  };

  function cut(req: IncomingMessage, res: ServerResponse, message: string): void {
    if (req.complete || req.destroyed) return;
    if (res.headersSent) req.socket.destroy();
    else writeSocketError(req.socket, '408 Request Timeout', new IdnError('IDN_BAD_REQUEST', message));
  }

  function timeBody(req: IncomingMessage, res: ServerResponse): void {
    const ms = limits.requestTimeoutMs;
    const timer = setTimeout(
      () =>
        cut(
          req,
          res,
          `the request body did not arrive within ${ms} ms (config limits.requestTimeoutMs); send it at once, or stream records to bulk registration`,
        ),
      ms,
    );
    timer.unref();
    const clear = () => clearTimeout(timer);
    req.once('end', clear);
    // After an early answer node:http drains the rest of the body: the timer stays until it ends.
    res.once('close', () => {
      if (req.complete || req.destroyed) clear();
    });
  }

  function watchIdle(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    let seen = socket.bytesRead + socket.bytesWritten;
    let idle = 0;
    const timer = setInterval(
      () => {
        if (req.complete || req.destroyed) return clearInterval(timer);
        const moved = socket.bytesRead + socket.bytesWritten;
        if (moved !== seen) {
          seen = moved;
          idle = 0;
        } else if (++idle >= IDLE_STEPS) {
          clearInterval(timer);
          cut(req, res, `the upload sent nothing for ${limits.bodyIdleTimeoutMs} ms (config limits.bodyIdleTimeoutMs); keep the stream moving or end it`);
        }
      },
      Math.max(10, Math.floor(limits.bodyIdleTimeoutMs / IDLE_STEPS)),
    );
    timer.unref();
    const clear = () => clearInterval(timer);
    req.once('end', clear);
    res.once('close', () => {
      if (req.complete || req.destroyed) clear();
    });
  }

  return {
    serverOptions,
    attach(server) {
      server.keepAliveTimeout = limits.keepAliveTimeoutMs;
      server.on('connection', (socket: Marked) => {
        open++;
        const marked = open > limits.maxConnections;
        if (marked) {
          socket[OVER] = true;
          over++;
        }
        socket.once('close', () => {
          open--;
          if (marked) over--;
        });
      });
      return server;
    },
    request(req, res) {
      if (over > 0 && (req.socket as Marked)[OVER] === true) {
        res.shouldKeepAlive = false;
        if (!exempt(req.url!, req.headers.authorization)) {
          const why = `${open} connections are open (config limits.maxConnections); retry shortly`;
          writeError(req, res, new IdnError('IDN_UNAVAILABLE', why, { headers: { 'retry-after': '1' } }));
          return true;
        }
      }
      const h = req.headers;
      const length = h['content-length'];
      if (h['transfer-encoding'] === undefined && (length === undefined || length === '0')) return false;
      if (h['content-type']?.split(';')[0]?.trim().toLowerCase() === STREAMED_TYPE) watchIdle(req, res);
      else timeBody(req, res);
      return false;
    },
  };
}
