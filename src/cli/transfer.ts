/** `idnode import | export | restore`: bulk files on the database directly, and escrow. */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { ConfigError, type Config } from '../config.js';
import { IdnError } from '../errors.js';
import { parsePrefix } from '../identifier/index.js';
import { openRegistry } from '../main.js';
import type { LineResult, Summary } from '../registry/bulk.js';
import { exportTo, restoreFrom } from '../registry/escrow.js';
import { authorizeWrite } from '../registry/records.js';
import { TEMPLATE_INDEX, TEMPLATE_TYPE } from '../registry/templates.js';
import type { Store } from '../store/index.js';

export interface Output {
  out(line: string): void;
  err(line: string): void;
  /** A terminal: progress redraws one line; otherwise plain lines. */
  tty: boolean;
}

/**
 * Splits CSV (RFC 4180: quotes, doubled quotes, newlines inside quotes) into rows with the
 * CSV line each starts on. csv-parse works on bytes across chunks, so a character or a `""`
 * split by a read boundary arrives whole.
 */
export async function* csvRows(input: AsyncIterable<Buffer | string>): AsyncGenerator<{ row: string[]; line: number }> {
  const parser = parse({
    info: true,
    bom: true,
    // The hand-written reader this replaces allowed ragged rows, quotes inside unquoted cells and both line ends.
    relax_column_count: true,
    relax_quotes: true,
    record_delimiter: ['\r\n', '\n'],
  });
  const source = Readable.from(input);
  source.on('error', (err) => parser.destroy(err));
  source.pipe(parser);
  let endLine = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      // info.lines is the line the record ends on; it starts right after the previous one.
      yield { row: record, line: endLine + 1 };
      endLine = info.lines;
    }
  } catch (err) {
    const e = err as Error & { code?: string; lines?: number };
    if (e.code?.startsWith('CSV_')) throw new ConfigError(`CSV line ${e.lines ?? endLine + 1}: ${e.message}`);
    throw err;
  } finally {
    source.destroy();
  }
}

/**
 * CSV → NDJSON lines for the bulk importer. Header: `handle`, then template item names
 * (with `--template VERSION`) or `INDEX:TYPE` columns such as `1:URL`. Empty cells are left
 * out. The header becomes a blank line, and a record spanning lines is padded by blank ones,
 * so result line numbers are the CSV lines records start on.
 */
export async function* csvToNdjson(
  input: AsyncIterable<Buffer | string>,
  columnsFor: (header: string[]) => Array<{ index: number; type: string } | 'handle'>,
  template: string | undefined,
): AsyncGenerator<string> {
  let columns: Array<{ index: number; type: string } | 'handle'> | undefined;
  let emitted = 0;
  for await (const { row, line } of csvRows(input)) {
    // Blank NDJSON lines (skipped by the importer) keep each record on the CSV line it starts on.
    if (line - 1 > emitted) yield '\n'.repeat(line - 1 - emitted);
    emitted = line;
    if (columns === undefined) {
      columns = columnsFor(row);
      yield '\n';
      continue;
    }
    let handle: string | undefined;
    const values: Array<Record<string, unknown>> = template === undefined ? [] : [{ index: TEMPLATE_INDEX, type: TEMPLATE_TYPE, data: template }];
    row.forEach((cell, i) => {
      const col = columns![i];
      if (col === undefined || cell === '') return;
      if (col === 'handle') handle = cell;
      else values.push({ index: col.index, type: col.type, data: cell });
    });
    yield `${JSON.stringify({ handle: handle ?? null, values })}\n`;
  }
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const m = Math.floor(seconds / 60);
  return m > 0 ? `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s` : `${Math.round(seconds)}s`;
}

