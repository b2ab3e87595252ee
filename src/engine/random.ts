/**
 * Deterministic random numbers for weight generation and sampling: splitmix64 over BigInt-free
 * 32-bit halves (mulberry32 per stream), seeded from (seed, name) so each tensor's values do not
 * depend on generation order.
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
