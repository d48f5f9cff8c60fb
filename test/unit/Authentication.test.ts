import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { secretsEqual, TokenResolver } from "../../src/http/Authentication.js"

describe("TokenResolver.layerFromMap", () => {
  const resolve = (token: string) =>
    Effect.flatMap(TokenResolver, (resolver) => resolver.resolve(Redacted.make(token))).pipe(
      Effect.provide(TokenResolver.layerFromMap({ alice: "token-alice", bob: "token-bob" }))
    )

  it.effect("resolves each token to its user; near misses, prefixes and extensions are unknown", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* resolve("token-alice"), { id: "alice" })
      assert.deepStrictEqual(yield* resolve("token-bob"), { id: "bob" })
      for (const wrong of ["token-alicf", "token-alic", "token-alice ", "TOKEN-ALICE", "", "token-"]) {
        const failure = yield* Effect.flip(resolve(wrong))
        assert.strictEqual(failure._tag, "Unauthenticated", wrong)
      }
    }))

  it("secretsEqual compares whole secrets of any length", () => {
    assert.isTrue(secretsEqual("s3cret", "s3cret"))
    assert.isFalse(secretsEqual("s3cret", "s3cre"))
    assert.isFalse(secretsEqual("s3cret", "s3cret-and-more"))
    assert.isTrue(secretsEqual("", ""))
  })
})
