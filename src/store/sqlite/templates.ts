/** Metadata templates, one row per (prefix, version). */
import type { TemplateReads, TemplateRow } from '../types.js';
import type { Db, Sync } from './db.js';

export function templateReads(db: Db): Sync<TemplateReads> {
  const all = db.prepare(
    'SELECT prefix_key AS prefixKey, version, prefix, body_json AS bodyJson, used, created_at AS createdAt, updated_at AS updatedAt FROM templates ORDER BY prefix_key, created_at, version',
  );
  return { allTemplates: () => all.all() as TemplateRow[] };
}

export function templateWrites(db: Db) {
  const put = db.prepare(
    `INSERT INTO templates (prefix_key, version, prefix, body_json, used, created_at, updated_at)
     VALUES (@prefixKey, @version, @prefix, @bodyJson, @used, @createdAt, @updatedAt)
     ON CONFLICT (prefix_key, version) DO UPDATE SET body_json = excluded.body_json, updated_at = excluded.updated_at`,
  );
  const markUsed = db.prepare('UPDATE templates SET used = 1 WHERE prefix_key = ? AND version = ? AND used = 0');
  return {
    put: (row: TemplateRow) => void put.run(row),
    /** True when this marked it (it was unused). */
    markUsed: (prefixKey: string, version: string) => markUsed.run(prefixKey, version).changes > 0,
  };
}
