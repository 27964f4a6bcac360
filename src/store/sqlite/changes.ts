/** The change feed: one row per cached thing a write made stale, pruned to a bounded length. */
import type { ChangeReads, ChangeRow } from '../types.js';
import type { Db, Sync } from './db.js';

export function changeReads(db: Db): Sync<ChangeReads> {
  const dataVersion = db.prepare('PRAGMA data_version').pluck();
  const after = db.prepare('SELECT id, audit_seq AS auditSeq, kind, key FROM changes WHERE id > ? ORDER BY id LIMIT ?');
  const head = db.prepare('SELECT max(id) FROM changes').pluck();
  return {
    dataVersion: () => dataVersion.get() as number,
    changesAfter: (cursor, limit) => after.all(cursor, limit) as ChangeRow[],
    changesHead: () => (head.get() as number | null) ?? 0,
  };
}

export function changeWrites(db: Db, retention: number) {
  const insert = db.prepare('INSERT INTO changes (audit_seq, kind, key) VALUES (?, ?, ?)');
  const prune = db.prepare('DELETE FROM changes WHERE id <= ?');
  return {
    /** Records `changes` ("kind key" strings) under `auditSeq`, then prunes past the retention. */
    record(auditSeq: number | null, changes: Iterable<string>): void {
      let last = 0;
      for (const c of changes) {
        const space = c.indexOf(' ');
        last = Number(insert.run(auditSeq, c.slice(0, space), c.slice(space + 1)).lastInsertRowid);
      }
      // Bounded: a follower further behind than this drops its whole cache instead.
      if (last > retention) prune.run(last - retention);
    },
  };
}
