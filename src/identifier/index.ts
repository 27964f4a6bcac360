/** Parse and normalise identifiers (API.md §1). Pure: no I/O. */
import { IdnError } from '../errors.js';

export const MAX_IDENTIFIER_BYTES = 2048;
export const MAX_PREFIX_SEGMENTS = 10;
export const MAX_SEGMENT_LENGTH = 64;
export const PREFIX_HANDLE_PREFIX = '0.NA';

export interface Identifier {
  /** As written by the client (after percent-decoding). */
  readonly text: string;
  /** ASCII-lowercased: the lookup and cache key. */
  readonly key: string;
  readonly prefix: string;
  readonly prefixKey: string;
  readonly suffix: string;
  /** For `0.NA/<prefix>`: the named prefix, normalised; otherwise undefined. */
  readonly namedPrefixKey: string | undefined;
}

const SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;
// C0, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const UPPER = /[A-Z]/;

/** ASCII-only case folding: non-ASCII letters keep their case (Handle.Net default). */
export function foldCase(s: string): string {
  if (!UPPER.test(s)) return s;
  // For an ASCII string toLowerCase folds exactly A-Z, natively: a third of the replace's cost.
  return NON_ASCII.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s.toLowerCase();
}

function invalid(message: string, handle: string | undefined): IdnError {
  return new IdnError('IDN_INVALID_IDENTIFIER', message, { handle });
}

/** Prefixes found valid: a node serves a few, and each miss validates one (split and a regex per segment). */
const validPrefixes = new Set<string>();
const MAX_MEMO_PREFIXES = 1024;

/** Validates a prefix such as `88.100.7`; returns the reason it is bad, or undefined. */
export function prefixProblem(prefix: string): string | undefined {
  if (validPrefixes.has(prefix)) return undefined;
  const problem = checkPrefix(prefix);
  if (problem === undefined) {
    // Many distinct prefixes (a client's junk) restart the memo rather than grow it.
    if (validPrefixes.size >= MAX_MEMO_PREFIXES) validPrefixes.clear();
    validPrefixes.add(prefix);
  }
  return problem;
}

function checkPrefix(prefix: string): string | undefined {
  if (prefix.length === 0) return 'the prefix (before the first "/") is empty';
  const segments = prefix.split('.');
  if (segments.length > MAX_PREFIX_SEGMENTS) return `the prefix has ${segments.length} segments; at most ${MAX_PREFIX_SEGMENTS} are allowed`;
  for (const seg of segments) {
    if (seg.length === 0) return `the prefix "${prefix}" has an empty segment (two dots, or a dot at an end)`;
    if (seg.length > MAX_SEGMENT_LENGTH) return `prefix segment "${seg.slice(0, 20)}…" is ${seg.length} characters; at most ${MAX_SEGMENT_LENGTH} are allowed`;
    if (!SEGMENT.test(seg)) return `prefix segment "${seg}" may only contain ASCII letters, digits, "-" and "_"`;
  }
  return undefined;
}

export function parsePrefix(prefix: string): { prefix: string; key: string } {
  const problem = prefixProblem(prefix);
  if (problem !== undefined) throw new IdnError('IDN_INVALID_IDENTIFIER', problem, { handle: prefix });
  return { prefix, key: foldCase(prefix) };
}

/** Parent of a dotted prefix (`88.100.7` → `88.100`), or undefined for a one-segment prefix. */
export function parentPrefix(prefix: string): string | undefined {
  const dot = prefix.lastIndexOf('.');
  return dot < 0 ? undefined : prefix.slice(0, dot);
}

/** `88.100.7` → [`88.100.7`, `88.100`, `88`]: the prefix and its ancestors, longest first. */
export function prefixChain(prefix: string): string[] {
  const chain = [prefix];
  let p: string | undefined = prefix;
  while ((p = parentPrefix(p)) !== undefined) chain.push(p);
  return chain;
}

