/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { AccessDenied, ClaimNotFound } from "../schema/Errors.js"
import type { Principal } from "../schema/Models.js"

/**
 * The narrow public face of `ClaimStore` for business code: adopt uploads
 * inside the business transaction.
 *
 * @since 0.1.0
 * @category tags
 */
export class ClaimConsumer extends Context.Tag("effect-storage/ClaimConsumer")<ClaimConsumer, {
  /**
   * Adopts the principal's uploaded claims for `keys`, all or nothing (see
   * `ClaimStore.consumeMany`). Run it inside `sql.withTransaction`; on
   * `ClaimNotFound` let the transaction roll back.
   */
  readonly consumeMany: (
    principal: Principal,
    keys: Iterable<string>
  ) => Effect.Effect<void, AccessDenied | ClaimNotFound | SqlError>
}>() {}
