/** The durable outbox of reports to the upstream, and the reports received from child nodes. */
import { isoSeconds } from '../chain.js';
import type { OutboxOps, OutboxRow, ReportRow } from '../types.js';
import type { Q } from './db.js';

const OUTBOX_COLUMNS = `id, kind, idem_key AS "idemKey", body_json AS "bodyJson", state, attempts, next_attempt_at AS "nextAttemptAt", last_error AS "lastError",
  created_at AS "createdAt", done_at AS "doneAt"`;
const REPORT_COLUMNS = 'id, reporter, idem_key AS "idemKey", kind, body_json AS "bodyJson", outcome, message, received_at AS "receivedAt"';

async function reportByKey(q: Q, reporter: string, idemKey: string): Promise<ReportRow | undefined> {
  const [row] = await q.unsafe<ReportRow[]>(`SELECT ${REPORT_COLUMNS} FROM sync_reports WHERE reporter = $1 AND idem_key = $2`, [reporter, idemKey], {
    prepare: true,
  });
  return row;
}

/** Reads and the outbox's bookkeeping (not audited: the report itself was audited when queued). */
export function outboxOps(q: Q, now: () => Date): OutboxOps {
  const list = async <T>(text: string, args: Array<string | number>) => [...(await q.unsafe<T[]>(text, args, { prepare: true }))];
  return {
    dueReports: (nowMs, limit) =>
      list<OutboxRow>(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2`, [nowMs, limit]),
    async claimReports(nowMs, limit, leaseMs) {
      // SKIP LOCKED: a row another node is claiming right now is left to it, not waited for; one
      // it claimed and committed no longer matches (re-checked on the newest row version).
      const rows = await list<OutboxRow>(
        `WITH due AS (SELECT id AS due_id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
         UPDATE outbox SET next_attempt_at = $2 FROM due WHERE id = due_id RETURNING ${OUTBOX_COLUMNS}`,
        [nowMs, nowMs + leaseMs, limit],
      );
      return rows.sort((a, b) => a.id - b.id);
    },
    outbox: (afterId, limit) => list<OutboxRow>(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE id > $1 ORDER BY id LIMIT $2`, [afterId, limit]),
    async pendingReports() {
      const [row] = await q`SELECT count(*) FROM outbox WHERE state = 'pending'`.values();
      return row![0] as number;
    },
    async markReport(id, state, error) {
      await q`UPDATE outbox SET state = ${state}, done_at = ${isoSeconds(now())}, last_error = ${error}, attempts = attempts + 1 WHERE id = ${id}`;
    },
    async retryReport(id, nextAttemptAt, error) {
      await q`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ${nextAttemptAt}, last_error = ${error} WHERE id = ${id}`;
    },
    reportByKey: (reporter, idemKey) => reportByKey(q, reporter, idemKey),
    reports: (afterId, limit) => list<ReportRow>(`SELECT ${REPORT_COLUMNS} FROM sync_reports WHERE id > $1 ORDER BY id LIMIT $2`, [afterId, limit]),
  };
}

/** Ids are max(id) + 1: every write holds the chain head's lock, so no two writers race for one. */
export const outboxWrites = {
  reportByKey,
  async enqueue(q: Q, kind: string, idemKey: string, bodyJson: string, at: string): Promise<void> {
    await q`INSERT INTO outbox (id, kind, idem_key, body_json, state, attempts, next_attempt_at, created_at)
      SELECT coalesce(max(id), 0) + 1, ${kind}, ${idemKey}, ${bodyJson}, 'pending', 0, 0, ${at} FROM outbox`;
  },
  async insertReport(q: Q, r: Omit<ReportRow, 'id'>): Promise<number> {
    const [row] = await q`INSERT INTO sync_reports (id, reporter, idem_key, kind, body_json, outcome, message, received_at)
      SELECT coalesce(max(id), 0) + 1, ${r.reporter}, ${r.idemKey}, ${r.kind}, ${r.bodyJson}, ${r.outcome}, ${r.message}, ${r.receivedAt} FROM sync_reports
      RETURNING id`.values();
    return row![0] as number;
  },
};