/** True when `prefix` equals `ancestor` or lies under it (both normalised). */
export function isUnderPrefix(prefix: string, ancestor: string): boolean {
  return prefix === ancestor || (prefix.length > ancestor.length && prefix.startsWith(ancestor) && prefix[ancestor.length] === '.');
}

/**
 * Parses an identifier. `slashlessIsPrefix` turns `88.100.7` into `0.NA/88.100.7`
 * (what a URL path without `/` means, docs/API.md §1). `folded`: `foldCase(input)`, when the
 * caller has it already (the fast path looked the cache up with it), so a miss folds once.
 */
export function parseIdentifier(input: unknown, opts: { slashlessIsPrefix?: boolean; folded?: string } = {}): Identifier {
  if (typeof input !== 'string') throw invalid('an identifier must be a string such as "88.100.7/ABC-1"', undefined);
  let text = input;
  if (text.length === 0) throw invalid('the identifier is empty; expected prefix/suffix such as 88.100.7/ABC-1', text);
  let slash = text.indexOf('/');
  if (slash < 0) {
    if (!opts.slashlessIsPrefix) throw invalid(`"${clip(text)}" has no "/"; an identifier is prefix/suffix such as 88.100.7/ABC-1`, text);
    const problem = prefixProblem(text);
    if (problem !== undefined) throw invalid(problem, text);
    text = `${PREFIX_HANDLE_PREFIX}/${text}`;
    slash = PREFIX_HANDLE_PREFIX.length;
  }
  // A UTF-16 code unit is at most 3 bytes of UTF-8: a short text needs no count.
  if (text.length * 3 > MAX_IDENTIFIER_BYTES && Buffer.byteLength(text, 'utf8') > MAX_IDENTIFIER_BYTES)
    throw invalid(`the identifier is ${Buffer.byteLength(text, 'utf8')} bytes in UTF-8; at most ${MAX_IDENTIFIER_BYTES} are allowed`, clip(text));
  const prefix = text.slice(0, slash);
  const suffix = text.slice(slash + 1);
  const prefixBad = prefixProblem(prefix);
  if (prefixBad !== undefined) throw invalid(prefixBad, text);
  if (suffix.length === 0) throw invalid('the suffix (after the first "/") is empty', text);
  if (CONTROL.test(suffix)) throw invalid('the suffix contains a control character; only printable characters are allowed', text);
  if (!suffix.isWellFormed()) throw invalid('the suffix contains a lone surrogate; it must be well-formed Unicode', text);
  // With a "/" in the input the text is the input, so the caller's fold is the text's.
  const key = opts.folded !== undefined && text === input ? opts.folded : foldCase(text);
  const prefixKey = key.slice(0, slash);
  let namedPrefixKey: string | undefined;
  if (prefixKey === '0.na') {
    const named = prefixProblem(suffix);
    if (named !== undefined) throw invalid(`0.NA/ names a prefix, and ${named}`, text);
    namedPrefixKey = key.slice(slash + 1);
  }
  return { text, key, prefix, prefixKey, suffix, namedPrefixKey };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
// eslint-disable-next-line no-control-regex -- the range starts at NUL on purpose: anything above 0x7f is not ASCII
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Turns the raw request-target path part (as node:http gives it, bytes as latin1) into
 * the identifier text: raw bytes must be UTF-8, then percent-escapes are decoded once.
 * `+` stays a plus. Invalid escapes or non-UTF-8 bytes are 400/102, never U+FFFD.
 */
export function decodePathIdentifier(raw: string): string {
  let text = raw;
  if (NON_ASCII.test(text)) {
    try {
      text = utf8.decode(Buffer.from(text, 'latin1'));
    } catch {
      throw invalid('the request path contains bytes that are not UTF-8; percent-encode the identifier as UTF-8', undefined);
    }
  }
  if (text.includes('%')) {
    try {
      text = decodeURIComponent(text);
    } catch {
      throw invalid(`the identifier "${clip(raw)}" has an invalid percent-escape or escaped bytes that are not UTF-8`, undefined);
    }
  }
  return text;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
