/**
 * /metrics (Prometheus, prom-client: a well-kept client whose text format and histogram
 * maths we would otherwise rewrite). One registry per node, so several nodes in one process
 * (tests) do not mix. The hot path only bumps plain counters and a pre-bound histogram
 * child; everything else is read from the parts' own counters when Prometheus scrapes.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import type { Resolver } from '../resolver/index.js';
import type { UpstreamClient } from '../upstream/client.js';

export type Source = 'cache' | 'store' | 'upstream';

export interface Metrics {
  registry: Registry;
  /** A request answered by fastify (route pattern, method, status). */
  request(route: string, method: string, status: number): void;
  /** A resolution answered before fastify (a cache hit, or a miss from the store). */
  fastHit(status: number, ms: number | undefined, source?: Source): void;
  resolution(source: Source, ms: number): void;
  storeWrite(ms: number): void;
  upstreamResult(base: string, ms: number, failure: string | undefined): void;
  bulkRecords(n: number): void;
  /** A native-protocol request (src/native): its Handle responseCode, or 'dropped' when nothing was sent back. */
  nativeRequest(transport: 'udp' | 'tcp', responseCode: number | 'dropped', ms?: number, source?: Source): void;
  render(): Promise<string>;
}

/**
 * What /metrics and /readyz show of a node's URL: scheme, host and port only. Anyone may read
 * them, and a configured URL may carry credentials (`http://user:pass@…`) or a private path.
 */
