/**
 * The bytes of a record's answer and what its headers need (ETag, max-age), in one place:
 * the write path computes them once per version and stores them with the record; the read
 * path uses the stored ones and computes them only for rows written before schema v5.
 */
import { createHash, hash } from 'node:crypto';
import { type HandleValue, isPublic, ttlSeconds } from './values.js';

/** Cap on any cache lifetime we advertise or keep (Handle.Net's). */
export const MAX_TTL_SECONDS = 172800;

// One-shot hashing (Node >= 20.12) makes no Hash object: about 1.5 µs less per written record.
const oneShot = typeof hash === 'function';

export function etagOf(body: string): string {
  return `"${oneShot ? hash('sha1', body, 'base64url') : createHash('sha1').update(body).digest('base64url')}"`;
}

/**
 * The 200 answer for a value list that is already JSON. Joined (not concatenated with `+`)
 * so V8 builds one flat string: a concatenation would be a rope that, once flattened for
 * the first write, keeps a second copy's worth of nodes alive in the cache.
 */
export function answerText(handle: string, valuesJson: string): string {
  return ['{"responseCode":1,"handle":', JSON.stringify(handle), ',"values":', valuesJson, '}'].join('');
}

export function smallestTtl(values: HandleValue[], nowMs: number): number {
  let min = MAX_TTL_SECONDS;
  for (const v of values) min = Math.min(min, ttlSeconds(v, nowMs));
  return values.length === 0 ? 0 : min;
}

/** The stored form of a record: full list, the public list when it differs, and the public answer's max-age in two parts. */
export interface RenderedRecord {
  valuesJson: string;
  publicJson: string | null;
  /** Smallest relative ttl of the public values (capped; 0 for an empty list). */
  maxAge: number;
  /** Earliest absolute expiry of the public values, ms since the epoch; null when none has one. */
  expiresAt: number | null;
}

export function renderRecord(values: HandleValue[]): RenderedRecord {
  const valuesJson = JSON.stringify(values);
  // Most records are all public: no second list then.
  const pub = values.every(isPublic) ? values : values.filter(isPublic);
  const publicJson = pub === values ? null : JSON.stringify(pub);
  let maxAge = MAX_TTL_SECONDS;
  let expiresAt: number | null = null;
  for (const v of pub) {
    if (typeof v.ttl === 'number') maxAge = Math.min(maxAge, v.ttl);
    else expiresAt = Math.min(expiresAt ?? Infinity, Date.parse(v.ttl));
  }
  if (pub.length === 0) maxAge = 0;
  return { valuesJson, publicJson, maxAge, expiresAt };
}

/** ETag of the public answer; computed only for what is written (a hash of about a kilobyte). */
export function answerEtag(handle: string, r: RenderedRecord): string {
  return etagOf(answerText(handle, r.publicJson ?? r.valuesJson));
}

/** A record's stored form with its public answer's ETag, as `writeRecord` stores it (restore rebuilds rows with it). */
export function storedForm(handle: string, values: HandleValue[]): RenderedRecord & { etag: string } {
  const rendered = renderRecord(values);
  return { ...rendered, etag: answerEtag(handle, rendered) };
}

/** max-age now, from stored metadata. */
export function maxAgeAt(meta: Pick<RenderedRecord, 'maxAge' | 'expiresAt'>, nowMs: number): number {
  if (meta.expiresAt === null) return meta.maxAge;
  return Math.min(meta.maxAge, Math.max(0, Math.floor((meta.expiresAt - nowMs) / 1000)));
}
