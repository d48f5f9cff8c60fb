import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestServices from "effect/TestServices"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { PendingDelete } from "../../src/schema/Models.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { DeleteScheduler } from "../../src/services/DeleteScheduler.js"
import { describeEachDialect } from "../support/databases.js"
import { at, t0, unique } from "../support/fixtures.js"

const job = (fields: Partial<ConstructorParameters<typeof PendingDelete>[0]> = {}) =>
  new PendingDelete({
    id: unique("pd"),
    key: `priv/${unique()}.bin`,
    uploadId: "",
    reason: "deleted",
    attempts: 0,
    nextAttemptAt: t0,
    createdAt: t0,
    ...fields
  })

/** Rows of these keys, whatever their state. */
const rowsOf = (keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<{ object_key: string; reason: string; upload_id: string }>`
      SELECT object_key, reason, upload_id FROM sys_storage_pending_delete WHERE ${sql.in("object_key", keys)}`
  })

/** Leases everything due at `now` (test-only helper: the queue is shared by the block's tests). */
const leaseAll = (now: DateTime.Utc, keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const queue = yield* DeleteQueue
    const leased = yield* queue.lease(now, 10_000, "5 minutes")
    return leased.filter((row) => keys.includes(row.key))
  })

describeEachDialect(
  "DeleteQueue",
  (database) => SqlStores.layer.pipe(Layer.provideMerge(database)),
  (it, dialect) => {
    it.effect("schedule de-duplicates, skips empty keys and is idempotent on (key, reason)", () =>
      Effect.gen(function*() {
        const scheduler = yield* DeleteScheduler
        const [a, b] = [unique("a"), unique("b")]
        yield* scheduler.schedule([a, b, a, ""], "replaced")
        yield* scheduler.schedule([a], "replaced")
        yield* scheduler.schedule([a], "deleted")
        yield* scheduler.schedule([], "deleted")
        const rows = yield* rowsOf([a, b])
        assert.strictEqual(rows.length, 3)
        assert.deepStrictEqual(
          rows.map((r) => `${r.object_key}:${r.reason}:${r.upload_id}`).sort(),
          [`${a}:deleted:`, `${a}:replaced:`, `${b}:replaced:`].sort()
        )
      }))

    it.effect("schedule of 2,500 keys writes every row", () =>
      Effect.gen(function*() {
        const scheduler = yield* DeleteScheduler
        const prefix = unique("bulk")
        const keys = Array.from({ length: 2500 }, (_, i) => `${prefix}/${i}`)
        yield* scheduler.schedule(keys, "deleted")
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT COUNT(*) AS n FROM sys_storage_pending_delete WHERE object_key LIKE ${
          prefix + "/%"
        }`
        assert.strictEqual(Number((rows[0] as { n: unknown }).n), 2500)
      }))

    it.effect("enqueue keeps the upload id, attempts and due time", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const item = job({ uploadId: "mp-42", reason: "claim_expired", attempts: 2, nextAttemptAt: at(1234) })
        yield* queue.enqueue([item])
        yield* queue.enqueue([job({ key: item.key, reason: "claim_expired" })])
        const stored = Option.getOrThrow(yield* queue.get(item.id))
        assert.deepStrictEqual(stored, item)
        assert.strictEqual(stored.isMultipart, true)
        assert.strictEqual((yield* rowsOf([item.key])).length, 1)
      }))

    it.effect("a schedule inside a failed business transaction leaves no row", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const scheduler = yield* DeleteScheduler
        const key = unique("rollback")
        yield* Effect.exit(
          sql.withTransaction(Effect.zipRight(scheduler.schedule([key], "deleted"), Effect.fail("no")))
        )
        assert.strictEqual((yield* rowsOf([key])).length, 0)
        yield* sql.withTransaction(scheduler.schedule([key], "deleted"))
        assert.strictEqual((yield* rowsOf([key])).length, 1)
      }))

    it.effect("lease hands out due rows only, hides them for the lease window, then again after it", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const now = at(10 * 24 * 3600_000)
        const due = job({ nextAttemptAt: DateTime.subtract(now, { seconds: 1 }) })
        const later = job({ nextAttemptAt: DateTime.add(now, { minutes: 1 }) })
        yield* queue.enqueue([due, later])
        const keys = [due.key, later.key]

        const first = yield* leaseAll(now, keys)
        assert.deepStrictEqual(first.map((r) => r.id), [due.id])
        assert.isDefined(first[0]!.leaseToken)
        assert.isTrue(DateTime.Equivalence(first[0]!.nextAttemptAt, DateTime.add(now, { minutes: 5 })))
        // hidden while leased; `later` has come due meanwhile
        assert.deepStrictEqual((yield* leaseAll(DateTime.add(now, { minutes: 4 }), keys)).map((r) => r.id), [later.id])
        // visible again once its lease has run out (the holder crashed)
        const again = yield* leaseAll(DateTime.add(now, { minutes: 6 }), keys)
        assert.deepStrictEqual(again.map((r) => r.id), [due.id])
        assert.notStrictEqual(again.find((r) => r.id === due.id)!.leaseToken, first[0]!.leaseToken)
      }))

    it.effect("lease takes at most `limit` rows, oldest due first", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const now = at(20 * 24 * 3600_000)
        // due before every other row of the block, so they are the oldest
        const items = [3, 1, 2].map((n) => job({ nextAttemptAt: at(-n * 1000) }))
        yield* queue.enqueue(items)
        const leased = yield* queue.lease(now, 2, "1 minute")
        assert.deepStrictEqual(leased.map((r) => r.nextAttemptAt).map(DateTime.toEpochMillis).sort(), [
          DateTime.toEpochMillis(DateTime.add(now, { minutes: 1 })),
          DateTime.toEpochMillis(DateTime.add(now, { minutes: 1 }))
        ])
        assert.deepStrictEqual(leased.map((r) => r.id).sort(), [items[0]!.id, items[2]!.id].sort())
      }))

    it.effect("renew extends only the leases still held under the token", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const now = at(30 * 24 * 3600_000)
        const a = job({ nextAttemptAt: now })
        yield* queue.enqueue([a])
        const [leased] = yield* leaseAll(now, [a.key])
        const held = yield* queue.renew(leased!.leaseToken!, [a.id, "unknown"], DateTime.add(now, { minutes: 30 }))
        assert.deepStrictEqual([...held], [a.id])
        assert.deepStrictEqual(yield* leaseAll(DateTime.add(now, { minutes: 20 }), [a.key]), [])
        // someone else's token holds nothing
        assert.strictEqual((yield* queue.renew("other-token", [a.id], DateTime.add(now, { hours: 1 }))).size, 0)
        // after the lease ran out and another worker took it, the old token holds nothing either
        const [retaken] = yield* leaseAll(DateTime.add(now, { minutes: 31 }), [a.key])
        assert.strictEqual(retaken!.id, a.id)
        assert.strictEqual((yield* queue.renew(leased!.leaseToken!, [a.id], DateTime.add(now, { hours: 2 }))).size, 0)
      }))

    it.effect("release gives back only rows still held under the token, due at once", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const now = at(35 * 24 * 3600_000)
        const [a, b] = [job({ nextAttemptAt: now }), job({ nextAttemptAt: now })]
        yield* queue.enqueue([a, b])
        const leased = yield* leaseAll(now, [a.key, b.key])
        const token = leased[0]!.leaseToken!
        yield* queue.release("someone-else", [a.id, b.id], now)
        assert.deepStrictEqual(yield* leaseAll(now, [a.key, b.key]), [])
        yield* queue.release(token, [a.id], now)
        const again = yield* leaseAll(now, [a.key, b.key])
        assert.deepStrictEqual(again.map((r) => r.id), [a.id])
        assert.strictEqual(again[0]!.attempts, 0)
      }))

    it.effect("done removes rows; a missing row is fine", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const a = job()
        yield* queue.enqueue([a])
        yield* queue.done([a.id, "missing"])
        yield* queue.done([a.id])
        assert.isTrue(Option.isNone(yield* queue.get(a.id)))
      }))

    it.effect("defer counts the attempt, records the error, releases the lease and sets the next time", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const now = at(40 * 24 * 3600_000)
        const a = job({ nextAttemptAt: now, attempts: 3 })
        yield* queue.enqueue([a])
        yield* leaseAll(now, [a.key])
        yield* queue.defer(a.id, DateTime.add(now, { minutes: 2 }), "transient")
        const row = Option.getOrThrow(yield* queue.get(a.id))
        assert.strictEqual(row.attempts, 4)
        assert.strictEqual(row.lastError, "transient")
        assert.isUndefined(row.leaseToken)
        assert.isTrue(DateTime.Equivalence(row.nextAttemptAt, DateTime.add(now, { minutes: 2 })))
        yield* queue.defer("missing", now)
      }))

    it.effect("dead letters are kept with their error, never leased, listed, requeued and purged", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const now = at(50 * 24 * 3600_000)
        const a = job({ nextAttemptAt: now, attempts: 11 })
        const b = job({ nextAttemptAt: now, attempts: 11 })
        yield* queue.enqueue([a, b])
        assert.strictEqual(yield* queue.deadLetter(a.id, "access_denied", now), true)
        assert.strictEqual(yield* queue.deadLetter(b.id, "bucket_not_found", now), true)
        assert.strictEqual(yield* queue.deadLetter(a.id, "again", now), false)
        assert.strictEqual(yield* queue.deadLetter("missing", "x", now), false)

        const dead = (yield* queue.listDeadLetters()).filter((r) => r.id === a.id || r.id === b.id)
        assert.strictEqual(dead.length, 2)
        const deadA = dead.find((r) => r.id === a.id)!
        assert.strictEqual(deadA.attempts, 12)
        assert.strictEqual(deadA.lastError, "access_denied")
        assert.isTrue(deadA.isDead)
        assert.deepStrictEqual(yield* leaseAll(DateTime.add(now, { days: 365 }), [a.key, b.key]), [])
        // a new schedule of a dead (key, reason) leaves the dead row as it is
        yield* queue.schedule([a.key], a.reason)
        assert.isTrue(Option.getOrThrow(yield* queue.get(a.id)).isDead)

        assert.strictEqual(yield* queue.requeueDeadLetters(now, [a.id]), 1)
        const requeued = Option.getOrThrow(yield* queue.get(a.id))
        assert.strictEqual(requeued.attempts, 0)
        assert.isFalse(requeued.isDead)
        assert.deepStrictEqual((yield* leaseAll(now, [a.key, b.key])).map((r) => r.id), [a.id])

        assert.strictEqual(yield* queue.purgeDeadLetters([b.id, a.id]), 1)
        assert.isTrue(Option.isNone(yield* queue.get(b.id)))
        assert.isTrue(Option.isSome(yield* queue.get(a.id)))
      }))

    it.effect("stats count live, due and dead rows and the oldest due row", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const queue = yield* DeleteQueue
        yield* sql`DELETE FROM sys_storage_pending_delete`
        const now = at(60 * 24 * 3600_000)
        const oldest = job({ nextAttemptAt: DateTime.subtract(now, { hours: 1 }) })
        yield* queue.enqueue([
          oldest,
          job({ nextAttemptAt: now }),
          job({ nextAttemptAt: DateTime.add(now, { hours: 1 }) }),
          job({ id: "dead-one", nextAttemptAt: now })
        ])
        yield* queue.deadLetter("dead-one", "transient", now)
        const stats = yield* queue.stats(now)
        assert.strictEqual(stats.depth, 3)
        assert.strictEqual(stats.due, 2)
        assert.strictEqual(stats.dead, 1)
        assert.isTrue(DateTime.Equivalence(Option.getOrThrow(stats.oldestDue), oldest.nextAttemptAt))
        yield* sql`DELETE FROM sys_storage_pending_delete`
        const empty = yield* queue.stats(now)
        assert.deepStrictEqual([empty.depth, empty.due, empty.dead], [0, 0, 0])
        assert.isTrue(Option.isNone(empty.oldestDue))
      }))

    if (dialect !== "sqlite") {
      it.effect(
        "8 fibers on separate connections lease 5,000 due rows: each row exactly once",
        () =>
          TestServices.provideLive(Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const queue = yield* DeleteQueue
            yield* sql`DELETE FROM sys_storage_pending_delete`
            const now = yield* DateTime.now
            const prefix = unique("race")
            yield* queue.enqueue(
              Array.from({ length: 5000 }, (_, i) => job({ key: `${prefix}/${i}`, nextAttemptAt: now }))
            )

            const worker = Effect.gen(function*() {
              const seen: Array<string> = []
              let batches = 0
              while (true) {
                const rows = yield* queue.lease(now, 25, "1 hour")
                if (rows.length === 0) return { seen, batches }
                batches++
                for (const row of rows) seen.push(row.id)
              }
            })
            const results = yield* Effect.all(Array.from({ length: 8 }, () => worker), { concurrency: "unbounded" })
            const all = results.flatMap((r) => r.seen)
            assert.strictEqual(all.length, 5000)
            assert.strictEqual(new Set(all).size, 5000)
            // every fiber got work: the leases really ran side by side
            assert.isTrue(results.every((r) => r.batches > 0), JSON.stringify(results.map((r) => r.batches)))
            assert.strictEqual((yield* queue.stats(now)).due, 0)
          })),
        { timeout: 120_000 }
      )
    }
  }
)
