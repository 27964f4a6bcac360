/**
 * Load shedding: under overload, answer 503/3 with Retry-After at once instead of letting
 * latency grow without bound. Two signals: requests in flight on the fastify path (misses,
 * writes, forwarding: the work that queues), and event-loop delay (the loop itself is
 * behind, whatever the cause). Cache hits before fastify are never refused (answering one
 * costs less than refusing it); store misses before fastify are not counted in flight (they
 * are answered synchronously) but defer to fastify, and so are refused, while overloaded.
 *
 * The operator is never locked out: health checks, /metrics and calls with a valid admin
 * token are admitted (and counted in flight) even while overloaded. The token is looked up
 * only when a request with an Authorization header would otherwise be refused, so the shed
 * decision for anonymous traffic reads nothing.
 *
 * The delay is the 90th percentile of the loop's lateness over a window (1 s), not the
 * longest single delay: one stall (a GC pause, a bulk chunk, the OS running other work on a
 * shared machine) is one late sample, while an overloaded loop is late on nearly every turn.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface SheddingOptions {
  /** Requests in flight on the fastify path; more are refused (0: no bound). */
  maxInFlight: number;
  /** 90th percentile of event-loop delay over a window that turns shedding on, ms (0: off). */
  eventLoopDelayMs: number;
  /** The window the percentile is taken over, ms. */
  windowMs?: number;
  /** True for credentials of a valid, unrevoked admin token (asked only when about to refuse). */
  isAdmin?: (authorization: string) => boolean;
}

/** Paths answered whatever the load: an overloaded node must still say so. */
const NEVER_SHED = new Set(['/healthz', '/readyz', '/metrics']);

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
  /** A property, not a method: it is passed around unbound as a 'close' listener. */
  done: () => void;
  inFlight(): number;
  /** True while new work past the cache would be refused (the fast path then defers to fastify). */
  overloaded(): boolean;
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
  let monitor: ReturnType<typeof monitorEventLoopDelay> | undefined;
  if (opts.eventLoopDelayMs > 0) {
    monitor = monitorEventLoopDelay({ resolution: 10 });
    monitor.enable();
    timer = setInterval(() => {
      observeDelay(monitor!.percentile(DELAY_PERCENTILE) / 1e6);
      monitor!.reset();
    }, opts.windowMs ?? DELAY_WINDOW_MS);
    timer.unref();
  }
  function refuse(): string | undefined {
    if (overloaded) return `the node is overloaded (event loop ${Math.round(lastDelay)} ms behind; config shedding.eventLoopDelayMs); retry shortly`;
    if (opts.maxInFlight > 0 && inFlight >= opts.maxInFlight) return `${inFlight} requests are in flight (config shedding.maxInFlight); retry shortly`;
    inFlight++;
    changed();
    return undefined;
  }
  return {
    refuse,
    admit(url, authorization) {
      const why = refuse();
      if (why === undefined) return undefined;
      const q = url.indexOf('?');
      const exempt =
        NEVER_SHED.has(q < 0 ? url : url.slice(0, q)) || (authorization !== undefined && opts.isAdmin !== undefined && opts.isAdmin(authorization));
      if (!exempt) return why;
      inFlight++;
      changed();
      return undefined;
    },
    done() {
      inFlight--;
      changed();
    },
    inFlight: () => inFlight,
    overloaded: () => overloaded || (opts.maxInFlight > 0 && inFlight >= opts.maxInFlight),
    observeDelay,
    watch(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      monitor?.disable();
    },
  };
}
