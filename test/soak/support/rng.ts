/**
 * A seeded random number generator (mulberry32), so a soak run can be
 * replayed: the seed comes from SOAK_SEED or is drawn, and is printed.
 */
export class Rng {
  private state: number

  constructor(readonly seed: number) {
    this.state = seed >>> 0
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<A>(items: ReadonlyArray<A>): A {
    if (items.length === 0) throw new Error("pick from nothing")
    return items[Math.floor(this.next() * items.length)]!
  }

  /** Bytes derived from the generator (cheap, reproducible). */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    let word = 0
    for (let i = 0; i < n; i++) {
      if ((i & 3) === 0) word = Math.floor(this.next() * 4294967296)
      out[i] = (word >>> ((i & 3) * 8)) & 0xff
    }
    return out
  }

  /** A child generator, so concurrent clients stay reproducible on their own. */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296))
  }
}

/** The seed of a suite: SOAK_SEED (decimal) or a fresh one; printed either way. */
export const seedFor = (suite: string): number => {
  const given = process.env.SOAK_SEED
  const seed = given !== undefined && /^\d+$/.test(given) ? Number(given) >>> 0 : Math.floor(Math.random() * 2 ** 32)
  console.log(`[soak] ${suite}: seed ${seed} (replay with SOAK_SEED=${seed})`)
  return seed
}
