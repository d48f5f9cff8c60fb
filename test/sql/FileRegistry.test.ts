import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { backfillRegistry } from "../../src/layers/sql/Migrations.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { ClaimConsumer } from "../../src/services/ClaimConsumer.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { FileRegistry } from "../../src/services/FileRegistry.js"
import { describeEachDialect } from "../support/databases.js"
import { at, makeClaim, t0, unique } from "../support/fixtures.js"

/** A completed upload, as the upload flow records it: the claim marked uploaded and registered. */
const uploadedClaim = (fields: Parameters<typeof makeClaim>[0] = {}) =>
  Effect.gen(function*() {
    const claims = yield* ClaimStore
    const registry = yield* FileRegistry
    const claim = makeClaim(fields)
    yield* claims.create(claim)
    yield* claims.markUploaded(claim.id)
    yield* registry.recordUploaded(claim, yield* DateTime.now)
    return claim
  })

const recordOf = (key: string) => Effect.flatMap(FileRegistry, (registry) => registry.get(key))

describeEachDialect(
  "FileRegistry",
  (database) => SqlStores.layer.pipe(Layer.provideMerge(database)),
  (it) => {
    it.effect("recordUploaded registers an upload with its claim's metadata; a second call keeps the first", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(DateTime.toEpochMillis(at(5000)))
        const claim = yield* uploadedClaim({
          createdBy: "carol",
          originalFilename: "Résumé.pdf",
          contentType: "application/pdf",
          size: 4242,
          public: true
        })
        const record = Option.getOrThrow(yield* recordOf(claim.key))
        assert.deepInclude(record, {
          id: claim.id,
          key: claim.key,
          createdBy: "carol",
          originalFilename: "Résumé.pdf",
          contentType: "application/pdf",
          size: 4242,
          public: true,
          status: "uploaded"
        })
        assert.isTrue(DateTime.Equivalence(record.startedAt, t0))
        assert.isTrue(DateTime.Equivalence(record.uploadedAt, at(5000)))
        assert.isUndefined(record.adoptedAt)
        yield* (yield* FileRegistry).recordUploaded(claim, at(7000))
        const again = Option.getOrThrow(yield* recordOf(claim.key))
        assert.isTrue(DateTime.Equivalence(again.uploadedAt, at(5000)))
      }))

    it.effect("a completion rolled back leaves no record; a pending claim has none", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const claims = yield* ClaimStore
        const registry = yield* FileRegistry
        const claim = makeClaim()
        yield* claims.create(claim)
        assert.isTrue(Option.isNone(yield* recordOf(claim.key)))
        yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
          yield* claims.markUploaded(claim.id)
          yield* registry.recordUploaded(claim, t0)
          return yield* Effect.fail("no")
        })))
        assert.isTrue(Option.isNone(yield* recordOf(claim.key)))
        assert.strictEqual((yield* claims.get(claim.id)).status, "pending")
      }))

    it.effect("adoption (ClaimConsumer) marks records adopted; a failed adoption leaves them uploaded", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(DateTime.toEpochMillis(at(9000)))
        const consumer = yield* ClaimConsumer
        const a = yield* uploadedClaim()
        const b = yield* uploadedClaim()
        const failed = yield* Effect.exit(consumer.consumeMany({ id: "alice" }, [a.key, "missing"]))
        assert.isTrue(failed._tag === "Failure")
        assert.strictEqual(Option.getOrThrow(yield* recordOf(a.key)).status, "uploaded")
        assert.strictEqual((yield* (yield* ClaimStore).getByKey(a.key)).status, "uploaded")
        yield* consumer.consumeMany({ id: "alice" }, [a.key, b.key])
        for (const key of [a.key, b.key]) {
          const record = Option.getOrThrow(yield* recordOf(key))
          assert.strictEqual(record.status, "adopted")
          assert.isTrue(DateTime.Equivalence(record.adoptedAt!, at(9000)))
        }
      }))

    it.effect("migration 4 renamed the adoption status and column: no 'claimed' left", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM sys_storage_file WHERE status = 'claimed'`
        assert.strictEqual(Number(rows[0]!.n), 0)
        yield* sql`SELECT adopted_at FROM sys_storage_file WHERE 1 = 0`
      }))

    it.effect("markDeleted: first writer wins; unknown keys are ignored", () =>
      Effect.gen(function*() {
        const registry = yield* FileRegistry
        const claim = yield* uploadedClaim()
        yield* registry.markDeleted(
          [{ key: claim.key, reason: "orphaned" }, { key: "unknown", reason: "deleted" }],
          at(1)
        )
        yield* registry.markDeleted([{ key: claim.key, reason: "replaced" }], at(2))
        const record = Option.getOrThrow(yield* recordOf(claim.key))
        assert.strictEqual(record.status, "deleted")
        assert.strictEqual(record.deleteReason, "orphaned")
        assert.isTrue(DateTime.Equivalence(record.deletedAt!, at(1)))
      }))

    it.effect("the migration backfills uploads completed before the registry existed", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const claim = yield* uploadedClaim()
        // as if completed before the registry: no record
        yield* sql`DELETE FROM sys_storage_file WHERE object_key = ${claim.key}`
        yield* sql.unsafe(backfillRegistry)
        yield* sql.unsafe(backfillRegistry)
        const record = Option.getOrThrow(yield* recordOf(claim.key))
        assert.strictEqual(record.status, "uploaded")
        assert.strictEqual(record.createdBy, claim.createdBy)
      }))

    it.effect("lookup, list, totals; liveAfter walks live records in byte order of their keys", () =>
      Effect.gen(function*() {
        const registry = yield* FileRegistry
        const owner = unique("reg")
        const prefix = `walk/${unique()}/`
        const keys = ["b", "B", "a", "Z", "é", "a b", "a/b"].map((k) => prefix + k)
        for (const key of keys) yield* uploadedClaim({ key, createdBy: owner, size: 10 })
        yield* registry.markDeleted([{ key: prefix + "Z", reason: "deleted" }], t0)

        const found = yield* registry.lookup([prefix + "a", prefix + "nope", prefix + "a"])
        assert.deepStrictEqual(found.map((r) => r.key), [prefix + "a"])
        assert.strictEqual((yield* registry.list({ owner, limit: 100 })).length, 7)
        assert.strictEqual((yield* registry.list({ owner, status: "deleted", limit: 100 })).length, 1)

        const walked: Array<string> = []
        let after = prefix
        while (true) {
          const page = (yield* registry.liveAfter(after, 2)).filter((r) => r.key.startsWith(prefix))
          if (page.length === 0) break
          for (const r of page) walked.push(r.key)
          after = page[page.length - 1]!.key
        }
        const byteOrder = keys.filter((k) => !k.endsWith("Z")).sort((x, y) =>
          Buffer.compare(Buffer.from(x), Buffer.from(y))
        )
        assert.deepStrictEqual(walked, byteOrder)

        const totals = yield* registry.totals
        assert.isAtLeast(totals.uploaded.count, 6)
        assert.isAtLeast(totals.deleted.count, 1)
      }))
  }
)
