/**
 * The frequency sketch of the cache's admission policy (TinyLFU: Einziger, Friedman, Manes,
 * "TinyLFU: A Highly Efficient Cache Admission Policy", 2017): a count-min sketch of 4 rows of
 * 4-bit counters, 8 counters per 32-bit word, so `width` counters per row cost width / 2 bytes
 * in all. Every `resetAfter` recorded requests all counters are halved, so the counts describe
 * the recent window and a key that stopped being asked for is forgotten.
 *
 * A key's 4 counters lie in one 64-byte block (as in Caffeine's sketch): every cache hit
 * records its key, and 4 counters spread over a table larger than the CPU cache cost 4 cache
 * misses per request (in-process on a loaded machine, a hit then cost about 4 times a plain
 * LRU lookup with the 512 KiB table of a 256 MiB cache).
 *
 * In front of the counters, TinyLFU's doorkeeper: a Bloom filter of the keys seen once in the
 * window. A key's first request only sets its bits; from its second on, the counters count
 * it. Without it every one-off key incremented the counters, and under uniform traffic over
 * many more keys than counters (the cold scenario: 1M keys, 8,192 counters) a never-seen key's
 * estimate was already 2 or more: a quarter of one-off misses were stored, each evicting an
 * answer and costing an insert (bench/README.md, "Cold reads"). The filter takes 2 bits per
 * request of the window (4 bytes per counter with the default window), cleared at each halving.
 */

export interface FrequencySketch {
  /** Counts one request for `key`; returns its estimated count, this one included (at most 15). */
  record(key: string): number;
  /** `record` for a key whose `hashKey` is known (a cache hit: the entry keeps its key's hash). */
  recordHash(hash: number): number;
  /** The estimated count of `key` in the current window (0 to 15; never below the true count). */
  estimate(key: string): number;
  /** Counters per row (a power of two). */
  readonly width: number;
  /** Recorded requests between two halvings. */
  readonly resetAfter: number;
  /** Halvings done so far. */
  halvings(): number;
  /**
   * Doubles the width, every estimate kept (a key's block becomes one of two copies of it),
   * and with a default window, the window too.
   */
  grow(): void;
}

const DEPTH = 4;
const MAX_COUNT = 15;
/** Halving clears the low bit of every counter and shifts it down, 8 counters at a time. */
const HALF_MASK = 0x77777777;
/** Doorkeeper probes per key, all in one 512-bit block (one cache line). */
const DOOR_PROBES = 3;

export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * A 32-bit hash of a string (FNV-1a over UTF-16 units, then murmur3's finaliser so that keys
 * differing only at the end spread over every bit).
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * `width` is rounded up to a power of two (at least 64); `resetAfter` defaults to 10 × width,
 * TinyLFU's sample size for a cache of about `width` entries.
 */