export async function importFile(
  config: Config,
  file: string,
  opts: { prefix: string | undefined; format: string | undefined; template: string | undefined; overwrite: boolean },
  io: Output,
): Promise<number> {
  if (opts.prefix === undefined)
    throw new ConfigError('usage: idnode import FILE --prefix PREFIX [--format ndjson|csv] [--template VERSION] [--overwrite false]');
  if (!existsSync(file)) throw new ConfigError(`no file ${file}`);
  const format = opts.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  if (format !== 'csv' && format !== 'ndjson') throw new ConfigError('--format must be ndjson or csv');
  let prefixKey: string;
  try {
    prefixKey = parsePrefix(opts.prefix).key;
  } catch (err) {
    throw new ConfigError(`--prefix: ${(err as Error).message}`);
  }
  const reg = await openRegistry(config);
  try {
    const size = statSync(file).size;
    let bytes = 0;
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const chunk of createReadStream(file)) {
        bytes += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    }
    let input: AsyncIterable<Buffer | string> = counted();
    if (format === 'csv') {
      const items = opts.template === undefined ? [] : reg.templates.get(opts.prefix, opts.template).items;
      input = csvToNdjson(
        counted(),
        (header) =>
          header.map((h, i) => {
            const name = h.trim();
            if (name === 'handle') return 'handle';
            const item = items.find((it) => it.name === name);
            if (item !== undefined) return { index: item.idIndex, type: item.idType };
            const m = /^(\d+):(.+)$/.exec(name);
            if (m !== null) return { index: Number(m[1]), type: m[2]! };
            throw new ConfigError(
              `CSV column ${i + 1} "${name}" is neither "handle", an item of template ${opts.template ?? '(none: pass --template)'}, nor INDEX:TYPE such as 1:URL`,
            );
          }),
        opts.template,
      );
    }
    const started = Date.now();
    let done = 0;
    let failed = 0;
    let lastDraw = 0;
    const draw = (final: boolean) => {
      const now = Date.now();
      if (!final && now - lastDraw < (io.tty ? 200 : 2000)) return;
      lastDraw = now;
      const secs = Math.max(0.001, (now - started) / 1000);
      const rate = done / secs;
      const pct = size === 0 ? 100 : Math.min(100, (bytes / size) * 100);
      const eta = pct >= 100 ? 0 : (secs / Math.max(pct, 0.01)) * (100 - pct);
      const text = `${done} records (${failed} failed), ${Math.round(rate)} records/s, ${pct.toFixed(1)} %, ETA ${formatEta(eta)}`;
      if (io.tty) io.err(`\r${text}${final ? '\n' : ''}`);
      else io.err(`${text}\n`);
    };
    const admin = { id: 'cli', role: 'admin' as const, prefixes: [], actor: `cli import ${file}` };
    let summary: Summary | undefined;
    await reg.bulk.run(
      input,
      {
        prefixKey,
        overwrite: opts.overwrite,
        onError: 'line',
        actor: admin.actor,
        checkLine: (id) => authorizeWrite(reg.router.route(id.prefixKey), admin, id),
      },
      (r: LineResult | Summary) => {
        if ('summary' in r) {
          summary = r;
          return;
        }
        done++;
        if (r.responseCode !== 1) {
          failed++;
          if (io.tty) io.err('\r');
          io.err(`line ${r.line}${r.handle !== undefined ? ` ${r.handle}` : ''}: ${r.message ?? `responseCode ${r.responseCode}`}\n`);
        }
        draw(false);
      },
    );
    draw(true);
    io.out(JSON.stringify({ ...summary!, seconds: (Date.now() - started) / 1000 }));
    return summary!.failed > 0 ? 1 : 0;
  } finally {
    reg.changes.stop();
    await reg.store.close();
  }
}

/** Writes the escrow export of `store` (opened read-only by the caller; closed here). */
export async function exportCommand(store: Store, out: string, io: Output): Promise<number> {
  try {
    const m = await exportTo(store, out);
    io.out(JSON.stringify({ out, counts: m.counts, auditHead: m.auditHead, templateVersions: m.templateVersions }));
    return 0;
  } finally {
    await store.close();
  }
}

/** Restores into a new SQLite file (`db`), or into the configured PostgreSQL database, which must be empty. */
export async function restoreCommand(from: string | undefined, db: string | undefined, config: Config | undefined, io: Output): Promise<number> {
  const pg = db === undefined && config?.store.engine === 'postgres';
  if (from === undefined || (db === undefined && !pg))
    throw new ConfigError('usage: idnode restore --from DIR --db NEW_FILE (or --config FILE naming an empty PostgreSQL database)');
  try {
    const { manifest, checked } = await restoreFrom(from, pg ? { engine: 'postgres', url: config.store.url } : db!);
    io.out(JSON.stringify({ db: pg ? 'store.url' : db, counts: manifest.counts, auditVerified: checked, auditHead: manifest.auditHead }));
    return 0;
  } catch (err) {
    if (err instanceof IdnError) throw new ConfigError(`restore refused: ${err.message}`);
    throw err;
  }
}
