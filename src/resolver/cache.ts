/**
 * The answer cache: an LRU bounded by bytes (lru-cache) behind a TinyLFU admission policy.
 * Without admission every miss is inserted, so uniform one-off traffic churns the LRU: each
 * insert costs about 13 µs (an entry that lives long enough to be promoted out of V8's young
 * generation, then evicted; bench/README.md, "Cold reads") and pushes out an answer that is
 * asked for again. With admission:
 * - every request for a key is counted in a frequency sketch (hits in `get`, misses in `offer`);
 * - a miss is stored only when its key was asked for before within the sketch's window
 *   (estimated count ≥ 2), unless the caller says the first miss is worth storing;
 * - when storing it would evict, only when its estimated count is greater than the count of
 *   the least recently used entry (the first one the LRU would evict).
 */
import { LRUCache } from 'lru-cache';
import { createSketch, type FrequencySketch, hashKey, nextPowerOfTwo } from './sketch.js';

/** What a cached value must tell the cache: its bytes (the byte bound). */
export interface Sized {
  /** Its body's UTF-8 length. */
  bytes: number;
  /** The body, when it is a string: one that is not ASCII may take two bytes per character in memory. */
  body?: string;
  /** Set by the cache when it stores the value: its key's sketch hash, so a hit hashes no string. */
  sketchHash?: number;
}

/**
 * What an entry costs beyond its body's and its key's characters: the two strings' headers,
 * the Entry object, its ETag string and lru-cache's bookkeeping (its Map's slot and its key,
 * value, next, prev and size arrays). Measured with a full GC (test/admission.test.ts
 * checks it is a bound; bench/README.md, "Memory").
 */
export const ENTRY_OVERHEAD_BYTES = 280;

/** Bytes a string of `chars` characters and UTF-8 length `utf8` takes in memory, at most: V8 keeps a non-ASCII one in two bytes per character. */
const heapBytes = (chars: number, utf8: number) => (utf8 === chars ? chars : 2 * chars);

/** Bytes of cache per sketch counter when the sketch is sized from the cache: about one answer (~870 bytes) and its overhead. */
const BYTES_PER_COUNTER = 1024;
const MAX_DERIVED_COUNTERS = 1 << 24;
/**
 * A derived sketch starts at one counter per KiB of the bound but at most this wide (2 MiB),
 * and doubles as the entries held pass its width, up to one counter per entry the bound could
 * hold (`sketchMaxWidthFor`): a bound far above what the data fills (8 GiB for a million
 * answers: 16 MiB of sketch) costs the counters of the entries held, and a cache of small
 * answers gets one counter per entry all the same. Its window, 10 × width (10 million
 * requests), still remembers a first miss for as long as a cold cache takes to see the key again.
 */
export const START_COUNTERS = 1 << 20;

export interface AnswerCacheOptions {
  maxBytes: number;
  /** false: every offered answer is stored (the LRU alone). */
  admission: boolean;
  /**
   * Counters per sketch row; 0 or absent: derived, at least one per entry held (from
   * `startCounters`, doubling), up to one per ENTRY_OVERHEAD_BYTES of `maxBytes` (rounded up
   * to a power of two, at most 2^24: `sketchMaxWidthFor`).
   */
  sketchCounters?: number;
  /** Where a derived sketch starts (START_COUNTERS; tests make it small). */
  startCounters?: number;
}

export interface AnswerCache<V extends Sized> {
  /** The entry for `key` (counted as a request for it, and made most recently used). */
  get(key: string): V | undefined;
  /** The entry for `key` without counting a request or changing its recency. */
  peek(key: string): V | undefined;
  /**
   * A miss was answered with `value`: counts the request and stores the value if the policy
   * admits it. `firstMiss: true` skips the asked-before rule (the victim comparison still
   * applies). Returns whether it was stored.
   */
  offer(key: string, value: V, opts?: { firstMiss?: boolean }): boolean;
  /** Counts a request for `key` that missed and was answered without an offer (an answer that may not be cached). */
  note(key: string): void;
  delete(key: string): void;
  clear(): void;
  keys(): IterableIterator<string>;
  stats(): AnswerCacheStats;
  /** The sketch (undefined without admission). */
  readonly sketch: FrequencySketch | undefined;
}

