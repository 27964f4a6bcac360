/**
 * The store: the storage contract (types.ts), the engines that implement it (sqlite/ and
 * postgres/), and the pure helpers of the audit chain. Nothing outside src/store/ sees a
 * database handle.
 */
import { openPostgres } from './postgres/engine.js';
import { openSqlite } from './sqlite/engine.js';
import type { StoreEngine, StoreOptions } from './types.js';
import { IdnError } from '../errors.js';

export type * from './types.js';
export { auditHash, GENESIS_HASH, isoSeconds, versionLine } from './chain.js';
export { ESCROW_TABLES } from './sqlite/escrow.js';
export { latestSchemaVersion } from './sqlite/migrations.js';
export { latestPgSchemaVersion } from './postgres/migrations.js';

/** What the rest of idnode holds: whichever engine the configuration named. */
export type Store = StoreEngine;

/** Storage engines idnode can open. */
export type EngineName = 'sqlite' | 'postgres';

/** Opens the SQLite store at `path` (synchronous: SQLite callers need no await). */
export function openStore(path: string, opts: StoreOptions & { engine?: 'sqlite' } = {}): StoreEngine {
  return openSqlite(path, opts);
}

/** Where and how `connectStore` opens a store. */
export interface ConnectOptions extends StoreOptions {
  engine: EngineName;
  /** The SQLite file (engine sqlite). */
  path?: string;
  /** postgres://… of the primary (engine postgres). */
  url?: string;
  /** postgres://… of a hot standby for cache-miss reads, history, lineage and listing. */
  readUrl?: string;
  /** Connections per PostgreSQL pool (default 4). */
  poolSize?: number;
  /** Writes batched into one PostgreSQL transaction at most (default 64; 1: no group commit). */
  batchMax?: number;
  /** Called with the number of writes each committed PostgreSQL transaction carried. */
  onBatch?: (writes: number) => void;
  /** The longest a PostgreSQL query or write transaction may wait (ms). */
  statementTimeoutMs?: number;
  /** The longest a new PostgreSQL connection may take (ms). */
  connectTimeoutMs?: number;
}

/** Opens either engine; for PostgreSQL, connects and migrates before resolving. */
export async function connectStore(opts: ConnectOptions): Promise<StoreEngine> {
  switch (opts.engine) {
    case 'sqlite':
      if (opts.path === undefined) throw new IdnError('IDN_INTERNAL', 'store.engine sqlite needs a database path');
      return openSqlite(opts.path, opts);
    case 'postgres':
      if (opts.url === undefined) throw new IdnError('IDN_INTERNAL', 'store.engine postgres needs store.url (postgres://user@host:port/database)');
      return openPostgres({ ...opts, url: opts.url });
  }
}
