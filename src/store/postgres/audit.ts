/**
 * The hash-chained audit log on PostgreSQL: appending an entry, paging it, verifying the whole
 * chain (a port of the SQLite engine's checks; verification is moving to engine-independent code).
 */
import { auditHash, GENESIS_HASH, sha256, versionLine } from '../chain.js';
import type { AuditReads, AuditRow, AuditVerdict } from '../types.js';
import type { Q } from './db.js';

type EntryWithPayload = AuditRow & { payload: string | null };

const COLUMNS = 'seq, at, actor, action, target, digest, prev_hash AS "prevHash", hash';

export function auditReads(q: Q): AuditReads {
  async function auditHead(): Promise<{ seq: number; hash: string }> {
    // The newest entry, not chain_head: a tampered log must not be hidden by the head row.
    const [row] = await q.unsafe<Array<{ seq: number; hash: string }>>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1', [], { prepare: true });
    return row ?? { seq: 0, hash: GENESIS_HASH };
  }

  async function versionProblem(row: EntryWithPayload): Promise<string | undefined> {
    const versions = [
      ...(await q.unsafe<Array<{ handle: string; valuesJson: string | null; handleKey: string; version: number }>>(
        'SELECT handle_key AS "handleKey", version, handle, values_json AS "valuesJson" FROM record_versions WHERE audit_seq = $1',
        [row.seq],
        { prepare: true },
      )),
    ];
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
    if (row.payload === null) return row.action === 'seed' ? undefined : `this ${row.action} entry wrote record versions its digest does not cover`;
    if (row.payload.split('\n', 2 * versions.length).join('\n') !== lines)
      return `the record versions this ${row.action} entry wrote do not match its payload (record_versions was edited)`;
    return undefined;
  }

  async function verifyAudit(): Promise<AuditVerdict> {
    const pageSize = 1000;
    let prevHash = GENESIS_HASH;
    let expected = 1;
    for (;;) {
      const rows = await q.unsafe<EntryWithPayload[]>(
        `SELECT a.seq, a.at, a.actor, a.action, a.target, a.digest, a.prev_hash AS "prevHash", a.hash, p.payload
         FROM audit_log a LEFT JOIN audit_payloads p ON p.seq = a.seq WHERE a.seq > $1 ORDER BY a.seq LIMIT $2`,
        [expected - 1, pageSize],
        { prepare: true },
      );
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
        const problem = await versionProblem(row);
        if (problem !== undefined) return broken(problem);
        prevHash = row.hash;
        expected++;
      }
      if (rows.length < pageSize) break;
    }
    const [stray] = await q`SELECT min(audit_seq) FROM record_versions v WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.seq = v.audit_seq)`.values();
    if (stray?.[0] != null)
      return {
        ok: false,
        checked: expected - 1,
        firstBroken: {
          seq: stray[0] as number,
          reason: 'record versions name an entry that is not in the log (a version was inserted or its entry deleted)',
        },
      };
    const [orphan] = await q`SELECT min(seq) FROM audit_payloads p WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.seq = p.seq)`.values();
    if (orphan?.[0] != null)
      return {
        ok: false,
        checked: expected - 1,
        firstBroken: { seq: orphan[0] as number, reason: 'a payload exists for an entry that is not in the log (the entry was deleted)' },
      };
    return { ok: true, checked: expected - 1 };
  }

  return {
    auditPage: async (afterSeq, limit) => [
      ...(await q.unsafe<AuditRow[]>(`SELECT ${COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, [afterSeq, limit], { prepare: true })),
    ],
    auditHead,
    verifyAudit,
  };
}

/** The entries a batch appended (hashes computed as they were added), in one statement each table. */
export async function insertAudit(q: Q, rows: AuditRow[], payloads: Array<[number, string]>): Promise<void> {
  if (rows.length > 0)
    await q`INSERT INTO audit_log (seq, at, actor, action, target, digest, prev_hash, hash)
      SELECT * FROM unnest(${rows.map((r) => r.seq)}::bigint[], ${rows.map((r) => r.at)}::text[], ${rows.map((r) => r.actor)}::text[],
        ${rows.map((r) => r.action)}::text[], ${rows.map((r) => r.target)}::text[], ${rows.map((r) => r.digest)}::text[],
        ${rows.map((r) => r.prevHash)}::text[], ${rows.map((r) => r.hash)}::text[])`;
  if (payloads.length > 0)
    await q`INSERT INTO audit_payloads (seq, payload) SELECT * FROM unnest(${payloads.map((r) => r[0])}::bigint[], ${payloads.map((r) => r[1])}::text[])`;
}
