/** Records, their versions and the per-prefix record counters. */
import type { AnswerRow, RecordReads, RecordRow, VersionRow } from '../types.js';
import type { Q } from './db.js';
import type { Freshness } from './freshness.js';

const RECORD_COLUMNS =
  'handle_key AS "handleKey", handle, prefix_key AS "prefixKey", values_json AS "valuesJson", public_json AS "publicJson", max_age AS "maxAge", expires_at AS "expiresAt", etag, version, updated_at AS "updatedAt"';
const VERSION_COLUMNS = 'version, handle, at, actor, action, values_json AS "valuesJson", audit_seq AS "auditSeq"';

/** Reads on `primary` (counts, what a write decides on) and `replica` (cache misses, history, listing). */
export function recordReads(primary: Q, replica: Q, freshness?: Freshness): RecordReads {
  const onPrimary = async (handleKey: string) =>
    (await primary`SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = ${handleKey}`.values())[0] as
      AnswerRow | undefined;
  return {
    async getRecord(handleKey) {
      const [row] = await primary.unsafe<RecordRow[]>(`SELECT ${RECORD_COLUMNS} FROM records WHERE handle_key = $1`, [handleKey], { prepare: true });
      return row;
    },
    async answerRow(handleKey) {
      if (freshness === undefined || replica === primary) return onPrimary(handleKey);
      // The standby's feed position comes with the row, from the same snapshot.
      const [row] = await replica`SELECT h.change_id, r.handle, r.values_json, r.public_json, r.max_age, r.expires_at, r.etag
        FROM chain_head h LEFT JOIN records r ON r.handle_key = ${handleKey} WHERE h.id = 1`.values();
      if (row === undefined || !freshness.fresh(handleKey, row[0] as number)) return onPrimary(handleKey);
      return row[1] === null ? undefined : (row.slice(1) as unknown as AnswerRow);
    },
    async listRecordHandles(prefixKey, limit, offset) {
      const rows = await replica`SELECT handle FROM records WHERE prefix_key = ${prefixKey} ORDER BY handle_key LIMIT ${limit} OFFSET ${offset}`.values();
      return rows.map((r) => r[0] as string);
    },
    async listRecordsAfter(prefixKey, afterKey, limit) {
      return [
        ...(await replica.unsafe<Array<{ key: string; handle: string }>>(
          'SELECT handle_key AS key, handle FROM records WHERE prefix_key = $1 AND handle_key > $2 ORDER BY handle_key LIMIT $3',
          [prefixKey, afterKey, limit],
          { prepare: true },
        )),
      ];
    },
    async recordKeysAfter(afterKey, limit) {
      // On the primary: a key a standby has not replayed yet must not be missing from the key filter.
      const rows = await primary
        .unsafe('SELECT handle_key FROM records WHERE handle_key > $1 ORDER BY handle_key LIMIT $2', [afterKey, limit], {
          prepare: true,
        })
        .values();
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

/** A record_versions row waiting for its batch's set-based insert. */
export type VersionInsert = [handleKey: string, version: number, handle: string, at: string, actor: string, action: string, values: string | null, seq: number];

/**
 * The next version, in the statement that writes: past every kept version (and `pending`, the
 * last one this batch assigned but has not inserted yet) with history, else past the current row.
 */
const NEXT_VERSION = (history: boolean, pendingParam: string, current: string) =>
  history ? `greatest((SELECT coalesce(max(version), 0) FROM record_versions WHERE handle_key = $1), ${pendingParam}::int) + 1` : `coalesce(${current}, 0) + 1`;

/** The records columns in AUDITED_TABLES order as one JSON array: integers as numbers, NULL as null, as SQLite reads them. */
const STORED = 'json_build_array(handle_key, id, handle, prefix_key, values_json, public_json, version, updated_at, max_age, expires_at, etag)';

/**
 * What the write transaction does to records, one round trip each (a batch's writes run one
 * after another under the chain head's lock: round trips are its cost); `q` is the write's transaction.
 */
export const recordWrites = {
  /**
   * Inserts or updates the current row; returns its version and whether it is new (it then counts for its prefix).
   * A new row's id is `newId` (the caller's max(id) + 1) and an update keeps it, as SQLite's rowid: its audited row hashes the same.
   * Also returns the row as stored, in AUDITED_TABLES column order: the write set needs no read back.
   */
  async put(
    q: Q,
    r: Omit<RecordRow, 'version'>,
    history: boolean,
    pending: number,
    newId: number,
  ): Promise<{ version: number; inserted: boolean; row: unknown[] }> {
    // xmax = 0 is not available on a partitioned table: the CTE sees the row as it was before.
    const [row] = await q.unsafe<Array<{ version: number; inserted: boolean; stored: unknown[] }>>(
      `WITH old AS (SELECT version FROM records WHERE handle_key = $1)
       INSERT INTO records (handle_key, handle, prefix_key, values_json, public_json, max_age, expires_at, etag, version, updated_at, id)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, ${NEXT_VERSION(history, '$11', '(SELECT version FROM old)')}, $9, $10
       ON CONFLICT (handle_key) DO UPDATE SET handle = excluded.handle, values_json = excluded.values_json,
         public_json = excluded.public_json, max_age = excluded.max_age, expires_at = excluded.expires_at, etag = excluded.etag,
         version = excluded.version, updated_at = excluded.updated_at
       RETURNING version, NOT EXISTS (SELECT 1 FROM old) AS inserted, ${STORED} AS stored`,
      [r.handleKey, r.handle, r.prefixKey, r.valuesJson, r.publicJson, r.maxAge, r.expiresAt, r.etag, r.updatedAt, newId, ...(history ? [pending] : [])],
      { prepare: true },
    );
    return { version: row!.version, inserted: row!.inserted, row: row!.stored };
  },
  /** Deletes the current row; returns the version the deletion takes and the prefix and id of the row it removed. */
  async remove(q: Q, handleKey: string, history: boolean, pending: number): Promise<{ version: number; prefixKey: string | null; id: number | null }> {
    const [row] = await q.unsafe<Array<{ version: number; prefixKey: string | null; id: number | null }>>(
      `WITH d AS (DELETE FROM records WHERE handle_key = $1 RETURNING prefix_key, version, id)
       SELECT ${NEXT_VERSION(history, '$2', '(SELECT version FROM d)')} AS version, (SELECT prefix_key FROM d) AS "prefixKey", (SELECT id FROM d) AS id`,
      history ? [handleKey, pending] : [handleKey],
      { prepare: true },
    );
    return row!;
  },
  /** The highest record id (what the next insert's id follows, as SQLite's rowid does). */
  async maxId(q: Q): Promise<number> {
    const [row] = await q`SELECT coalesce(max(id), 0) FROM records`.values();
    return row![0] as number;
  },
  /** The versions a batch wrote, in one statement. */
  async insertVersions(q: Q, rows: VersionInsert[]): Promise<void> {
    if (rows.length === 0) return;
    const col = (i: number) => rows.map((r) => r[i] as string | number | null);
    await q`INSERT INTO record_versions (handle_key, version, handle, at, actor, action, values_json, audit_seq)
      SELECT * FROM unnest(${col(0)}::text[], ${col(1)}::int[], ${col(2)}::text[], ${col(3)}::text[], ${col(4)}::text[], ${col(5)}::text[],
        ${col(6)}::text[], ${col(7)}::bigint[])`;
  },
  /** Moves the prefixes' record counters by the batch's net deltas. */
  async count(q: Q, deltas: Map<string, number>): Promise<void> {
    const moved = [...deltas].filter(([, n]) => n !== 0);
    if (moved.length === 0) return;
    await q`INSERT INTO record_counts (prefix_key, n)
      SELECT * FROM unnest(${moved.map(([k]) => k)}::text[], ${moved.map(([, n]) => n)}::bigint[])
      ON CONFLICT (prefix_key) DO UPDATE SET n = record_counts.n + excluded.n`;
  },
};
