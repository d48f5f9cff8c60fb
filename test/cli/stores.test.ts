/**
 * The two store lookups the reconciler added, on every dialect:
 * `ClaimStore.findByKeys` and `DeleteQueue.findByKeys`.
 */
import { assert } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { PendingDelete } from "../../src/schema/Models.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { describeEachDialect } from "../support/databases.js"
import { makeClaim, t0, unique } from "../support/fixtures.js"

describeEachDialect(
  "store lookups by keys",
  (database) => SqlStores.layer.pipe(Layer.provideMerge(database)),
  (it) => {
    it.effect("ClaimStore.findByKeys: the claims of the keys that have one, any status, in batches", () =>
      Effect.gen(function*() {
        const claims = yield* ClaimStore
        const prefix = unique("fk")
        const made = Array.from(
          { length: 620 },
          (_, i) =>
            makeClaim({ key: `${prefix}/${i}`, status: i % 2 === 0 ? "pending" : "uploaded", uploadId: `u-${i}` })
        )
        for (const claim of made) yield* claims.create(claim)
        const asked = [...made.map((c) => c.key), `${prefix}/none`, made[0]!.key, `${prefix}/ZZ`]
        const found = yield* claims.findByKeys(asked)
        assert.strictEqual(found.length, 620)
        assert.deepStrictEqual(new Set(found.map((c) => c.key)), new Set(made.map((c) => c.key)))
        const first = found.find((c) => c.key === made[1]!.key)!
        assert.deepInclude(first, { id: made[1]!.id, status: "uploaded", uploadId: "u-1" })
        assert.deepStrictEqual(yield* claims.findByKeys([]), [])
        // Exact match only: case and trailing spaces matter.
        assert.deepStrictEqual(yield* claims.findByKeys([made[0]!.key.toUpperCase(), `${made[0]!.key} `]), [])
      }))

    it.effect("DeleteQueue.findByKeys: live and dead rows of the keys, one per reason", () =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const prefix = unique("fq")
        const row = (key: string, reason: PendingDelete["reason"], uploadId = "") =>
          new PendingDelete({
            id: unique("id"),
            key,
            uploadId,
            reason,
            attempts: 0,
            nextAttemptAt: t0,
            createdAt: t0
          })
        const many = Array.from({ length: 510 }, (_, i) => row(`${prefix}/${i}`, "deleted"))
        const twice = [row(`${prefix}/x`, "replaced"), row(`${prefix}/x`, "aborted", "upload-1")]
        const dead = row(`${prefix}/dead`, "orphaned")
        yield* queue.enqueue([...many, ...twice, dead])
        yield* queue.deadLetter(dead.id, "access_denied", DateTime.add(t0, { minutes: 1 }))

        const found = yield* queue.findByKeys([...many.map((r) => r.key), `${prefix}/x`, `${prefix}/dead`, "nope"])
        assert.strictEqual(found.length, 513)
        const x = found.filter((r) => r.key === `${prefix}/x`)
        assert.deepStrictEqual(
          new Set(x.map((r) => `${r.reason}:${r.uploadId}`)),
          new Set(["replaced:", "aborted:upload-1"])
        )
        const deadFound = found.find((r) => r.key === `${prefix}/dead`)!
        assert.strictEqual(deadFound.reason, "orphaned")
        assert.isDefined(deadFound.deadAt)
        assert.deepStrictEqual(yield* queue.findByKeys([]), [])
      }))
  }
)
