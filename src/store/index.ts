/**
 * The store: the storage contract (types.ts), the engines that implement it (sqlite/ today),
 * and the pure helpers of the audit chain. Nothing outside src/store/ sees a database handle.
 */
import { openSqlite } from './sqlite/engine.js';
import type { StoreEngine, StoreOptions } from './types.js';

export type * from './types.js';
export { auditHash, GENESIS_HASH, isoSeconds, versionLine } from './chain.js';
export { ESCROW_TABLES } from './sqlite/escrow.js';
export { latestSchemaVersion } from './sqlite/migrations.js';

/** What the rest of idnode holds: whichever engine the configuration named. */
export type Store = StoreEngine;

/** Storage engines idnode can open. */
export type EngineName = 'sqlite';

/** Opens the store at `path` with the engine named (only `sqlite` today). */
export function openStore(path: string, opts: StoreOptions & { engine?: EngineName } = {}): StoreEngine {
  switch (opts.engine ?? 'sqlite') {
    case 'sqlite':
      return openSqlite(path, opts);
  }
}
