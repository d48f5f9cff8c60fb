/**
 * `sql.withTransaction`, with its own failures kept typed.
 *
 * @effect/sql turns a failed COMMIT or ROLLBACK into a defect; that is what
 * a connection lost mid-transaction (a database restart) looks like. Store
 * methods promise `SqlError` in their error channel for every SQL failure,
 * so the defect is turned back into that failure.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"

/** @internal */
export const isSqlError = (u: unknown): u is SqlError => Predicate.isTagged(u, "SqlError")

/** @internal */
export const withTransaction =
  (sql: SqlClient.SqlClient) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.catchSomeDefect((defect) => isSqlError(defect) ? Option.some(Effect.fail(defect)) : Option.none())
    )
