/** Records, their versions and the per-prefix record counters. */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VERSION_VALUES, VERSIONS_FROM } from '../chain.js';
import type { AnswerRow, RecordReads, RecordRow, RecordTombstone, VersionRow } from '../types.js';
import type { Q } from './db.js';
import type { Freshness } from './freshness.js';

const RECORD_COLUMNS =
  'handle_key AS "handleKey", handle, prefix_key AS "prefixKey", values_json AS "valuesJson", public_json AS "publicJson", max_age AS "maxAge", expires_at AS "expiresAt", etag, version, updated_at AS "updatedAt"';
const VERSION_COLUMNS = `v.version, v.handle, v.at, v.actor, v.action, ${VERSION_VALUES} AS "valuesJson", v.audit_seq AS "auditSeq"`;

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
          `SELECT ${VERSION_COLUMNS} FROM ${VERSIONS_FROM} WHERE v.handle_key = $1 AND v.version > $2 ORDER BY v.version LIMIT $3`,
          [handleKey, afterVersion, limit],
          { prepare: true },
        )),
      ];
    },
    async versionAsOf(handleKey, at) {
      const [row] = await replica.unsafe<VersionRow[]>(
        `SELECT ${VERSION_COLUMNS} FROM ${VERSIONS_FROM} WHERE v.handle_key = $1 AND v.at <= $2 ORDER BY v.version DESC LIMIT 1`,
        [handleKey, at],
        { prepare: true },
      );
      return row;
    },
  };
}

/** A record_versions row waiting for its batch's set-based insert. */
export type VersionInsert = [handleKey: string, version: number, handle: string, at: string, actor: string, action: string, values: string | null, seq: number];

/** A records row as a batch holds it in memory: its columns and the id SQLite would give it as a rowid. */
export type StoredRecord = RecordRow & { id: number };

/** The records columns in AUDITED_TABLES order (what the write set hashes), typed as SQLite reads them. */
export const storedArray = (r: StoredRecord): unknown[] => [
  r.handleKey,
  r.id,
  r.handle,
  r.prefixKey,
  r.valuesJson,
  r.publicJson,
  r.version,
  r.updatedAt,
  r.maxAge,
  r.expiresAt,
  r.etag,
];

/** What a batch loads of one key: its row (null: none) and, with history, its newest kept version. */
export interface LoadedRecord {
  row: StoredRecord | null;
  /** The highest kept version (0: none): a new version goes past it. */
  maxVersion: number;
  /** The newest kept version when it is a deletion. */
  tombstone: RecordTombstone | undefined;
}

// LATERAL with LIMIT keeps each lookup a probe of one partition's index: a join could hash-scan every partition.
const LOAD = (history: boolean) => `SELECT k.key, r.handle, r.prefix_key, r.values_json, r.public_json, r.max_age, r.expires_at, r.etag, r.version,
    r.updated_at, r.id${history ? ', v.version AS max_version, v.handle AS v_handle, v.at, v.actor, (v.version IS NOT NULL AND v.values_json IS NULL) AS deleted' : ''}
  FROM unnest($1::text[]) AS k(key)
  LEFT JOIN LATERAL (SELECT * FROM records WHERE handle_key = k.key LIMIT 1) r ON true${
    history
      ? `
  LEFT JOIN LATERAL (SELECT version, handle, at, actor, values_json FROM record_versions WHERE handle_key = k.key ORDER BY version DESC LIMIT 1) v ON true`
      : ''
  }`;
const LOADS = { true: LOAD(true), false: LOAD(false) };

/**
 * Rows at which a batch's records and versions go through COPY instead of one INSERT of
 * unnest()ed arrays. A COPY cannot be pipelined (two more round trips), but for a bulk chunk
 * the arrays' escaping cost the node twice the CPU per record (bench/README.md, pg-bulk).
 */
export const COPY_MIN_ROWS = 200;

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const COPY_SPECIAL = /[\\\n\r\t]/g;

/** One row in COPY's text format: tab-separated, \N for NULL, backslash escapes. */
function copyLine(fields: ReadonlyArray<string | number | null>): string {
  let line = '';
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    const text = f === null || f === undefined ? '\\N' : typeof f === 'number' ? String(f) : f.replace(COPY_SPECIAL, (c) => COPY_ESCAPES[c]!);
    line += i === 0 ? text : `\t${text}`;
  }
  return `${line}\n`;
}

/** COPY `rows` in through `statement` (… FROM STDIN); nothing else may run on the connection meanwhile. */
async function copyIn(q: Q, statement: string, rows: ReadonlyArray<ReadonlyArray<string | number | null>>): Promise<void> {
  const stream = await q.unsafe(statement).writable();
  await pipeline(Readable.from([rows.map(copyLine).join('')]), stream);
}

const RECORD_INSERT_COLUMNS = 'handle_key, id, handle, prefix_key, values_json, public_json, version, updated_at, max_age, expires_at, etag';
const RECORD_UPSERT = `ON CONFLICT (handle_key) DO UPDATE SET id = excluded.id, handle = excluded.handle, values_json = excluded.values_json,
  public_json = excluded.public_json, version = excluded.version, updated_at = excluded.updated_at, max_age = excluded.max_age,
  expires_at = excluded.expires_at, etag = excluded.etag`;

const RECORD_UNNEST = `INSERT INTO records (${RECORD_INSERT_COLUMNS})
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::int[], $10::bigint[], $11::text[])
  ${RECORD_UPSERT}`;

