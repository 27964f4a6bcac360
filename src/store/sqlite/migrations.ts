/** Schema files schema/NNN_*.sql, applied in order, each in its own transaction. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMA_DIR } from '../../paths.js';
import type { Db } from './db.js';

function schemaFiles(): string[] {
  return readdirSync(SCHEMA_DIR)
    .filter((f) => /^\d{3}_.*\.sql$/.test(f))
    .sort();
}

/** The schema version this code expects (the highest schema/NNN_*.sql). */
export function latestSchemaVersion(): number {
  return Math.max(0, ...schemaFiles().map((f) => Number(f.slice(0, 3))));
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function migrate(db: Db): void {
  const current = schemaVersion(db);
  for (const file of schemaFiles()) {
    const version = Number(file.slice(0, 3));
    if (version <= current) continue;
    const sql = readFileSync(join(SCHEMA_DIR, file), 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    }).immediate();
  }
}
