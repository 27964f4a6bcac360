/** Records, their versions and the per-prefix record counters. */
import type { AnswerRow, RecordReads, RecordRow, VersionRow } from '../types.js';
import type { Q } from './db.js';

const RECORD_COLUMNS =
  'handle_key AS "handleKey", handle, prefix_key AS "prefixKey", values_json AS "valuesJson", public_json AS "publicJson", max_age AS "maxAge", expires_at AS "expiresAt", etag, version, updated_at AS "updatedAt"';
const VERSION_COLUMNS = 'version, handle, at, actor, action, values_json AS "valuesJson", audit_seq AS "auditSeq"';

/** Reads on `primary` (counts, what a write decides on) and `replica` (cache misses, history, listing). */
export function recordReads(primary: Q, replica: Q): RecordReads {
  return {
    async getRecord(handleKey) {
      const [row] = await primary.unsafe<RecordRow[]>(`SELECT ${RECORD_COLUMNS} FROM records WHERE handle_key = $1`, [handleKey], { prepare: true });
      return row;
    },
    async answerRow(handleKey) {
      const [row] = await replica`SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = ${handleKey}`.values();
      return row as AnswerRow | undefined;
    },
    async listRecordHandles(prefixKey, limit, offset) {
      const rows = await replica`SELECT handle FROM records WHERE prefix_key = ${prefixKey} ORDER BY handle_key LIMIT ${limit} OFFSET ${offset}`.values();
      return rows.map((r) => r[0] as string);
    },
    async countRecords(prefixKey) {
      const [row] = await primary`SELECT n FROM record_counts WHERE prefix_key = ${prefixKey}`.values();
      return (row?.[0] as number | undefined) ?? 0;
    },
    async countRecordsUnder(prefixKey) {
      const [row] = await primary`SELECT coalesce(sum(n), 0)::bigint FROM record_counts
        WHERE prefix_key = ${prefixKey} OR (prefix_key > ${prefixKey} || '.' AND prefix_key < ${prefixKey} || '/')`.values();
      return row![0] as number;
    },
    async totalRecords() {
      const [row] = await primary`SELECT coalesce(sum(n), 0)::bigint FROM record_counts`.values();
      return row![0] as number;
    },
    async versions(handleKey, afterVersion, limit) {
      return [
        ...(await replica.unsafe<VersionRow[]>(
          `SELECT ${VERSION_COLUMNS} FROM record_versions WHERE handle_key = $1 AND version > $2 ORDER BY version LIMIT $3`,
          [handleKey, afterVersion, limit],
          { prepare: true },
        )),
      ];
    },
    async versionAsOf(handleKey, at) {
      const [row] = await replica.unsafe<VersionRow[]>(
        `SELECT ${VERSION_COLUMNS} FROM record_versions WHERE handle_key = $1 AND at <= $2 ORDER BY version DESC LIMIT 1`,
        [handleKey, at],
        { prepare: true },
      );
      return row;
    },
  };
}

/** What the write transaction does to records; `q` is the write's transaction. */
export const recordWrites = {
  /** The next version number: past every kept version with history, else past the current one. */
  async nextVersion(q: Q, handleKey: string, history: boolean): Promise<number> {
    const [row] = history
      ? await q`SELECT max(version) FROM record_versions WHERE handle_key = ${handleKey}`.values()
      : await q`SELECT version FROM records WHERE handle_key = ${handleKey}`.values();
    return ((row?.[0] as number | null | undefined) ?? 0) + 1;
  },
  /** Inserts or updates the current row; a new row counts for its prefix. */
  async upsert(q: Q, r: RecordRow): Promise<void> {
    // xmax = 0 is not available on a partitioned table: the CTE sees the row as it was before.
    const [row] = await q`WITH old AS (SELECT 1 FROM records WHERE handle_key = ${r.handleKey})
      INSERT INTO records (handle_key, handle, prefix_key, values_json, public_json, max_age, expires_at, etag, version, updated_at)
      VALUES (${r.handleKey}, ${r.handle}, ${r.prefixKey}, ${r.valuesJson}, ${r.publicJson}, ${r.maxAge}, ${r.expiresAt}, ${r.etag}, ${r.version}, ${r.updatedAt})
      ON CONFLICT (handle_key) DO UPDATE SET handle = excluded.handle, values_json = excluded.values_json,
        public_json = excluded.public_json, max_age = excluded.max_age, expires_at = excluded.expires_at, etag = excluded.etag,
        version = excluded.version, updated_at = excluded.updated_at
      RETURNING NOT EXISTS (SELECT 1 FROM old) AS inserted`.values();
    if (row?.[0] === true) await count(q, r.prefixKey, 1);
  },
  async remove(q: Q, handleKey: string): Promise<void> {
    const [row] = await q`DELETE FROM records WHERE handle_key = ${handleKey} RETURNING prefix_key`.values();
    if (row !== undefined) await count(q, row[0] as string, -1);
  },
  async insertVersion(q: Q, handleKey: string, version: number, handle: string, at: string, actor: string, action: string, values: string | null, seq: number) {
    await q`INSERT INTO record_versions (handle_key, version, handle, at, actor, action, values_json, audit_seq)
      VALUES (${handleKey}, ${version}, ${handle}, ${at}, ${actor}, ${action}, ${values}, ${seq})`;
  },
};

/** Moves a prefix's record counter by `delta` (in the write transaction, under the chain head's lock). */
export async function count(q: Q, prefixKey: string, delta: number): Promise<void> {
  await q`INSERT INTO record_counts (prefix_key, n) VALUES (${prefixKey}, ${delta})
    ON CONFLICT (prefix_key) DO UPDATE SET n = record_counts.n + excluded.n`;
}
