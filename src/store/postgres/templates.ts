/** Metadata templates, one row per (prefix, version). */
import type { TemplateReads, TemplateRow } from '../types.js';
import type { Q } from './db.js';

export function templateReads(q: Q): TemplateReads {
  return {
    allTemplates: async () => [
      ...(await q.unsafe<TemplateRow[]>(
        'SELECT prefix_key AS "prefixKey", version, prefix, body_json AS "bodyJson", used, created_at AS "createdAt", updated_at AS "updatedAt" FROM templates ORDER BY prefix_key, created_at, version',
        [],
        { prepare: true },
      )),
    ],
  };
}

export const templateWrites = {
  async put(q: Q, r: TemplateRow): Promise<void> {
    await q`INSERT INTO templates (prefix_key, version, prefix, body_json, used, created_at, updated_at)
      VALUES (${r.prefixKey}, ${r.version}, ${r.prefix}, ${r.bodyJson}, ${r.used}, ${r.createdAt}, ${r.updatedAt})
      ON CONFLICT (prefix_key, version) DO UPDATE SET body_json = excluded.body_json, updated_at = excluded.updated_at`;
  },
  /** True when this marked it (it was unused). */
  async markUsed(q: Q, prefixKey: string, version: string): Promise<boolean> {
    const r = await q`UPDATE templates SET used = 1 WHERE prefix_key = ${prefixKey} AND version = ${version} AND used = 0`;
    return r.count > 0;
  },
};
