/**
 * The attacker's SQL tool: edits an idnode SQLite file directly, as someone with file access
 * would, behind the node's back (and the same on a PostgreSQL database). The only SQL outside src/store/; tests that check tampering
 * is detected (and tests that fake files written by older versions) use it, nothing else.
 */
import Database from 'better-sqlite3';
import postgres from 'postgres';

export type Raw = Record<string, unknown>;

const clause = (where: Raw) =>
  Object.keys(where).length === 0
    ? ''
    : ` WHERE ${Object.keys(where)
        .map((c) => `${c} IS @${c}`)
        .join(' AND ')}`;

/** Opens `path` for tampering; close it with `close()` (or a teardown). */
export function tamper(path: string) {
  const db = new Database(path);
  return {
    /** The journal mode the file is in (WAL persists in the file). */
    journalMode: () => db.pragma('journal_mode', { simple: true }) as string,
    auditEntry: (seq: number) => db.prepare('SELECT * FROM audit_log WHERE seq = ?').get(seq) as Raw | undefined,
    setAuditActor: (seq: number, actor: string) => void db.prepare('UPDATE audit_log SET actor = ? WHERE seq = ?').run(actor, seq),
    deleteAuditEntry: (seq: number) => void db.prepare('DELETE FROM audit_log WHERE seq = ?').run(seq),
    /** Inserts an audit row given with its column names (prev_hash, not prevHash; write set columns may be left out). */
    insertAuditEntry: (row: Raw) =>
      void db
        .prepare(
          `INSERT INTO audit_log (seq, at, actor, action, target, digest, rows_digest, write_set, prev_hash, hash)
           VALUES (@seq, @at, @actor, @action, @target, @digest, @rows_digest, @write_set, @prev_hash, @hash)`,
        )
        .run({ rows_digest: null, write_set: null, ...row }),
    /** Renumbers the entries with seq >= `from` by `delta`. */
    shiftAuditSeqs: (from: number, delta: number) => void db.prepare('UPDATE audit_log SET seq = seq + ? WHERE seq >= ?').run(delta, from),
    payload: (seq: number) => db.prepare('SELECT payload FROM audit_payloads WHERE seq = ?').pluck().get(seq) as string | undefined,
    setPayload: (seq: number, payload: string) => void db.prepare('UPDATE audit_payloads SET payload = ? WHERE seq = ?').run(payload, seq),
    /** The record_versions rows an audit entry wrote, in key order, with their column names. */
    versionsOf: (seq: number) => db.prepare('SELECT * FROM record_versions WHERE audit_seq = ? ORDER BY handle_key').all(seq) as Raw[],
    /** Rewrites the values of the versions entry `seq` wrote (of `handleKey` only, when given). */
    setVersionValues(seq: number, valuesJson: string, handleKey?: string): void {
      if (handleKey === undefined) db.prepare('UPDATE record_versions SET values_json = ? WHERE audit_seq = ?').run(valuesJson, seq);
      else db.prepare('UPDATE record_versions SET values_json = ? WHERE audit_seq = ? AND handle_key = ?').run(valuesJson, seq, handleKey);
    },
    deleteVersion: (handleKey: string, seq: number) =>
      void db.prepare('DELETE FROM record_versions WHERE handle_key = ? AND audit_seq = ?').run(handleKey, seq),
    insertVersion: (row: Raw) =>
      void db
        .prepare(
          'INSERT INTO record_versions (handle_key, version, handle, at, actor, action, values_json, audit_seq) VALUES (@handle_key, @version, @handle, @at, @actor, @action, @values_json, @audit_seq)',
        )
        .run(row),
    /** Every row of `table` whose columns equal `where` (all rows when empty), with their column names. */
    rows: (table: string, where: Raw = {}) => db.prepare(`SELECT * FROM ${table}${clause(where)}`).all(where) as Raw[],
    /** Inserts a row given with its column names. */
    insertRow: (table: string, row: Raw) =>
      void db
        .prepare(
          `INSERT INTO ${table} (${Object.keys(row).join(', ')}) VALUES (${Object.keys(row)
            .map((c) => `@${c}`)
            .join(', ')})`,
        )
        .run(row),
    /** Deletes the rows matching `where`; returns how many. */
    deleteRows: (table: string, where: Raw) => db.prepare(`DELETE FROM ${table}${clause(where)}`).run(where).changes,
    /** Sets columns of the rows matching `where`; returns how many. */
    updateRows(table: string, set: Raw, where: Raw): number {
      const sets = Object.keys(set).map((c) => `${c} = @set_${c}`);
      const params = { ...where, ...Object.fromEntries(Object.entries(set).map(([c, v]) => [`set_${c}`, v])) };
      return db.prepare(`UPDATE ${table} SET ${sets.join(', ')}${clause(where)}`).run(params).changes;
    },
    /** Asks this connection to map `bytes` of the file; answers what SQLite granted (its build caps it). */
    mapBytes: (bytes: number) => db.pragma(`mmap_size = ${bytes}`, { simple: true }) as number,
    /** Sets the schema version the file says it has (a file an older idnode left). */
    setUserVersion: (version: number) => void db.pragma(`user_version = ${version}`),
    /** Makes every record look written before schema v5 (no stored max-age, expiry or ETag). */
    clearAnswerMetadata: () => void db.prepare('UPDATE records SET max_age = NULL, expires_at = NULL, etag = NULL').run(),
    /**
     * Makes the store refuse rows: a trigger aborts inserts into `table` where `when` holds (SQL
     * over NEW), as a stricter engine or a full disk would refuse a write mid-transaction.
     */
    refuseInserts: (name: string, table: string, when: string) =>
      void db.exec(`CREATE TRIGGER ${name} BEFORE INSERT ON ${table} WHEN ${when} BEGIN SELECT RAISE(ABORT, 'refused by ${name}'); END`),
    close: () => db.close(),
  };
}

