/**
 * The key filter: a Bloom filter of every record key this node's store holds, so that a
 * resolution of an identifier that is not registered is answered without a database read
 * (a flood of random unknown identifiers costs what a hit costs, and never reaches the
 * database). A Bloom filter has no false negatives: "not in the filter" means "not
 * registered" as long as every key written is added — the change feed adds them (the resolver's
 * `invalidate`), and a full scan of the records table fills a new filter. Deleted keys stay in
 * it (a false positive costs one database read, as without the filter).
 *
 * A key's probes lie in one 64-byte block (a blocked Bloom filter, as the admission sketch's
 * counters do): every miss of a registered identifier asks the filter first, and 7 probes
 * spread over a filter of megabytes would cost 7 cache misses each time.
 */
/** Bits per key at the filter's capacity: with 7 probes in 512-bit blocks, about 1 % false positives when full. */
export const BITS_PER_KEY = 10;
const PROBES = 7;
/** Bits per block: one 64-byte cache line. */
const BLOCK_BITS = 512;

export interface KeyFilter {
  add(key: string): void;
  /** False: the key was never added. True: it may have been. */
  mightHave(key: string): boolean;
  /** Keys added (with repeats: a key written twice counts twice). */
  readonly added: number;
  /** Keys it was sized for; past this, false positives grow. */
  readonly capacity: number;
  readonly bytes: number;
}

/** The block's first word, and the key's probes' start and (odd) step within the block: set by `locate`. */
let base = 0;
let at = 0;
let step = 0;

/**
 * Two independent 32-bit hashes of `key` in one pass over it (`hashKey`'s FNV-1a, and a
 * murmur-style mix with another seed): the first picks the block, the second the probes.
 */
function locate(key: string, blockMask: number): void {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
  }
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, 0xc2b2ae35);
  h1 ^= h1 >>> 16;
  h2 ^= h2 >>> 15;
  h2 = Math.imul(h2, 0x2c1b3c6d);
  h2 ^= h2 >>> 12;
  base = (h1 & blockMask) << 4;
  at = h2 & (BLOCK_BITS - 1);
  step = (h2 >>> 9) | 1;
}

/** A filter for `capacity` keys: `capacity × BITS_PER_KEY` bits rounded up to a power of two. */
export function createKeyFilter(capacity: number): KeyFilter {
  let bits = 1 << 10;
  while (bits < capacity * BITS_PER_KEY && bits < 2 ** 31) bits *= 2;
  const words = new Uint32Array(bits / 32);
  const blockMask = bits / BLOCK_BITS - 1;
  let added = 0;
  return {
    add(key) {
      locate(key, blockMask);
      for (let i = 0; i < PROBES; i++) {
        const bit = (at + Math.imul(i, step)) & (BLOCK_BITS - 1);
        words[base + (bit >>> 5)]! |= 1 << (bit & 31);
      }
      added++;
    },
    mightHave(key) {
      locate(key, blockMask);
      for (let i = 0; i < PROBES; i++) {
        const bit = (at + Math.imul(i, step)) & (BLOCK_BITS - 1);
        if ((words[base + (bit >>> 5)]! & (1 << (bit & 31))) === 0) return false;
      }
      return true;
    },
    get added() {
      return added;
    },
    capacity: Math.floor(bits / BITS_PER_KEY),
    bytes: words.byteLength,
  };
}

/** Bytes a filter for `capacity` keys takes (what `createKeyFilter` would allocate). */
export function keyFilterBytes(capacity: number): number {
  let bits = 1 << 10;
  while (bits < capacity * BITS_PER_KEY && bits < 2 ** 31) bits *= 2;
  return bits / 8;
}
