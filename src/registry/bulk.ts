/**
 * Bulk registration (API.md §3.2): NDJSON lines `{"handle","values"}` read as a stream (no
 * whole-body buffering), committed in atomic chunks of `chunkSize` lines through the store's
 * one write path (one audit entry per chunk whose digest covers every record in it), with
 * one result per input line and a summary that says how far the input is committed.
 */
import { IdnError, isIdnError } from '../errors.js';
import { type Identifier, isUnderPrefix, parseIdentifier } from '../identifier/index.js';
import type { Store, TemplateRow, WriteTx } from '../store/index.js';
import { type InputValue, parseValuesBody } from './values.js';
import { writeRecord } from './records.js';
import { deletedMessage, tombstoneIn } from './tombstones.js';
import { loneSurrogateMessage, loneSurrogatePath, mayHoldLoneSurrogate } from './text.js';

/** True when arrays and objects in a JSON text nest deeper than `max` (one linear scan, no recursion). */
export function jsonTooDeep(text: string, max: number): boolean {
  // Nesting past `max` takes more than `max` brackets: a text with fewer needs no scan (indexOf is native).
  let openers = 0;
  for (let i = text.indexOf('{'); i >= 0 && openers <= max; i = text.indexOf('{', i + 1)) openers++;
  for (let i = text.indexOf('['); i >= 0 && openers <= max; i = text.indexOf('[', i + 1)) openers++;
  if (openers <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

export interface LineResult {
  line: number;
  handle?: string;
  responseCode: number;
  message?: string;
}

export interface Summary {
  summary: true;
  total: number;
  ok: number;
  failed: number;
  /** Every line up to this one is either committed or answered as failed; resume after it. */
  committedThroughLine: number;
}

export interface BulkOptions {
  /** The prefix named in the URL: every identifier must lie under it. */
  prefixKey: string;
  overwrite: boolean;
  /** 'line': a bad line fails alone; 'chunk': a chunk with a bad line commits nothing. */
  onError: 'line' | 'chunk';
  actor: string;
  /** Called before a line is accepted (scope, routing, prefix status, templates). */
  checkLine?: (id: Identifier, values: InputValue[]) => void;
  /** Deepest nesting a line may have (config limits.jsonMaxDepth); deeper lines fail alone. */
  jsonMaxDepth?: number;
}

export interface Bulk {
  /**
   * Reads NDJSON from `input`, writing one result per line and then the summary to `emit`
   * (which may wait for the client to read: backpressure). Stops at the first read error
   * (a client gone mid-stream): what was committed stays, the open chunk is dropped.
   */
  run(input: AsyncIterable<Buffer | string>, opts: BulkOptions, emit: (line: LineResult | Summary) => Promise<void> | void): Promise<Summary>;
}

type LineItem = { text: string } | { tooLong: number };

/**
 * Splits a byte stream into lines, refusing (not buffering) lines over `maxBytes`. Yields the
 * lines each piece of input completes, together: one step of the async iteration per piece
 * (about 64 KiB), not per line.
 */
export async function* ndjsonLines(input: AsyncIterable<Buffer | string>, maxBytes: number): AsyncGenerator<LineItem[]> {
  let parts: Buffer[] = [];
  let size = 0;
  let overflow = false;
  const text = () => (parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts).toString('utf8'));
  for await (const raw of input) {
    let chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    const lines: LineItem[] = [];
    for (;;) {
      const nl = chunk.indexOf(10);
      const piece = nl < 0 ? chunk : chunk.subarray(0, nl);
      if (!overflow) {
        size += piece.length;
        if (size > maxBytes) {
          overflow = true;
          parts = [];
        } else parts.push(piece);
      } else size += piece.length;
      if (nl < 0) break;
      lines.push(overflow ? { tooLong: size } : { text: text() });
      parts = [];
      size = 0;
      overflow = false;
      chunk = chunk.subarray(nl + 1);
    }
    if (lines.length > 0) yield lines;
  }
  if (overflow) yield [{ tooLong: size }];
  else if (size > 0) yield [{ text: text() }];
}

/** Thrown inside a chunk's write to roll it back because of one line (noted beside it). */
class LineFailure extends Error {}

/** Why a chunk's write was rolled back: a line (`line`), or a set-based step to retry record by record. */
interface Failure {
  line?: LineResult;
  retryPerLine?: boolean;
}

/** A line that failed while being written: its own code when it is an IdnError, else a plain refusal. */
function lineError(p: Parsed, err: unknown): LineResult {
  if (isIdnError(err)) return { line: p.line, handle: p.id.text, responseCode: err.responseCode, message: err.message };
  return {
    line: p.line,
    handle: p.id.text,
    responseCode: 2,
    message: `line ${p.line} (${p.id.text}) could not be stored: the store refused it; nothing of it was written`,
  };
}

interface Parsed {
  line: number;
  id: Identifier;
  values: InputValue[];
  /** The template version the values passed when the line was read. */
  checked: TemplateRow | undefined;
}

export function createBulk(deps: {
  store: Store;
  valuesMax: number;
  lineMaxBytes: number;
  chunkSize: number;
  /** The records a chunk wrote (metrics and statistics). */
  onWritten: (keys: string[]) => void;
  /** Metadata templates: checked per line (a bad line fails alone), applied in the chunk. */
  templates?: {
    check(id: Identifier, values: readonly InputValue[]): TemplateRow | undefined;
    /** `check` of the same values, stamped, that passed `checked` when read (skipped while that version stands). */
    recheck?(id: Identifier, values: readonly InputValue[], checked: TemplateRow | undefined): void;
    apply(tx: WriteTx, id: Identifier, values: readonly InputValue[]): Promise<void>;
    /** `apply` for a chunk's records at once (set-based lineage); else `apply` per record. */
    applyMany?(tx: WriteTx, records: ReadonlyArray<{ id: Identifier; values: readonly InputValue[] }>): Promise<void>;
  };
}): Bulk {
  const { store } = deps;

  function parseLine(text: string, lineNo: number, opts: BulkOptions): Parsed {
    let obj: unknown;
    if (opts.jsonMaxDepth !== undefined && jsonTooDeep(text, opts.jsonMaxDepth))
      throw new IdnError(
        'IDN_BODY_UNPARSABLE',
        `line ${lineNo} nests arrays and objects deeper than ${opts.jsonMaxDepth} levels (config limits.jsonMaxDepth); flatten it`,
      );
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new IdnError('IDN_BODY_UNPARSABLE', `line ${lineNo} is not JSON: ${(err as Error).message}`);
    }
    const bad = mayHoldLoneSurrogate(text) ? loneSurrogatePath(obj) : undefined;
    if (bad !== undefined) throw new IdnError('IDN_INVALID_VALUE', loneSurrogateMessage(`line ${lineNo}`, bad));
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw new IdnError('IDN_INVALID_VALUE', `line ${lineNo} must be an object {"handle": "...", "values": [...]}`);
    // A line is a Handle record body: other fields (a GET answer's responseCode) are ignored, as in a PUT.
    const { handle, values } = obj as Record<string, unknown>;
    const id = parseIdentifier(handle);
    if (id.namedPrefixKey !== undefined)
      throw new IdnError('IDN_FORBIDDEN', `${id.text} is a prefix handle; manage prefixes through /api/prefixes`, { handle: id.text });
    if (!isUnderPrefix(id.prefixKey, opts.prefixKey))
      throw new IdnError('IDN_INVALID_VALUE', `${id.text} is not under prefix ${opts.prefixKey} named in the URL`, { handle: id.text });
    let parsed: InputValue[];
    try {
      parsed = parseValuesBody(values, { valuesMax: deps.valuesMax });
    } catch (err) {
      (err as IdnError).handle = id.text;
      throw err;
    }
    opts.checkLine?.(id, parsed);
    let checked: TemplateRow | undefined;
    try {
      checked = deps.templates?.check(id, parsed);
    } catch (err) {
      (err as IdnError).handle = id.text;
      throw err;
    }
    return { line: lineNo, id, values: parsed, checked };
  }

  /**
   * Commits one chunk; returns a result per parsed line. A line refused before anything of it
   * is written (a duplicate, a conflict, a template violation on the final values) is answered
   * in place. A line that fails while it is being written (the store refuses it) throws a
   * `LineFailure` after noting it in `failure`: the transaction rolls back and the caller
   * commits the chunk again without that line (rare, so the common path stays one transaction).
   */
  async function commit(chunk: Parsed[], opts: BulkOptions, failure: Failure, perLine: boolean): Promise<LineResult[]> {
    const results: LineResult[] = [];
    const written: string[] = [];
    const firstLine = chunk[0]!.line;
    const lastLine = chunk[chunk.length - 1]!.line;
    // onError=chunk: the first failed line rolls the whole chunk back.
    const refuse = (r: LineResult) => {
      if (opts.onError === 'chunk') {
        failure.line = r;
        throw new LineFailure(r.message ?? '');
      }
      results.push(r);
    };
    // The chunk's records (and their newest versions) are loaded with the write, in one read.
    const hint = { keys: [...new Set(chunk.map((p) => p.id.key))] };
    await store.write(
      { actor: opts.actor, action: 'bulk.chunk', target: `${opts.prefixKey} lines ${firstLine}-${lastLine}` },
      async (tx) => {
        const payload: Array<[string, string]> = [];
        const seen = new Set<string>();
        // Template state and reference edges of the written lines, applied together after the loop.
        const lineage: Array<{ id: Identifier; values: readonly InputValue[] }> = [];
        const many = perLine || deps.templates?.applyMany === undefined ? undefined : deps.templates;
        for (const p of chunk) {
          if (seen.has(p.id.key)) {
            refuse({
              line: p.line,
              handle: p.id.text,
              responseCode: 101,
              message: `${p.id.text} appears earlier in the same chunk; send each identifier once`,
            });
            continue;
          }
          seen.add(p.id.key);
          let w: Awaited<ReturnType<typeof writeRecord>> | undefined;
          let checkFailed: IdnError | undefined;
          let tombstone: Awaited<ReturnType<typeof tombstoneIn>>;
          try {
            const existing = await tx.getRecord(p.id.key);
            // Bulk never re-registers a deleted identifier: that is one deliberate admin PUT at a time.
            tombstone = existing === undefined ? await tombstoneIn(tx, store, p.id.key) : undefined;
            if (tombstone === undefined)
              w = await writeRecord(tx, p.id, existing, { put: p.values }, (values) => {
                // Checked again on the final values, inside the write, as a single PUT does:
                // a line's values replace the record's whole, so only a changed template can fail them now.
                try {
                  const t = deps.templates;
                  if (t?.recheck !== undefined) t.recheck(p.id, values, p.checked);
                  else t?.check(p.id, values);
                } catch (err) {
                  if (!isIdnError(err)) throw err;
                  checkFailed = err;
                  return false;
                }
                return existing === undefined || opts.overwrite;
              });
            if (w?.state === 'replaced' || w?.state === 'created') {
              if (many !== undefined) lineage.push({ id: p.id, values: w.values });
              else await deps.templates?.apply(tx, p.id, w.values);
            }
          } catch (err) {
            // Part of this line may be written already: only a rollback undoes it.
            failure.line = lineError(p, err);
            throw new LineFailure(failure.line.message ?? '', { cause: err });
          }
          if (w === undefined) {
            refuse({ line: p.line, handle: tombstone!.handle, responseCode: 101, message: deletedMessage(tombstone!) });
            continue;
          }
          if (checkFailed !== undefined) {
            refuse({ line: p.line, handle: p.id.text, responseCode: checkFailed.responseCode, message: checkFailed.message });
            continue;
          }
          if (w.state === 'unchanged') {
            results.push({ line: p.line, handle: w.handle, responseCode: 1, message: 'unchanged' });
            continue;
          }
          if (w.state === 'refused') {
            refuse({
              line: p.line,
              handle: w.handle,
              responseCode: 101,
              message: `${p.id.text} already exists with other values; send overwrite=true to replace it`,
            });
            continue;
          }
          payload.push([p.id.key, w.line]);
          written.push(p.id.key);
          results.push(
            w.state === 'created'
              ? { line: p.line, handle: w.handle, responseCode: 1 }
              : { line: p.line, handle: w.handle, responseCode: 1, message: 'replaced' },
          );
        }
        if (lineage.length > 0)
          try {
            await many!.applyMany!(tx, lineage);
          } catch (err) {
            // No line to blame in a set-based statement: the chunk is written again line by line, which finds it.
            failure.retryPerLine = true;
            throw new LineFailure("the chunk's lineage could not be stored", { cause: err });
          }
        if (payload.length === 0) return { result: undefined, payload: null };
        // The digest covers every record of the chunk, in key order (verification recomputes it).
        payload.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        return { result: undefined, payload: payload.map((p) => p[1]).join('\n') };
      },
      hint,
    );
    deps.onWritten(written);
    return results;
  }

  /**
   * Commits a chunk so that a line failing inside the write fails alone (onError=line): each
   * such line is taken out and the rest committed again, so at most one audit entry is kept.
   */
  async function commitChunk(chunk: Parsed[], opts: BulkOptions): Promise<LineResult[]> {
    const failed: LineResult[] = [];
    let todo = chunk;
    let perLine = false;
    while (todo.length > 0) {
      const failure: Failure = {};
      try {
        return [...failed, ...(await commit(todo, opts, failure, perLine))];
      } catch (err) {
        if (failure.retryPerLine === true && !perLine) {
          perLine = true;
          continue;
        }
        const bad = failure.line;
        if (bad === undefined) {
          // Not a line's fault (the audit append, the commit): the chunk's transaction rolled back.
          const e = isIdnError(err) ? err : new IdnError('IDN_INTERNAL', 'the chunk could not be stored', { cause: err });
          return [...failed, ...todo.map((p) => ({ line: p.line, handle: p.id.text, responseCode: e.responseCode, message: `not committed: ${e.message}` }))];
        }
        failed.push(bad);
        todo = todo.filter((p) => p.line !== bad.line);
        if (opts.onError === 'chunk')
          return [
            ...failed,
            ...todo.map((p) => ({
              line: p.line,
              handle: p.id.text,
              responseCode: 2,
              message: `not committed: line ${bad.line} of this chunk failed (onError=chunk)`,
            })),
          ];
      }
    }
    return failed;
  }

  return {
    async run(input, opts, emit) {
      const summary: Summary = { summary: true, total: 0, ok: 0, failed: 0, committedThroughLine: 0 };
      let chunk: Parsed[] = [];
      let pending: LineResult[] = [];

      async function flush(): Promise<void> {
        let results: LineResult[] = [];
        const bad = pending.find((r) => r.responseCode !== 1);
        if (chunk.length > 0) {
          if (opts.onError === 'chunk' && bad !== undefined)
            results = chunk.map((p) => ({
              line: p.line,
              handle: p.id.text,
              responseCode: 2,
              message: `not committed: line ${bad.line} of this chunk failed (onError=chunk)`,
            }));
          else results = await commitChunk(chunk, opts);
        }
        const all = [...pending, ...results].sort((a, b) => a.line - b.line);
        for (const r of all) {
          if (r.responseCode === 1) summary.ok++;
          else summary.failed++;
          // Awaited only when the client is behind: a microtask per line is measurable at 50,000 lines/s.
          const wait = emit(r);
          if (wait !== undefined) await wait;
        }
        if (all.length > 0) summary.committedThroughLine = all[all.length - 1]!.line;
        chunk = [];
        pending = [];
      }

      let lineNo = 0;
      for await (const items of ndjsonLines(input, deps.lineMaxBytes))
        for (const item of items) {
          lineNo++;
          if ('text' in item && item.text.trim() === '') continue;
          summary.total++;
          if ('tooLong' in item) {
            pending.push({
              line: lineNo,
              responseCode: 4,
              message: `line ${lineNo} has ${item.tooLong} bytes; at most ${deps.lineMaxBytes} are allowed per line (config limits.bulkLineMaxBytes)`,
            });
          } else {
            try {
              chunk.push(parseLine(item.text, lineNo, opts));
            } catch (err) {
              if (!isIdnError(err)) throw err;
              pending.push({ line: lineNo, ...(err.handle !== undefined ? { handle: err.handle } : {}), responseCode: err.responseCode, message: err.message });
            }
          }
          if (chunk.length + pending.length >= deps.chunkSize) await flush();
        }
      await flush();
      await emit(summary);
      return summary;
    },
  };
}