export interface AnswerCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  /** Entries the LRU dropped for room. */
  evictions: number;
  /** Misses the admission policy did not store. */
  notAdmitted: number;
}

/** The sketch's width: the configured one, else one counter per KiB of the bound (where a derived one starts, at most START_COUNTERS). */
export function sketchWidthFor(maxBytes: number, configured = 0): number {
  if (configured > 0) return nextPowerOfTwo(configured);
  return Math.min(MAX_DERIVED_COUNTERS, nextPowerOfTwo(Math.ceil(maxBytes / BYTES_PER_COUNTER)));
}

/** The most a derived sketch grows to: one counter per entry of the smallest size (ENTRY_OVERHEAD_BYTES) the bound holds. */
export function sketchMaxWidthFor(maxBytes: number): number {
  return Math.min(MAX_DERIVED_COUNTERS, nextPowerOfTwo(Math.ceil(maxBytes / ENTRY_OVERHEAD_BYTES)));
}

export function createAnswerCache<V extends Sized>(opts: AnswerCacheOptions): AnswerCache<V> {
  const maxBytes = Math.max(opts.maxBytes, 1);
  const counts = { evictions: 0, notAdmitted: 0 };
  const sizeOf = (v: V, key: string) =>
    (v.body === undefined ? v.bytes : heapBytes(v.body.length, v.bytes)) + heapBytes(key.length, Buffer.byteLength(key)) + ENTRY_OVERHEAD_BYTES;
  const lru = new LRUCache<string, V>({
    maxSize: maxBytes,
    dispose: (_v, _k, reason) => {
      if (reason === 'evict') counts.evictions++;
    },
    sizeCalculation: sizeOf,
  });
  const configured = (opts.sketchCounters ?? 0) > 0;
  const width = sketchWidthFor(maxBytes, opts.sketchCounters);
  const sketch = opts.admission ? createSketch(configured ? width : Math.min(width, opts.startCounters ?? START_COUNTERS)) : undefined;
  /** The width a derived sketch may still grow to (0: it may not). */
  const growTo = sketch === undefined || configured ? 0 : sketchMaxWidthFor(maxBytes);

  function admits(s: FrequencySketch, key: string, value: V, firstMiss: boolean): boolean {
    const count = s.record(key);
    if (count < 2 && !firstMiss) return false;
    if (lru.calculatedSize + sizeOf(value, key) <= maxBytes) return true;
    // Full: the newcomer must be asked for more often than the answer it would push out.
    const victim = lru.rkeys().next();
    return victim.done === true || victim.value === key || count > s.estimate(victim.value);
  }

  return {
    get(key) {
      const v = lru.get(key);
      if (v !== undefined && sketch !== undefined) sketch.recordHash(v.sketchHash ?? hashKey(key));
      return v;
    },
    peek: (key) => lru.peek(key),
    offer(key, value, o) {
      if (sketch !== undefined && !admits(sketch, key, value, o?.firstMiss === true)) {
        counts.notAdmitted++;
        // A newer answer replaces an older one even when it is not stored: the old one is wrong now.
        lru.delete(key);
        return false;
      }
      // As an int32 (the same bits to the sketch): a small integer is stored in the entry, a uint32 above 2^31 would be a heap number.
      if (sketch !== undefined) value.sketchHash = hashKey(key) | 0;
      lru.set(key, value);
      if (growTo > 0 && lru.size > sketch!.width && sketch!.width < growTo) sketch!.grow();
      return true;
    },
    note: (key) => void sketch?.record(key),
    delete: (key) => void lru.delete(key),
    clear: () => lru.clear(),
    keys: () => lru.keys(),
    stats: () => ({ entries: lru.size, bytes: lru.calculatedSize, maxBytes, ...counts }),
    sketch,
  };
}
