/**
 * The key filter: a Bloom filter of every record key this node's store holds, so that a
 * resolution of an identifier that is not registered is answered without a database read
 * (a flood of random unknown identifiers costs what a hit costs, and never reaches the
 * database). A Bloom filter has no false negatives: "not in the filter" means "not
 * registered" as long as every key written is added — the change feed adds them (the resolver's
 * `invalidate`), and a full scan of the records table fills a new filter. Deleted keys stay in
 * it (a false positive costs one database read, as without the filter).
 */
import { hashKey } from './sketch.js';

/** Bits per key at the filter's capacity: with 7 probes, about 0.8 % false positives when full. */
export const BITS_PER_KEY = 10;
const PROBES = 7;

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

/** A second 32-bit hash, independent enough of `hashKey` for double hashing (different seed and mix). */
function hashKey2(key: string): number {
  let h = 0x9747b28c;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x5bd1e995);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  // Odd, so the probes of one key never repeat one bit while the bit count is a power of two.
  return (h | 1) >>> 0;
}

/** A filter for `capacity` keys: `capacity × BITS_PER_KEY` bits rounded up to a power of two. */
export function createKeyFilter(capacity: number): KeyFilter {
  let bits = 1 << 10;
  while (bits < capacity * BITS_PER_KEY && bits < 2 ** 31) bits *= 2;
  const words = new Uint32Array(bits / 32);
  const mask = bits - 1;
  let added = 0;
  return {
    add(key) {
      const h1 = hashKey(key);
      const h2 = hashKey2(key);
      for (let i = 0; i < PROBES; i++) {
        const bit = (h1 + Math.imul(i, h2)) & mask;
        words[bit >>> 5]! |= 1 << (bit & 31);
      }
      added++;
    },
    mightHave(key) {
      const h1 = hashKey(key);
      const h2 = hashKey2(key);
      for (let i = 0; i < PROBES; i++) {
        const bit = (h1 + Math.imul(i, h2)) & mask;
        if ((words[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
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
