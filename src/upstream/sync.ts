/**
 * Sync up (API.md §3.3): a node reports each prefix it creates or changes, and periodic
 * statistics, to its upstream. Reports are queued in the store's outbox in the same
 * transaction as the change, then sent by a worker with retries, exponential backoff and
 * jitter; the idempotency key makes a re-sent report a no-op on the upstream, so a crash or
 * restart on either side loses nothing and applies nothing twice. Every node (and worker) on
 * one database runs a sender: each claims a report for a lease before sending it, so any may
 * send it and, while leases hold, none sends it twice.
 */
import { IdnError } from '../errors.js';
import { isUnderPrefix, parsePrefix } from '../identifier/index.js';
import type { ReportRow, Store } from '../store/index.js';
import type { UpstreamClient } from './client.js';

export const REPORTS_PATH = '/api/sync/reports';

/** Counters for the statistics reports: registrations, resolutions and their latency. */
export interface NodeStats {
  resolution(ms: number): void;
  registration(): void;
  /** The interval since the last call, then starts a new one. */
  take(nowMs: number): StatsReport;
}

export interface StatsReport {
  kind: 'stats';
  from: string;
  to: string;
  registrations: number;
  resolutions: number;
  /** Over the last 4096 resolutions of the interval. */
  latencyMs: { p50: number; p95: number; p99: number };
}

const SAMPLES = 4096;

export function createNodeStats(startMs: number = Date.now()): NodeStats {
  const ring = new Float64Array(SAMPLES);
  let n = 0;
  let registrations = 0;
  let from = startMs;
  return {
    resolution(ms) {
      ring[n % SAMPLES] = ms;
      n++;
    },
    registration() {
      registrations++;
    },
    take(nowMs) {
      const sorted = Array.from(ring.subarray(0, Math.min(n, SAMPLES))).sort((a, b) => a - b);
      const pct = (p: number) => (sorted.length === 0 ? 0 : Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! * 1000) / 1000);
      const report: StatsReport = {
        kind: 'stats',
        from: new Date(from).toISOString(),
        to: new Date(nowMs).toISOString(),
        registrations,
        resolutions: n,
        latencyMs: { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99) },
      };
      n = 0;
      registrations = 0;
      from = nowMs;
      return report;
    },
  };
}

export interface SyncWorker {
  start(): void;
  /** Sends what is due now (also called by the timer); resolves when this round is done. */
  tick(): Promise<void>;
  /** Queues a statistics report for the interval so far (resolves once it is stored). */
  reportStats(): Promise<void>;
  stop(): Promise<void>;
}

/** Statuses after which a report is retried; other 4xx answers are final rejections. */
const RETRY_STATUS = new Set([401, 408, 425, 429]);

