import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as KeyedSemaphores from "../../src/internal/keyedSemaphores.js"

describe("KeyedSemaphores", () => {
  it.effect("one key's holder makes only that key wait; a key is forgotten when its last user leaves", () =>
    Effect.gen(function*() {
      const locks = KeyedSemaphores.make(1)
      const release = yield* Deferred.make<void>()
      const held = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        locks("a", 1)(Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release)))
      )
      yield* Deferred.await(held)
      // Another key goes straight through.
      expect(yield* locks("b", 1)(Effect.succeed("b"))).toBe("b")
      // The same key waits; a waiter interrupted while waiting leaves no trace.
      const waiter = yield* Effect.fork(locks("a", 1)(Effect.succeed("a")))
      yield* Effect.yieldNow()
      expect(waiter.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(waiter)
      const second = yield* Effect.fork(locks("a", 1)(Effect.succeed("a")))
      yield* Effect.yieldNow()
      expect(locks.size()).toBe(1)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      expect(yield* Fiber.join(second)).toBe("a")
      expect(locks.size()).toBe(0)
    }))

  it.effect("a key of several permits: holders of one permit share it, one taking all waits for them", () =>
    Effect.gen(function*() {
      const sessions = KeyedSemaphores.make(4)
      const release = yield* Deferred.make<void>()
      const holding = yield* Effect.all([1, 2, 3].map(() => Deferred.make<void>()))
      const writers = yield* Effect.fork(
        Effect.all(
          holding.map((held) =>
            sessions("s", 1)(Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release)))
          ),
          { concurrency: "unbounded" }
        )
      )
      yield* Effect.forEach(holding, Deferred.await)
      const completion = yield* Effect.fork(sessions("s", 4)(Effect.succeed("done")))
      yield* Effect.yieldNow()
      expect(completion.unsafePoll()).toBeNull()
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(writers)
      expect(yield* Fiber.join(completion)).toBe("done")
      expect(sessions.size()).toBe(0)
    }))
})
