/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { DeleteReason } from "../schema/Models.js"

/**
 * The narrow public face of `DeleteQueue` for business code: schedule the
 * deletion of objects inside the business transaction.
 *
 * @since 0.1.0
 * @category tags
 */
export class DeleteScheduler extends Context.Tag("effect-storage/DeleteScheduler")<DeleteScheduler, {
  /**
   * Queues the deletion of `keys` (de-duplicated), idempotent on
   * (key, reason). Run it inside `sql.withTransaction`: the job exists
   * exactly when the business write commits.
   */
  readonly schedule: (keys: Iterable<string>, reason: DeleteReason) => Effect.Effect<void, SqlError>
}>() {}
