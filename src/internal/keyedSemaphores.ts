/**
 * Semaphores per key, made when a key is first taken and dropped when its
 * last holder or waiter leaves.
 *
 * Unlike a fixed set of stripes picked by a hash, two keys never wait for
 * each other. That matters where a holder streams a client's body: a
 * stalled client would otherwise block every key of its stripe, and a body
 * that reads another object of the same storage could wait on itself.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** @internal */
export interface KeyedSemaphores {
  /** Runs `effect` holding `take` permits of `key`'s semaphore. */
  (key: string, take: number): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** How many keys have a holder or a waiter (for tests). */
  readonly size: () => number
}

/** @internal */
export const make = (permits: number): KeyedSemaphores => {
  const entries = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  const enter = (key: string) =>
    Effect.sync(() => {
      let entry = entries.get(key)
      if (entry === undefined) {
        entry = { semaphore: Effect.unsafeMakeSemaphore(permits), users: 0 }
        entries.set(key, entry)
      }
      entry.users++
      return entry
    })
  const leave = (key: string, entry: { users: number }) =>
    Effect.sync(() => {
      if (--entry.users === 0) entries.delete(key)
    })
  const withPermits = (key: string, take: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      enter(key),
      (entry) => entry.semaphore.withPermits(take)(effect),
      (entry) => leave(key, entry)
    )
  return Object.assign(withPermits, { size: () => entries.size })
}
