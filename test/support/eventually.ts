/**
 * Polls (on the real clock, whatever clock the test runs on) until `check`
 * holds, for work that background fibers do with real I/O.
 */
import * as Effect from "effect/Effect"
import * as TestServices from "effect/TestServices"

export const eventually = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  options: { readonly timeoutMillis?: number; readonly what?: string } = {}
): Effect.Effect<void, E | Error, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + (options.timeoutMillis ?? 10_000)
    while (Date.now() < deadline) {
      if (yield* check) return
      yield* TestServices.provideLive(Effect.sleep("25 millis"))
    }
    return yield* Effect.fail(new Error(`timed out waiting for ${options.what ?? "a condition"}`))
  })
