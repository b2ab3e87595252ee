/**
 * Deterministic random numbers. Two generators:
 * - `Rng` (mulberry32, a 32-bit state): weight generation of the tiny models (seeded from
 *   (seed, tensor name) so each tensor's values do not depend on generation order), benchmark
 *   prompts and tests. Its seed is taken modulo 2^32: never use it for a user's seed.
 * - `SeedStream` (splitmix64 over the full 64-bit state): the sampling of a request's sequences,
 *   seeded from the API's `seed` (any safe integer) and the continuation index, so seeds that
 *   differ anywhere in their 53 bits, and the continuations of one seed, draw different streams.
 */
export class Rng {
  private state: number

  constructor(seed: number) {
    this.state = seed >>> 0
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next()
    const v = this.next()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }
}

/** Uniform numbers in [0, 1) from `seed`, as a function (mulberry32: a seed names the stream exactly). */
export function uniformStream(seed: number): () => number {
  const r = new Rng(seed)
  return () => r.next()
}

/** FNV-1a of `text`, mixed with `seed`: a stream id per (seed, tensor name). */
export function streamSeed(seed: number, text: string): number {
  let h = 0x811c9dc5 ^ seed
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

const MASK64 = (1n << 64n) - 1n
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n

/** splitmix64's output function (Steele, Lea, Flood 2014): a bijection of 64-bit words. */
function mix64(x: bigint): bigint {
  let z = x & MASK64
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64
  return z ^ (z >> 31n)
}

/**
 * The sampling stream of one sequence: splitmix64 whose state starts at mix64(seed + continuation)
 * over 64-bit two's complement, computed exactly (BigInt), so the whole seed counts (seed 1 and
 * 2^32 + 1 differ; seed 2^53 − 1 and its continuation 1, i.e. 2^53, differ). Continuation j of
 * seed s draws what seed s + j draws with continuation 0 (vLLM's parallel sampling seeds child j
 * with seed + j). Mixing the start keeps streams of nearby seeds from being shifts of each other.
 */
export class SeedStream {
  private state: bigint

  constructor(seed: number, continuation = 0) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`)
    if (!Number.isSafeInteger(continuation) || continuation < 0) throw new RangeError(`continuation must be a non-negative integer, got ${continuation}`)
    this.state = mix64(BigInt.asUintN(64, BigInt(seed) + BigInt(continuation)))
  }

  /** Uniform in [0, 1), 53 bits. */
  next(): number {
    this.state = (this.state + GOLDEN_GAMMA) & MASK64
    return Number(mix64(this.state) >> 11n) / 2 ** 53
  }
}
