/**
 * Load shedding: under overload, answer 503/3 with Retry-After at once instead of letting
 * latency grow without bound. Two signals: requests in flight on the fastify path (misses,
 * writes, forwarding: the work that queues), and event-loop delay (the loop itself is
 * behind, whatever the cause). Cache hits before fastify are never refused (answering one
 * costs less than refusing it); store misses before fastify are not counted in flight (they
 * are answered synchronously) but defer to fastify, and so are refused, while overloaded.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface SheddingOptions {
  /** Requests in flight on the fastify path; more are refused (0: no bound). */
  maxInFlight: number;
  /** Longest event-loop delay in the last check interval that turns shedding on, ms (0: off). */
  eventLoopDelayMs: number;
  checkIntervalMs?: number;
}

export interface Shedder {
  /** Whether to refuse a new request now; when it returns false the caller must `done()` later. */
  refuse(): string | undefined;
  done(): void;
  inFlight(): number;
  /** True while new work past the cache would be refused (the fast path then defers to fastify). */
  overloaded(): boolean;
  /** Feeds one event-loop delay sample, ms (the monitor does this; tests may too). */
  observeDelay(ms: number): void;
  stop(): void;
}

export function createShedder(opts: SheddingOptions): Shedder {
  let inFlight = 0;
  let overloaded = false;
  let lastDelay = 0;
  const observeDelay = (ms: number) => {
    lastDelay = ms;
    overloaded = opts.eventLoopDelayMs > 0 && ms > opts.eventLoopDelayMs;
  };
  let timer: NodeJS.Timeout | undefined;
  let monitor: ReturnType<typeof monitorEventLoopDelay> | undefined;
  if (opts.eventLoopDelayMs > 0) {
    monitor = monitorEventLoopDelay({ resolution: 10 });
    monitor.enable();
    timer = setInterval(() => {
      observeDelay(monitor!.max / 1e6);
      monitor!.reset();
    }, opts.checkIntervalMs ?? 200);
    timer.unref();
  }
  return {
    refuse() {
      if (overloaded) return `the node is overloaded (event loop ${Math.round(lastDelay)} ms behind; config shedding.eventLoopDelayMs); retry shortly`;
      if (opts.maxInFlight > 0 && inFlight >= opts.maxInFlight) return `${inFlight} requests are in flight (config shedding.maxInFlight); retry shortly`;
      inFlight++;
      return undefined;
    },
    done() {
      inFlight--;
    },
    inFlight: () => inFlight,
    overloaded: () => overloaded || (opts.maxInFlight > 0 && inFlight >= opts.maxInFlight),
    observeDelay,
    stop() {
      if (timer !== undefined) clearInterval(timer);
      monitor?.disable();
    },
  };
}