/** The rows as one array per column (AUDITED_TABLES order). */
function storedColumns(rows: StoredRecord[]): unknown[][] {
  const arrays = rows.length === 0 ? [] : storedArray(rows[0]!).map(() => [] as unknown[]);
  for (const r of rows) storedArray(r).forEach((v, i) => arrays[i]!.push(v));
  return arrays;
}

/**
 * What the write transaction does to records. A batch keeps the records it touches in memory
 * (loaded in one statement under the chain head's lock) and writes their final rows at its end,
 * set-based: round trips while the lock is held are what a batch costs. `q` is its transaction.
 */
export const recordWrites = {
  /** The rows and newest versions of `keys`, one statement. */
  async load(q: Q, keys: readonly string[], history: boolean): Promise<Map<string, LoadedRecord>> {
    const out = new Map<string, LoadedRecord>();
    if (keys.length === 0) return out;
    // Sent now, synchronously: the caller orders it behind the chain head's lock.
    const rows = await q.unsafe<Array<Record<string, unknown>>>(LOADS[`${history}`], [keys as string[]], { prepare: true }).execute();
    for (const r of rows) {
      const key = r.key as string;
      out.set(key, {
        row:
          r.handle === null
            ? null
            : {
                handleKey: key,
                handle: r.handle as string,
                prefixKey: r.prefix_key as string,
                valuesJson: r.values_json as string,
                publicJson: r.public_json as string | null,
                maxAge: r.max_age as number | null,
                expiresAt: r.expires_at as number | null,
                etag: r.etag as string | null,
                version: r.version as number,
                updatedAt: r.updated_at as string,
                id: r.id as number,
              },
        maxVersion: (r.max_version as number | null | undefined) ?? 0,
        tombstone: r.deleted === true ? { handle: r.v_handle as string, at: r.at as string, actor: r.actor as string } : undefined,
      });
    }
    return out;
  },
  /**
   * The highest id outside `except` (keys whose state the batch holds in memory), what the next
   * new row's id follows once the highest row is deleted, as SQLite's rowid does.
   */
  async maxIdExcept(q: Q, except: string[]): Promise<number> {
    const [row] = await q`SELECT coalesce(max(id), 0) FROM records WHERE handle_key <> ALL(${except}::text[])`.values();
    return row![0] as number;
  },
  /**
   * A batch's final rows (an update keeps the row's prefix, as SQLite's upsert does) and
   * deletions. With `copy`, the rows go through COPY into a staging table: the caller runs
   * nothing else on the transaction until it returns.
   */
  async flush(q: Q, rows: StoredRecord[], deleted: string[], copy: boolean): Promise<void> {
    const work: Array<Promise<unknown>> = [];
    if (rows.length > 0 && copy) {
      // Per connection, emptied by every commit or rollback.
      await q`CREATE TEMP TABLE IF NOT EXISTS records_in (LIKE records) ON COMMIT DELETE ROWS`;
      await copyIn(
        q,
        `COPY records_in (${RECORD_INSERT_COLUMNS}) FROM STDIN`,
        rows.map((r) => storedArray(r) as Array<string | number | null>),
      );
      work.push(q.unsafe(`INSERT INTO records (${RECORD_INSERT_COLUMNS}) SELECT ${RECORD_INSERT_COLUMNS} FROM records_in ${RECORD_UPSERT}`).execute());
    } else if (rows.length > 0) {
      const columns = storedColumns(rows);
      work.push(q.unsafe(RECORD_UNNEST, columns as never[], { prepare: true }).execute());
    }
    if (deleted.length > 0) work.push(q`DELETE FROM records WHERE handle_key = ANY(${deleted}::text[])`.execute());
    await Promise.all(work);
  },
  /** The versions a batch wrote, in one statement (COPY with `copy`: nothing else may run meanwhile). */
  async insertVersions(q: Q, rows: VersionInsert[], copy: boolean): Promise<void> {
    if (rows.length === 0) return;
    if (copy) return copyIn(q, 'COPY record_versions (handle_key, version, handle, at, actor, action, values_json, audit_seq) FROM STDIN', rows);
    const col = (i: number) => rows.map((r) => r[i] as string | number | null);
    await q`INSERT INTO record_versions (handle_key, version, handle, at, actor, action, values_json, audit_seq)
      SELECT * FROM unnest(${col(0)}::text[], ${col(1)}::int[], ${col(2)}::text[], ${col(3)}::text[], ${col(4)}::text[], ${col(5)}::text[],
        ${col(6)}::text[], ${col(7)}::bigint[])`.execute();
  },
  /**
   * Gives the version rows of records the batch replaced or deleted (`rows`: as they were) the
   * values they stood for: the current version's row holds the marker, its values stored once.
   */
  async fillVersions(q: Q, rows: StoredRecord[]): Promise<void> {
    if (rows.length === 0) return;
    await q`UPDATE record_versions v SET values_json = f.values_json
      FROM unnest(${rows.map((r) => r.handleKey)}::text[], ${rows.map((r) => r.version)}::int[], ${rows.map((r) => r.valuesJson)}::text[])
        AS f(handle_key, version, values_json)
      WHERE v.handle_key = f.handle_key AND v.version = f.version AND v.values_json = ''`.execute();
  },
  /** Moves the prefixes' record counters by the batch's net deltas. */
  async count(q: Q, deltas: Map<string, number>): Promise<void> {
    const moved = [...deltas].filter(([, n]) => n !== 0);
    if (moved.length === 0) return;
    await q`INSERT INTO record_counts (prefix_key, n)
      SELECT * FROM unnest(${moved.map(([k]) => k)}::text[], ${moved.map(([, n]) => n)}::bigint[])
      ON CONFLICT (prefix_key) DO UPDATE SET n = record_counts.n + excluded.n`.execute();
  },
};
