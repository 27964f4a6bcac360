/**
 * PostgreSQL schema files schema/postgres/NNN_*.sql, applied in order under an advisory lock
 * (many nodes may start at once on one database) and recorded in idnode_schema.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMA_DIR } from '../../paths.js';
import type { Q, Sql } from './db.js';

const PG_SCHEMA_DIR = join(SCHEMA_DIR, 'postgres');
/** Any fixed number: every idnode process migrating this database takes the same lock. */
const MIGRATION_LOCK = 0x1d_0de;

function schemaFiles(): string[] {
  return readdirSync(PG_SCHEMA_DIR)
    .filter((f) => /^\d{3}_.*\.sql$/.test(f))
    .sort();
}

/** The PostgreSQL schema version this code expects (the highest schema/postgres/NNN_*.sql). */
export function latestPgSchemaVersion(): number {
  return Math.max(0, ...schemaFiles().map((f) => Number(f.slice(0, 3))));
}

/**
 * The SQLite schema version whose tables a PostgreSQL schema version has (its file's
 * `-- rows: vN` line, or the newest earlier file's): what the engine reports as schemaVersion,
 * so escrow manifests compare across engines.
 */
export function rowsVersion(pgVersion: number): number {
  let rows = 0;
  for (const file of schemaFiles()) {
    if (Number(file.slice(0, 3)) > pgVersion) break;
    const m = /^-- rows: v(\d+)$/m.exec(readFileSync(join(PG_SCHEMA_DIR, file), 'utf8'));
    if (m) rows = Number(m[1]);
  }
  return rows;
}

/** The version applied to the database (0: none yet). */
export async function pgSchemaVersion(sql: Q): Promise<number> {
  const [exists] = await sql<Array<{ t: string | null }>>`SELECT to_regclass('idnode_schema')::text AS t`;
  if (exists?.t == null) return 0;
  const [row] = await sql<Array<{ v: number | null }>>`SELECT max(version)::bigint AS v FROM idnode_schema`;
  return row?.v ?? 0;
}

export interface MigrateOptions {
  /**
   * Audit entries per range partition (schema 3): the first partitions of a new database and
   * every partition made from now on have this size; existing ones keep theirs.
   */
  auditPartitionEntries?: number | undefined;
}

/**
 * Applies the files newer than the database's version, all in one transaction under the lock;
 * then the audit log's upkeep: the partition size asked for, and partitions ahead of the head.
 */
export async function migratePg(sql: Sql, opts: MigrateOptions = {}): Promise<number> {
  const entries = opts.auditPartitionEntries;
  return sql.begin<number>(async (tx) => {
    // Transaction-scoped: released at commit, or when a crashed process's connection drops.
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS idnode_schema (version integer PRIMARY KEY, file text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    // Read by schema 3 when it makes a database's first partitions.
    if (entries !== undefined) await tx`SELECT set_config('idnode.audit_partition_entries', ${String(entries)}, true)`;
    let current = await pgSchemaVersion(tx);
    for (const file of schemaFiles()) {
      const version = Number(file.slice(0, 3));
      if (version <= current) continue;
      await tx.unsafe(readFileSync(join(PG_SCHEMA_DIR, file), 'utf8'));
      await tx`INSERT INTO idnode_schema (version, file) VALUES (${version}, ${file})`;
      current = version;
    }
    if (current >= 3) {
      if (entries !== undefined) await tx`UPDATE meta SET value = ${String(entries)} WHERE key = 'audit.partition_entries' AND value <> ${String(entries)}`;
      await tx`SELECT idnode_audit_partitions_ahead((SELECT seq FROM chain_head WHERE id = 1))`;
    }
    return current;
  });
}