/** Writes a database as schema v1 left it, with one record (a file an old idnode wrote). */
export function writeV1Database(path: string, schemaV1: string): void {
  const db = new Database(path);
  db.exec(schemaV1);
  db.pragma('user_version = 1');
  db.prepare("INSERT INTO records (handle_key, handle, prefix_key, values_json, version, updated_at) VALUES ('88.1/a', '88.1/A', '88.1', '[]', 1, 'x')").run();
  db.close();
}

/** Writes a database as the schema files `schemas` (in order) left it, at `version`: a file an old idnode wrote. */
export function writeOldDatabase(path: string, schemas: string[], version: number) {
  const db = new Database(path);
  for (const sql of schemas) db.exec(sql);
  db.pragma(`user_version = ${version}`);
  db.close();
  return tamper(path);
}

/** A WHERE clause for PostgreSQL, its parameters numbered after `offset` (NULL matches NULL, as SQLite's IS). */
const pgClause = (where: Raw, offset: number) =>
  Object.keys(where).length === 0
    ? ''
    : ` WHERE ${Object.keys(where)
        .map((c, i) => `${c} IS NOT DISTINCT FROM $${offset + i + 1}`)
        .join(' AND ')}`;
const pgArgs = (row: Raw) => Object.values(row) as Array<string | number | null>;

/**
 * The attacker's SQL on a PostgreSQL database (someone with database access behind the node's
 * back): the same edits as `tamper`, asynchronous. Close it with `close()` (or a teardown).
 */