export function createSketch(width: number, resetAfter?: number): FrequencySketch {
  let w = nextPowerOfTwo(Math.max(64, width));
  /** 64-byte blocks of 16 words; row i of a block is its words 4i to 4i + 3. */
  let blockMask = (DEPTH * w) / 128 - 1;
  let reset = resetAfter ?? 10 * w;
  let table = new Uint32Array((DEPTH * w) / 8);
  /** Counter positions of the key being looked at (reused: no allocation per request). */
  const slots = new Int32Array(DEPTH);
  /** The doorkeeper: 2 bits per request of the window (at least one block), in 16-word blocks. */
  const doorFor = (window: number) => new Uint32Array(nextPowerOfTwo(Math.max(512, 2 * window)) / 32);
  let door = doorFor(reset);
  let doorBlockMask = door.length / 16 - 1;
  let recorded = 0;
  let halvings = 0;

  function locate(h: number, mask: number): void {
    // The block from the low bits of h; within each row, a word and a nibble from 5 bits of a second mix.
    const base = (h & mask) << 7;
    let h2 = Math.imul(h ^ (h >>> 15), 0x9e3779b1) >>> 0;
    for (let i = 0; i < DEPTH; i++) {
      slots[i] = base + (i << 5) + (h2 & 31);
      h2 >>>= 5;
    }
  }

  // The table is passed in, read once per request from its mutable slot (`grow` replaces it): a
  // load per counter made the sketch 20 % slower per request, measured.
  const counter = (t: Uint32Array, slot: number) => (t[slot >>> 3]! >>> ((slot & 7) << 2)) & 0xf;

  function minimum(t: Uint32Array): number {
    let min = MAX_COUNT;
    for (let i = 0; i < DEPTH; i++) min = Math.min(min, counter(t, slots[i]!));
    return min;
  }

  /**
   * True when the doorkeeper holds `h`; with `add`, sets its bits too. Its block and probes
   * come from a remix of h, independent of the counters' positions.
   */
  function doorkeeper(h: number, add: boolean): boolean {
    let m = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    m ^= m >>> 13;
    const base = (m & doorBlockMask) << 4;
    let bits = Math.imul(m, 0xc2b2ae35) >>> 0;
    let held = true;
    for (let i = 0; i < DOOR_PROBES; i++) {
      const at = base + ((bits >>> 5) & 15);
      const bit = 1 << (bits & 31);
      if ((door[at]! & bit) === 0) {
        held = false;
        if (!add) return false;
        door[at]! |= bit;
      }
      bits >>>= 9;
    }
    return held;
  }

  /** The estimate of the located key: its counters' minimum, or 1 when they say 0 and the doorkeeper holds it. */
  function count(h: number): number {
    const min = minimum(table);
    return min > 0 ? min : doorkeeper(h, false) ? 1 : 0;
  }

  function halve(): void {
    for (let i = 0; i < table.length; i++) table[i] = (table[i]! >>> 1) & HALF_MASK;
    door.fill(0);
    recorded = Math.floor(recorded / 2);
    halvings++;
  }

  /** Raises the located counters below `target` to it (conservative update: the others' overestimate stays down). */
  function raise(t: Uint32Array, target: number): void {
    for (let i = 0; i < DEPTH; i++) {
      const slot = slots[i]!;
      const shift = (slot & 7) << 2;
      const word = t[slot >>> 3]!;
      if (((word >>> shift) & 0xf) < target) t[slot >>> 3] = (word & ~(0xf << shift)) | (target << shift);
    }
  }

  function record(hash: number): number {
    const t = table;
    locate(hash, blockMask);
    const min = minimum(t);
    // A key the counters hold (every hot key) never reads the doorkeeper: a hit touches one block, as before.
    // A first request only sets the doorkeeper's bits; at the second, its one moves into the counters with this one.
    const n = min > 0 ? Math.min(MAX_COUNT, min + 1) : doorkeeper(hash, true) ? 2 : 1;
    if (n > min && n > 1) raise(t, n);
    if (++recorded >= reset) halve();
    return n;
  }

  function grow(): void {
    // A key's block is h & blockMask: with one more mask bit it is block b or b + blocks, both copies of b.
    const doubled = new Uint32Array(table.length * 2);
    doubled.set(table);
    doubled.set(table, table.length);
    table = doubled;
    w *= 2;
    blockMask = blockMask * 2 + 1;
    if (resetAfter === undefined) {
      reset = 10 * w;
      // The doorkeeper doubles with the window, copied as the table is (a key's block is m & doorBlockMask), so it keeps its keys.
      const doubledDoor = doorFor(reset);
      if (doubledDoor.length === 2 * door.length) {
        doubledDoor.set(door);
        doubledDoor.set(door, door.length);
      }
      door = doubledDoor;
      doorBlockMask = door.length / 16 - 1;
    }
  }

  return {
    record: (key) => record(hashKey(key)),
    recordHash: record,
    estimate(key) {
      const h = hashKey(key);
      locate(h, blockMask);
      return count(h);
    },
    get width() {
      return w;
    },
    get resetAfter() {
      return reset;
    },
    halvings: () => halvings,
    grow,
  };
}
