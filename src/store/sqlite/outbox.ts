/** The durable outbox of reports to the upstream, and the reports received from child nodes. */
import { isoSeconds } from '../chain.js';
import type { OutboxOps, OutboxRow, ReportRow } from '../types.js';
import type { Db, Sync } from './db.js';

const OUTBOX_COLUMNS = `id, kind, idem_key AS idemKey, body_json AS bodyJson, state, attempts, next_attempt_at AS nextAttemptAt, last_error AS lastError,
  created_at AS createdAt, done_at AS doneAt`;
const REPORT_COLUMNS = 'id, reporter, idem_key AS idemKey, kind, body_json AS bodyJson, outcome, message, received_at AS receivedAt';

/** Reads and the outbox's bookkeeping (not audited: the report itself was audited when queued). */
export function outboxOps(db: Db, now: () => Date): Sync<OutboxOps> {
  const due = db.prepare(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?`);
  // One statement: atomic under SQLite's write lock, also against other processes on the file.
  const claim = db.prepare(
    `UPDATE outbox SET next_attempt_at = ? WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?)
     RETURNING ${OUTBOX_COLUMNS}`,
  );
  const outbox = db.prepare(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE id > ? ORDER BY id LIMIT ?`);
  const pendingCount = db.prepare("SELECT count(*) FROM outbox WHERE state = 'pending'").pluck();
  const done = db.prepare('UPDATE outbox SET state = ?, done_at = ?, last_error = ?, attempts = attempts + 1 WHERE id = ?');
  const retry = db.prepare('UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?');
  const byKey = db.prepare(`SELECT ${REPORT_COLUMNS} FROM sync_reports WHERE reporter = ? AND idem_key = ?`);
  const reports = db.prepare(`SELECT ${REPORT_COLUMNS} FROM sync_reports WHERE id > ? ORDER BY id LIMIT ?`);
  return {
    dueReports: (nowMs, limit) => due.all(nowMs, limit) as OutboxRow[],
    claimReports: (nowMs, limit, leaseMs) => (claim.all(nowMs + leaseMs, nowMs, limit) as OutboxRow[]).sort((a, b) => a.id - b.id),
    outbox: (afterId, limit) => outbox.all(afterId, limit) as OutboxRow[],
    pendingReports: () => pendingCount.get() as number,
    markReport: (id, state, error) => void done.run(state, isoSeconds(now()), error, id),
    retryReport: (id, nextAttemptAt, error) => void retry.run(nextAttemptAt, error, id),
    reportByKey: (reporter, idemKey) => byKey.get(reporter, idemKey) as ReportRow | undefined,
    reports: (afterId, limit) => reports.all(afterId, limit) as ReportRow[],
  };
}

export function outboxWrites(db: Db) {
  const enqueue = db.prepare(
    "INSERT INTO outbox (kind, idem_key, body_json, state, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, 0, ?)",
  );
  const insertReport = db.prepare(
    'INSERT INTO sync_reports (reporter, idem_key, kind, body_json, outcome, message, received_at) VALUES (@reporter, @idemKey, @kind, @bodyJson, @outcome, @message, @receivedAt)',
  );
  return {
    enqueue: (kind: string, idemKey: string, bodyJson: string, at: string) => void enqueue.run(kind, idemKey, bodyJson, at),
    insertReport: (row: Omit<ReportRow, 'id'>) => Number(insertReport.run(row).lastInsertRowid),
  };
}