export function tamperPg(url: string) {
  const sql = postgres(url, { max: 1, onnotice: () => undefined, types: { bigint: { to: 20, from: [20], serialize: String, parse: Number } } });
  return {
    auditEntry: async (seq: number) => (await sql`SELECT * FROM audit_log WHERE seq = ${seq}`)[0],
    setAuditActor: async (seq: number, actor: string) => void (await sql`UPDATE audit_log SET actor = ${actor} WHERE seq = ${seq}`),
    deleteAuditEntry: async (seq: number) => void (await sql`DELETE FROM audit_log WHERE seq = ${seq}`),
    setPayload: async (seq: number, payload: string) => void (await sql`UPDATE audit_payloads SET payload = ${payload} WHERE seq = ${seq}`),
    async setVersionValues(seq: number, valuesJson: string, handleKey?: string): Promise<void> {
      if (handleKey === undefined) await sql`UPDATE record_versions SET values_json = ${valuesJson} WHERE audit_seq = ${seq}`;
      else await sql`UPDATE record_versions SET values_json = ${valuesJson} WHERE audit_seq = ${seq} AND handle_key = ${handleKey}`;
    },
    insertVersion: async (row: Raw) =>
      void (await sql`INSERT INTO record_versions ${sql(row as Record<string, string | number | null>, 'handle_key', 'version', 'handle', 'at', 'actor', 'action', 'values_json', 'audit_seq')}`),
    /** Every row of `table` whose columns equal `where` (all rows when empty), with their column names. */
    rows: async (table: string, where: Raw = {}) => (await sql.unsafe(`SELECT * FROM ${table}${pgClause(where, 0)}`, pgArgs(where))).map((r) => ({ ...r })),
    /** Inserts a row given with its column names. */
    async insertRow(table: string, row: Raw): Promise<void> {
      const cols = Object.keys(row);
      await sql.unsafe(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, pgArgs(row));
    },
    /** Deletes the rows matching `where`; returns how many. */
    deleteRows: async (table: string, where: Raw) => (await sql.unsafe(`DELETE FROM ${table}${pgClause(where, 0)}`, pgArgs(where))).count,
    /** Sets columns of the rows matching `where`; returns how many. */
    async updateRows(table: string, set: Raw, where: Raw): Promise<number> {
      const sets = Object.keys(set).map((c, i) => `${c} = $${i + 1}`);
      const n = Object.keys(set).length;
      return (await sql.unsafe(`UPDATE ${table} SET ${sets.join(', ')}${pgClause(where, n)}`, [...pgArgs(set), ...pgArgs(where)])).count;
    },
    /** Runs SQL text (a schema file: a database an older idnode wrote). */
    exec: async (text: string) => void (await sql.unsafe(text)),
    /** The migrations recorded as applied. */
    schemaRows: async () => (await sql`SELECT version, file FROM idnode_schema ORDER BY version`).map((r) => ({ ...r })),
    /** The range partitions of `table` as [from, to) seqs, in order, with their row counts (schema 3). */
    async partitions(table: string): Promise<Array<[from: number, to: number, rows: number]>> {
      const parts = await sql`SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = ${table}::regclass`;
      const out: Array<[number, number, number]> = [];
      for (const p of parts) {
        const [, from, to] = /FROM \('?(\d+)'?\) TO \('?(\d+)'?\)/.exec(p.bound as string)!;
        const [{ n }] = (await sql.unsafe(`SELECT count(*)::int AS n FROM "${p.name as string}"`)) as unknown as [{ n: number }];
        out.push([Number(from), Number(to), n]);
      }
      return out.sort((a, b) => a[0] - b[0]);
    },
    /** How many backends are connected to this database (leak checks). */
    connections: async () =>
      (await sql`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)[0]!.n as number,
    close: () => sql.end({ timeout: 1 }),
  };
}

/** The attacker's tool for whichever engine a store is on: SQLite file path or postgres:// URL. */
export function attacker(path: string) {
  if (path.startsWith('postgres://')) return tamperPg(path);
  const file = tamper(path);
  return {
    auditEntry: async (seq: number) => file.auditEntry(seq),
    setAuditActor: async (seq: number, actor: string) => file.setAuditActor(seq, actor),
    deleteAuditEntry: async (seq: number) => file.deleteAuditEntry(seq),
    setPayload: async (seq: number, payload: string) => file.setPayload(seq, payload),
    setVersionValues: async (seq: number, valuesJson: string, handleKey?: string) => file.setVersionValues(seq, valuesJson, handleKey),
    insertVersion: async (row: Raw) => file.insertVersion(row),
    rows: async (table: string, where: Raw = {}) => file.rows(table, where),
    insertRow: async (table: string, row: Raw) => file.insertRow(table, row),
    deleteRows: async (table: string, where: Raw) => file.deleteRows(table, where),
    updateRows: async (table: string, set: Raw, where: Raw) => file.updateRows(table, set, where),
    close: async () => file.close(),
  };
}
