/** The hash-chained audit log: appending an entry, paging it, verifying the whole chain. */
import { auditHash, GENESIS_HASH, sha256, versionLine } from '../chain.js';
import type { AuditReads, AuditRow, AuditVerdict } from '../types.js';
import type { Db, Sync } from './db.js';

type EntryWithPayload = AuditRow & { payload: string | null };

function headOf(stmt: { get(): unknown }): { seq: number; hash: string } {
  return (stmt.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS_HASH };
}

export function auditReads(db: Db): Sync<AuditReads> {
  const head = db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
  const page = db.prepare('SELECT seq, at, actor, action, target, digest, prev_hash AS prevHash, hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?');
  const withPayload = db.prepare(
    `SELECT a.seq, a.at, a.actor, a.action, a.target, a.digest, a.prev_hash AS prevHash, a.hash, p.payload
     FROM audit_log a LEFT JOIN audit_payloads p ON p.seq = a.seq WHERE a.seq > ? ORDER BY a.seq LIMIT ?`,
  );
  const orphanPayload = db.prepare('SELECT min(seq) FROM audit_payloads WHERE seq NOT IN (SELECT seq FROM audit_log)').pluck();
  const versionsBySeq = db.prepare('SELECT handle_key AS handleKey, version, handle, values_json AS valuesJson FROM record_versions WHERE audit_seq = ?');
  const versionsOutsideLog = db.prepare('SELECT min(audit_seq) FROM record_versions WHERE audit_seq NOT IN (SELECT seq FROM audit_log)').pluck();

  /**
   * Whether the record versions an entry wrote match its digest, whatever its action: a
   * record write's digest is its one version line; a bulk chunk's, its versions' lines in key
   * order; any other entry that wrote versions (seeding) keeps its payload, which starts with
   * those lines in key order.
   */
  function versionProblem(row: EntryWithPayload): string | undefined {
    const versions = versionsBySeq.all(row.seq) as Array<{ handle: string; valuesJson: string | null; handleKey: string; version: number }>;
    if (row.action.startsWith('record.')) {
      if (versions.length !== 1 || sha256(versionLine(versions[0]!.handle, versions[0]!.valuesJson)) !== row.digest)
        return 'the record version this entry wrote does not match its digest (record_versions was edited)';
      return undefined;
    }
    versions.sort((a, b) => (a.handleKey < b.handleKey ? -1 : a.handleKey > b.handleKey ? 1 : a.version - b.version));
    const lines = versions.map((v) => versionLine(v.handle, v.valuesJson)).join('\n');
    if (row.action === 'bulk.chunk') {
      if (sha256(lines) !== row.digest) return 'the record versions this bulk chunk wrote do not match its digest (record_versions was edited)';
      return undefined;
    }
    if (versions.length === 0) return undefined;
    // Seeds written before schema v6 kept no payload: their versions cannot be checked.
    if (row.payload === null) return row.action === 'seed' ? undefined : `this ${row.action} entry wrote record versions its digest does not cover`;
    // Compared line by line: a newline slipped into a version cannot shift it into the rest.
    if (row.payload.split('\n', 2 * versions.length).join('\n') !== lines)
      return `the record versions this ${row.action} entry wrote do not match its payload (record_versions was edited)`;
    return undefined;
  }

  // Reads in pages so a long log never holds a statement open across checks.
  function verifyAudit(): AuditVerdict {
    const pageSize = 1000;
    let prevHash = GENESIS_HASH;
    let expected = 1;
    for (;;) {
      const rows = withPayload.all(expected - 1, pageSize) as EntryWithPayload[];
      for (const row of rows) {
        const broken = (reason: string): AuditVerdict => ({ ok: false, checked: expected - 1, firstBroken: { seq: row.seq, reason } });
        if (row.seq !== expected)
          return {
            ok: false,
            checked: expected - 1,
            firstBroken: { seq: expected, reason: `entry ${expected} is missing (deleted); the next entry is ${row.seq}` },
          };
        if (row.prevHash !== prevHash) return broken("prev_hash is not the previous entry's hash (an entry before it was removed, inserted or rewritten)");
        if (auditHash(prevHash, row) !== row.hash) return broken('hash does not match the entry (seq, at, actor, action, target or digest was edited)');
        if (row.payload !== null && sha256(row.payload) !== row.digest) return broken('the stored payload does not match the digest (the payload was edited)');
        const problem = versionProblem(row);
        if (problem !== undefined) return broken(problem);
        prevHash = row.hash;
        expected++;
      }
      if (rows.length < pageSize) break;
    }
    const stray = versionsOutsideLog.get() as number | null;
    if (stray !== null)
      return {
        ok: false,
        checked: expected - 1,
        firstBroken: { seq: stray, reason: 'record versions name an entry that is not in the log (a version was inserted or its entry deleted)' },
      };
    const orphan = orphanPayload.get() as number | null;
    if (orphan !== null)
      return {
        ok: false,
        checked: expected - 1,
        firstBroken: { seq: orphan, reason: 'a payload exists for an entry that is not in the log (the entry was deleted)' },
      };
    return { ok: true, checked: expected - 1 };
  }

  return {
    auditPage: (afterSeq, limit) => page.all(afterSeq, limit) as AuditRow[],
    auditHead: () => headOf(head),
    verifyAudit,
  };
}

export function auditWrites(db: Db) {
  const head = db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
  const insert = db.prepare(
    'INSERT INTO audit_log (seq, at, actor, action, target, digest, prev_hash, hash) VALUES (@seq, @at, @actor, @action, @target, @digest, @prevHash, @hash)',
  );
  const insertPayload = db.prepare('INSERT INTO audit_payloads (seq, payload) VALUES (?, ?)');
  return {
    head: () => headOf(head),
    /** Appends the entry after `prevHash`, keeping `payload` when given. */
    append(prevHash: string, base: Omit<AuditRow, 'hash' | 'prevHash'>, payload: string | undefined): void {
      insert.run({ ...base, prevHash, hash: auditHash(prevHash, base) });
      if (payload !== undefined) insertPayload.run(base.seq, payload);
    },
  };
}
