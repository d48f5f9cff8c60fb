/**
 * The flows' transactions retry a deadlock: two transactions that lock two
 * rows in opposite order deadlock on the real server, the database picks a
 * victim, and the victim runs again once the other has committed.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { withTransaction } from "../../src/internal/transaction.js"
import { retriedTransaction } from "../../src/layers/sql/Dialect.js"
import { describeEachDialect } from "../support/databases.js"

/**
 * Runs two transactions (wrapped by `wrap`) that each add 1 to rows 1 and 2,
 * in opposite order, each holding its first row until the other holds its
 * own: a deadlock on the first attempt. Answers each side's outcome, the
 * rows after, and how many attempts were made.
 */
const deadlock = (wrap: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP TABLE IF EXISTS deadlock_probe`
    yield* sql`CREATE TABLE deadlock_probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`
    yield* sql`INSERT INTO deadlock_probe (id, n) VALUES (1, 0), (2, 0)`
    const holding = { 1: yield* Deferred.make<void>(), 2: yield* Deferred.make<void>() }
    let attempts = 0
    const side = (first: 1 | 2, second: 1 | 2) =>
      wrap(Effect.gen(function*() {
        attempts++
        yield* sql`UPDATE deadlock_probe SET n = n + 1 WHERE id = ${first}`
        yield* Deferred.succeed(holding[first], undefined)
        yield* Deferred.await(holding[second])
        yield* sql`UPDATE deadlock_probe SET n = n + 1 WHERE id = ${second}`
      }))
    const outcomes = yield* Effect.all([Effect.either(side(1, 2)), Effect.either(side(2, 1))], {
      concurrency: "unbounded"
    })
    const rows = yield* sql<{ id: number; n: number }>`SELECT id, n FROM deadlock_probe ORDER BY id`
    return { outcomes, rows: rows.map((row) => Number(row.n)), attempts }
  })

describeEachDialect(
  "retriedTransaction",
  (database) => database,
  (it) => {
    it.effect(
      "a deadlock between two transactions: the victim runs again, both count once",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const { attempts, outcomes, rows } = yield* deadlock(retriedTransaction(sql))
          assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Right", "Right"])
          assert.deepStrictEqual(rows, [2, 2])
          assert.isAbove(attempts, 2, "the deadlock happened and the victim ran again")
        }),
      { timeout: 30_000 }
    )

    it.effect("a plain transaction fails its victim with the deadlock", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { outcomes, rows } = yield* deadlock(withTransaction(sql))
        assert.deepStrictEqual(outcomes.map((o) => o._tag).sort(), ["Left", "Right"])
        assert.deepStrictEqual(rows, [1, 1])
      }), { timeout: 30_000 })
  },
  ["pg", "mysql"],
  { liveClock: true }
)