export function originLabel(base: string): string {
  try {
    const origin = new URL(base).origin;
    return origin === 'null' ? 'unknown' : origin;
  } catch {
    return 'unknown';
  }
}

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * A histogram with one label, for the per-request resolution latency: an observation is a
 * bucket search and three additions. prom-client's bound child validates and hashes its labels
 * on every observe (1-4 % of a miss's CPU in the profiles). The registry renders it the way it
 * renders prom-client's own histograms (it reads `get()`).
 */
export class LabelledHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** The observe function of one label value (seconds). */
  child(label: string): (seconds: number) => void {
    const s = { counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
    this.series.set(label, s);
    const bounds = this.bounds;
    return (v) => {
      let i = 0;
      while (i < bounds.length && v > bounds[i]!) i++;
      s.counts[i]!++;
      s.sum += v;
      s.count++;
    };
  }

  get(): {
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }>;
  } {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const [label, s] of this.series) {
      // An unused label value is not shown, as with prom-client.
      if (s.count === 0) continue;
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({ labels: { le, [this.labelName]: label }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', [this.labelName]: label }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { [this.labelName]: label }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { [this.labelName]: label }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

export function createMetrics(deps: { resolver: () => Resolver; upstream: () => UpstreamClient }): Metrics {
  const registry = new Registry();
  // Process and runtime: resident memory, heap spaces, GC pauses, event-loop delay (read at scrape time).
  collectDefaultMetrics({ register: registry });
  const fastHits = new Map<number, number>();
  const reported = new Map<number, number>();
  const requests = new Counter({
    name: 'idnode_http_requests_total',
    help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
    collect() {
      for (const [status, n] of fastHits) {
        const delta = n - (reported.get(status) ?? 0);
        if (delta > 0) this.inc({ route: '/api/handles/*', method: 'GET', status: String(status) }, delta);
        reported.set(status, n);
      }
    },
  });
  const resolution = new LabelledHistogram(
    'idnode_resolution_seconds',
    'Resolution latency by where the answer came from',
    'source',
    LATENCY_BUCKETS,
    registry,
  );
  const bySource = { cache: resolution.child('cache'), store: resolution.child('store'), upstream: resolution.child('upstream') };
  const storeWrite = new Histogram({
    name: 'idnode_sqlite_write_seconds',
    help: 'Duration of each committed write transaction',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const upstreamLatency = new Histogram({
    name: 'idnode_upstream_request_seconds',
    help: 'Forwarded resolutions by origin',
    labelNames: ['origin'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const upstreamErrors = new Counter({
    name: 'idnode_upstream_errors_total',
    help: 'Failed forwarded resolutions by origin and IDN_* code',
    labelNames: ['origin', 'code'],
    registers: [registry],
  });
  const upstreamBases = new Map<string, { origin: string; latency: ReturnType<typeof upstreamLatency.labels> }>();
  const bulk = new Counter({
    name: 'idnode_bulk_records_total',
    help: 'Records written by bulk registration (rate() gives records per second)',
    registers: [registry],
  });
  const nativeRequests = new Counter({
    name: 'idnode_native_requests_total',
    help: 'Native Handle protocol requests by transport and responseCode ("dropped": malformed, nothing sent back)',
    labelNames: ['transport', 'rc'],
    registers: [registry],
  });
  const cacheCounter = (name: string, help: string, key: 'hits' | 'misses' | 'stale' | 'evictions' | 'filtered') => {
    let last = 0;
    return new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = deps.resolver().stats()[key];
        if (now > last) this.inc(now - last);
        last = now;
      },
    });
  };
  cacheCounter('idnode_cache_hits_total', 'Answers served from the cache', 'hits');
  cacheCounter('idnode_cache_misses_total', 'Lookups answered from the store or an upstream', 'misses');
  cacheCounter('idnode_cache_stale_total', 'Expired answers served because the upstream failed', 'stale');
  cacheCounter('idnode_cache_evictions_total', 'Entries dropped by the LRU for room', 'evictions');
  cacheCounter('idnode_key_filter_negatives_total', 'Misses answered not-found by the key filter, without a database read', 'filtered');
  new Gauge({
    name: 'idnode_key_filter_bytes',
    help: 'Bytes held by the key filter (0: off, too large for cache.keyFilterMaxBytes, or not filled yet)',
    registers: [registry],
    collect() {
      this.set(deps.resolver().stats().keyFilterBytes);
    },
  });
  new Gauge({
    name: 'idnode_cache_bytes',
    help: 'Bytes held by the answer cache',
    registers: [registry],
    collect() {
      this.set(deps.resolver().stats().bytes);
    },
  });
  new Gauge({
    name: 'idnode_cache_entries',
    help: 'Answers held by the cache',
    registers: [registry],
    collect() {
      this.set(deps.resolver().stats().entries);
    },
  });
  new Gauge({
    name: 'idnode_upstream_in_flight',
    help: 'Requests in flight per origin',
    labelNames: ['origin', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      // Two bases on one origin (different paths) add up under one label.
      for (const [base, s] of Object.entries(deps.upstream().stats())) this.inc({ origin: originLabel(base), state: s.state }, s.inFlight);
    },
  });

  return {
    registry,
    request: (route, method, status) => requests.inc({ route, method, status: String(status) }),
    fastHit(status, ms, source = 'cache') {
      fastHits.set(status, (fastHits.get(status) ?? 0) + 1);
      // An error answer is counted as a request, not timed as a resolution.
      if (ms !== undefined) bySource[source](ms / 1000);
    },
    resolution: (source, ms) => bySource[source](ms / 1000),
    storeWrite: (ms) => storeWrite.observe(ms / 1000),
    upstreamResult(base, ms, failure) {
      // Per base, once: parsing the URL and hashing the label cost a forward about 2 % of its CPU.
      let b = upstreamBases.get(base);
      if (b === undefined) {
        const origin = originLabel(base);
        b = { origin, latency: upstreamLatency.labels(origin) };
        if (upstreamBases.size < 1024) upstreamBases.set(base, b);
      }
      b.latency.observe(ms / 1000);
      if (failure !== undefined) upstreamErrors.inc({ origin: b.origin, code: failure });
    },
    bulkRecords: (n) => bulk.inc(n),
    nativeRequest(transport, responseCode, ms, source = 'cache') {
      nativeRequests.inc({ transport, rc: String(responseCode) });
      if (ms !== undefined) bySource[source](ms / 1000);
    },
    render: () => registry.metrics(),
  };
}