export function createSyncWorker(deps: {
  store: Store;
  upstream: UpstreamClient;
  url: string;
  token: string;
  retryMaxMs: number;
  /** How long a claimed report is this sender's alone (config sync.leaseMs). */
  leaseMs: number;
  statsIntervalSeconds: number;
  stats: NodeStats;
  /** The upstream accepted a prefix report: make the prefix active. */
  onPrefixAccepted: (prefix: string) => void | Promise<void>;
  onError?: (message: string) => void;
  now?: () => number;
}): SyncWorker {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  let round: Promise<void> | undefined;
  let timers: NodeJS.Timeout[] = [];
  let stopped = false;

  function backoff(attempts: number): number {
    const base = Math.min(deps.retryMaxMs, 250 * 2 ** Math.min(attempts, 20));
    return Math.round(base * (0.5 + Math.random()));
  }

  async function sendDue(): Promise<void> {
    while (!stopped) {
      // One report at a time: the lease covers one send, and a sender that stops or fails holds no others.
      const [row] = await store.claimReports(now(), 1, deps.leaseMs);
      if (row === undefined) return;
      const body: Record<string, unknown> = { ...(JSON.parse(row.bodyJson) as Record<string, unknown>), idempotencyKey: row.idemKey };
      try {
        const res = await deps.upstream.postJson(deps.url, REPORTS_PATH, body, deps.token);
        const message = (res.json as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`;
        if (res.status >= 200 && res.status < 300) {
          await store.markReport(row.id, 'sent', null);
          if (row.kind === 'prefix') await deps.onPrefixAccepted(body.prefix as string);
        } else if (res.status >= 500 || RETRY_STATUS.has(res.status)) {
          await store.retryReport(row.id, now() + backoff(row.attempts), `HTTP ${res.status}: ${message}`);
        } else {
          await store.markReport(row.id, 'rejected', `HTTP ${res.status}: ${message}`);
          deps.onError?.(`the upstream rejected report ${row.idemKey}: ${message}`);
        }
      } catch (err) {
        await store.retryReport(row.id, now() + backoff(row.attempts), (err as Error).message);
        // The upstream is unreachable: the rest would fail the same way; wait for the next round.
        return;
      }
    }
  }

  function tick(): Promise<void> {
    if (round === undefined)
      round = sendDue()
        .catch((err: unknown) => deps.onError?.(`sync round failed: ${(err as Error).message}`))
        .finally(() => {
          round = undefined;
        });
    return round;
  }

  async function reportStats(): Promise<void> {
    const report = deps.stats.take(now());
    await store.write({ actor: 'sync', action: 'sync.stats', target: deps.url }, async (tx) => {
      await tx.enqueueReport('stats', `stats:${report.from}:${report.to}:${Math.random().toString(36).slice(2)}`, JSON.stringify(report));
      return { result: undefined, payload: null };
    });
    void tick();
  }

  return {
    start() {
      // Due reports go out within a quarter second when the upstream is up.
      timers.push(setInterval(() => void tick(), 250));
      if (deps.statsIntervalSeconds > 0)
        timers.push(
          setInterval(
            () => void reportStats().catch((err: unknown) => deps.onError?.(`stats report failed: ${(err as Error).message}`)),
            deps.statsIntervalSeconds * 1000,
          ),
        );
      for (const t of timers) t.unref();
    },
    tick,
    reportStats,
    async stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
      timers = [];
      await round;
    },
  };
}

export interface ReceivedReport {
  id: number;
  reporter: string;
  idempotencyKey: string;
  kind: string;
  body: unknown;
  outcome: 'accepted' | 'rejected';
  message?: string;
  receivedAt: string;
}

export interface SyncReceiver {
  /**
   * Takes a report from a child node (token role `node`, scoped to its delegation). Answers
   * the stored outcome for a re-sent idempotency key; throws IDN_FORBIDDEN for a prefix
   * outside the reporter's delegation (the rejection is recorded too).
   */
  receive(reporter: { id: string; prefixes: string[]; actor: string }, body: unknown): Promise<{ created: boolean; report: ReceivedReport }>;
  list(afterId: number, limit: number): Promise<{ reports: ReceivedReport[]; next: number | null }>;
}

function shape(row: ReportRow): ReceivedReport {
  const out: ReceivedReport = {
    id: row.id,
    reporter: row.reporter,
    idempotencyKey: row.idemKey,
    kind: row.kind,
    body: JSON.parse(row.bodyJson),
    outcome: row.outcome,
    receivedAt: row.receivedAt,
  };
  if (row.message !== null) out.message = row.message;
  return out;
}

const invalid = (m: string) => new IdnError('IDN_INVALID_VALUE', m);

function checkStats(b: Record<string, unknown>): void {
  for (const k of ['registrations', 'resolutions'])
    if (!Number.isInteger(b[k]) || (b[k] as number) < 0) throw invalid(`${k} must be a whole number of events in the interval`);
  for (const k of ['from', 'to']) if (typeof b[k] !== 'string' || Number.isNaN(Date.parse(b[k]))) throw invalid(`${k} must be an ISO-8601 time`);
  const l = b.latencyMs as Record<string, unknown> | undefined;
  if (typeof l !== 'object' || l === null || !['p50', 'p95', 'p99'].every((p) => typeof l[p] === 'number' && l[p] >= 0))
    throw invalid('latencyMs must be {"p50","p95","p99"} in milliseconds');
}

export function createSyncReceiver(deps: { store: Store }): SyncReceiver {
  const { store } = deps;
  return {
    async receive(reporter, raw) {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('a report is a JSON object with "kind" and "idempotencyKey"');
      const b = raw as Record<string, unknown>;
      const key = b.idempotencyKey;
      if (typeof key !== 'string' || key.length === 0 || key.length > 200) throw invalid('idempotencyKey must be a string of 1 to 200 characters');
      if (b.kind !== 'prefix' && b.kind !== 'stats') throw invalid(`kind must be "prefix" or "stats"; got ${JSON.stringify(b.kind)}`);
      let outcome: 'accepted' | 'rejected' = 'accepted';
      let message: string | null = null;
      if (b.kind === 'prefix') {
        let prefixKey: string;
        try {
          prefixKey = parsePrefix(b.prefix as string).key;
        } catch (err) {
          throw invalid(`prefix: ${(err as Error).message}`);
        }
        if (!reporter.prefixes.some((p) => isUnderPrefix(prefixKey, p) && prefixKey !== p)) {
          outcome = 'rejected';
          message = `prefix ${String(b.prefix)} is outside the reporter's delegation (${reporter.prefixes.join(', ')})`;
        }
      } else checkStats(b);
      const { idempotencyKey: _k, ...rest } = b;
      const bodyJson = JSON.stringify(rest);
      const out = await store.write({ actor: reporter.actor, action: `sync.report.${outcome}`, target: `${reporter.id}:${key}` }, async (tx) => {
        const seen = await tx.reportByKey(reporter.id, key);
        if (seen !== undefined) return { result: { created: false, row: seen }, payload: null };
        const id = await tx.insertReport({ reporter: reporter.id, idemKey: key, kind: b.kind as string, bodyJson, outcome, message });
        return { result: { created: true, row: (await tx.reportByKey(reporter.id, key))! }, payload: `${id}\n${bodyJson}`, keepPayload: true };
      });
      const report = shape(out.row);
      if (report.outcome === 'rejected')
        throw new IdnError('IDN_FORBIDDEN', `${report.message ?? 'rejected'}; ask the upstream's admin to widen the node token's prefixes`);
      return { created: out.created, report };
    },
    async list(afterId, limit) {
      const rows = await store.reports(afterId, limit + 1);
      const page = rows.slice(0, limit);
      return { reports: page.map(shape), next: rows.length > limit ? page.at(-1)!.id : null };
    },
  };
}
