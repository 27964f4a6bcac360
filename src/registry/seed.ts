/** Seeds an empty node from seeds/: prefixes.json, records.ndjson and events.ndjson, in one audited write. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IdnError } from '../errors.js';
import { parentPrefix, parseIdentifier, parsePrefix } from '../identifier/index.js';
import { applyEvent, canonicalEvent, type LineageEvent, parseEvent } from '../lineage/events.js';
import type { Store } from '../store/index.js';
import { mergeValues, parseValuesBody } from './values.js';
import { answerEtag, renderRecord } from './answer.js';

export interface SeedPrefix {
  prefix: string;
  owner: { name: string };
}

/** Loads the seed files and writes them when the store holds no records; returns how many records it wrote. */
export function seedIfEmpty(deps: { store: Store; router: { reload(): void } }, dir: string): number {
  const { store } = deps;
  if (store.totalRecords() > 0) return 0;
  const prefixes = JSON.parse(readFileSync(join(dir, 'prefixes.json'), 'utf8')) as SeedPrefix[];
  const lines = readFileSync(join(dir, 'records.ndjson'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const records = lines.map((line, i) => {
    try {
      const { handle, values } = JSON.parse(line) as { handle: string; values: unknown };
      const id = parseIdentifier(handle);
      return { id, values: parseValuesBody(values, { valuesMax: 2048 }) };
    } catch (err) {
      throw new IdnError('IDN_INVALID_VALUE', `${join(dir, 'records.ndjson')} line ${i + 1}: ${(err as Error).message}`);
    }
  });
  const eventsFile = join(dir, 'events.ndjson');
  const eventLines = existsSync(eventsFile)
    ? readFileSync(eventsFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
    : [];
  const events: LineageEvent[] = eventLines.map((line, i) => {
    try {
      return parseEvent(JSON.parse(line), 100_000);
    } catch (err) {
      throw new IdnError('IDN_INVALID_VALUE', `${eventsFile} line ${i + 1}: ${(err as Error).message}`);
    }
  });
  store.write({ actor: 'seed', action: 'seed', target: dir }, (tx) => {
    for (const p of prefixes) {
      const { key } = parsePrefix(p.prefix);
      if (store.getPrefix(key) !== undefined) continue;
      tx.putPrefix({
        prefixKey: key,
        prefix: p.prefix,
        parentKey: parentPrefix(key)!,
        ownerJson: JSON.stringify(p.owner),
        site: null,
        status: 'active',
        createdAt: tx.at,
        updatedAt: tx.at,
      });
    }
    for (const r of records) {
      const rendered = renderRecord(mergeValues([], r.values, tx.at));
      tx.putRecord({ handleKey: r.id.key, handle: r.id.text, prefixKey: r.id.prefixKey, ...rendered, etag: answerEtag(r.id.text, rendered) });
    }
    for (const ev of events) applyEvent(tx, ev, canonicalEvent(ev));
    return {
      result: undefined,
      payload: `${prefixes.length} prefixes, ${records.length} records, ${events.length} events\n${lines.join('\n')}\n${eventLines.join('\n')}`,
    };
  });
  deps.router.reload();
  return records.length;
}
