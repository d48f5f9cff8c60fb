/**
 * Adoption: a business record takes ownership of uploads inside the
 * business transaction. This is the `ClaimConsumer` the stack provides: the
 * principal's uploaded claims for the keys go (all or nothing) and the file
 * registry records the adoption, in one transaction (a savepoint inside the
 * caller's).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { withTransaction } from "../internal/transaction.js"
import type { Principal } from "../schema/Models.js"
import { ClaimConsumer } from "../services/ClaimConsumer.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { FileRegistry } from "../services/FileRegistry.js"

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<ClaimConsumer["Type"], never, ClaimStore | FileRegistry | SqlClient.SqlClient> = Effect
  .gen(function*() {
    const claims = yield* ClaimStore
    const registry = yield* FileRegistry
    const transaction = withTransaction(yield* SqlClient.SqlClient)

    return ClaimConsumer.of({
      consumeMany: Effect.fn("ClaimConsumer.consumeMany")(function*(principal: Principal, keys: Iterable<string>) {
        const unique = Array.from(new Set(keys)).filter((key) => key !== "")
        if (unique.length === 0) return
        yield* transaction(Effect.gen(function*() {
          yield* claims.consumeMany(principal, unique)
          yield* registry.markAdopted(unique, yield* DateTime.now)
        }))
      })
    })
  })

/**
 * `ClaimConsumer` over the stores in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<ClaimConsumer, never, ClaimStore | FileRegistry | SqlClient.SqlClient> = Layer
  .effect(ClaimConsumer, make)
