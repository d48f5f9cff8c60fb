import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { UploadPart } from "../../src/schema/Models.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { UploadPartStore } from "../../src/services/UploadPartStore.js"
import { describeEachDialect } from "../support/databases.js"
import { at, makeClaim, t0, unique } from "../support/fixtures.js"

const part = (claimId: string, partNumber: number, etag = unique("etag"), size = 100) =>
  new UploadPart({ id: unique("part"), claimId, partNumber, etag, size, createdAt: t0 })

describeEachDialect(
  "UploadPartStore",
  (database) => SqlStores.layer.pipe(Layer.provideMerge(database)),
  (it) => {
    it.effect("upsert then listByClaim answers the parts by ascending part number", () =>
      Effect.gen(function*() {
        const claims = yield* ClaimStore
        const parts = yield* UploadPartStore
        const claim = makeClaim({ partCount: 3 })
        yield* claims.create(claim)
        const [p3, p1, p2] = [part(claim.id, 3, "e3", 7), part(claim.id, 1, "e1"), part(claim.id, 2, "e2")]
        yield* Effect.forEach([p3!, p1!, p2!], parts.upsert)
        const listed = yield* parts.listByClaim(claim.id)
        assert.deepStrictEqual(listed.map((p) => [p.partNumber, p.etag, p.size]), [[1, "e1", 100], [2, "e2", 100], [
          3,
          "e3",
          7
        ]])
        assert.deepStrictEqual(listed[2], p3)
      }))

    it.effect("re-uploading a part number replaces its row (last writer wins)", () =>
      Effect.gen(function*() {
        const claims = yield* ClaimStore
        const parts = yield* UploadPartStore
        const claim = makeClaim()
        yield* claims.create(claim)
        yield* parts.upsert(part(claim.id, 1, "first", 10))
        yield* parts.upsert(new UploadPart({ ...part(claim.id, 1, "second", 20), createdAt: at(1000) }))
        const listed = yield* parts.listByClaim(claim.id)
        assert.strictEqual(listed.length, 1)
        assert.strictEqual(listed[0]!.etag, "second")
        assert.strictEqual(listed[0]!.size, 20)
      }))

    it.effect("a part of a claim that is gone is ClaimNotFound", () =>
      Effect.gen(function*() {
        const parts = yield* UploadPartStore
        const exit = yield* Effect.exit(parts.upsert(part("no-such-claim", 1)))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
          assert.strictEqual(exit.cause.error._tag, "ClaimNotFound")
        } else assert.fail(`expected ClaimNotFound, got ${String(exit)}`)
      }))

    it.effect("deleteByClaim removes only that claim's parts", () =>
      Effect.gen(function*() {
        const claims = yield* ClaimStore
        const parts = yield* UploadPartStore
        const a = makeClaim()
        const b = makeClaim()
        yield* Effect.forEach([a, b], claims.create)
        yield* Effect.forEach([part(a.id, 1), part(a.id, 2), part(b.id, 1)], parts.upsert)
        yield* parts.deleteByClaim(a.id)
        assert.strictEqual((yield* parts.listByClaim(a.id)).length, 0)
        assert.strictEqual((yield* parts.listByClaim(b.id)).length, 1)
      }))

    it.effect("part rows go with their claim (foreign key cascade)", () =>
      Effect.gen(function*() {
        const claims = yield* ClaimStore
        const parts = yield* UploadPartStore
        const sql = yield* SqlClient.SqlClient
        const claim = makeClaim({ expiresAt: at(-60_000) })
        yield* claims.create(claim)
        yield* Effect.forEach([part(claim.id, 1), part(claim.id, 2)], parts.upsert)
        assert.strictEqual(yield* claims.deleteIfPendingExpired(claim, t0), true)
        const rows = yield* sql`SELECT COUNT(*) AS n FROM sys_storage_upload_part WHERE claim_id = ${claim.id}`
        assert.strictEqual(Number((rows[0] as { n: unknown }).n), 0)
      }))

    it.effect("a part upsert inside a failed transaction is rolled back", () =>
      Effect.gen(function*() {
        const claims = yield* ClaimStore
        const parts = yield* UploadPartStore
        const sql = yield* SqlClient.SqlClient
        const claim = makeClaim()
        yield* claims.create(claim)
        yield* Effect.exit(sql.withTransaction(Effect.zipRight(parts.upsert(part(claim.id, 1)), Effect.fail("boom"))))
        assert.strictEqual((yield* parts.listByClaim(claim.id)).length, 0)
      }))
  }
)
