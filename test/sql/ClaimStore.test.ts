import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as TestServices from "effect/TestServices"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { UploadClaim } from "../../src/schema/Models.js"
import { ClaimConsumer } from "../../src/services/ClaimConsumer.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { describeEachDialect } from "../support/databases.js"
import { at, makeClaim, t0, unique } from "../support/fixtures.js"

const failureTag = <A, E>(exit: Exit.Exit<A, E>): string | undefined =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? (exit.cause.error as { _tag: string })._tag : undefined

const uploaded = (fields: Parameters<typeof makeClaim>[0] = {}) => makeClaim({ status: "uploaded", ...fields })

describeEachDialect(
  "ClaimStore",
  (database) => SqlStores.layer.pipe(Layer.provideMerge(database)),
  (it, dialect) => {
    it.effect("create then get and getByKey round-trip every field, timestamps in UTC", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const claim = makeClaim({
          uploadId: "upload-1",
          public: true,
          size: 5_000_000_000,
          partSize: 16 * 1024 * 1024,
          partCount: 299,
          createdAt: DateTime.unsafeMake("2026-11-28T23:59:59.123Z") as DateTime.Utc,
          expiresAt: DateTime.unsafeMake("2026-11-29T23:59:59.456Z") as DateTime.Utc
        })
        yield* store.create(claim)
        const byId = yield* store.get(claim.id)
        const byKey = yield* store.getByKey(claim.key)
        assert.deepStrictEqual(byId, claim)
        assert.deepStrictEqual(byKey, claim)
        assert.strictEqual(byId.isMultipart, true)
        assert.strictEqual(byId.isUploaded, false)
      }))

    it.effect("timestamps are stored as UTC in the column itself", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const sql = yield* SqlClient.SqlClient
        const claim = makeClaim({ expiresAt: DateTime.unsafeMake("2026-11-29T01:02:03.004Z") as DateTime.Utc })
        yield* store.create(claim)
        const raw = yield* sql.onDialectOrElse({
          pg: () =>
            sql`SELECT to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS v
            FROM sys_storage_upload_claim WHERE id = ${claim.id}`,
          mysql: () =>
            sql`SELECT DATE_FORMAT(expires_at, '%Y-%m-%d %H:%i:%s.%f') AS v
            FROM sys_storage_upload_claim WHERE id = ${claim.id}`,
          orElse: () => sql`SELECT expires_at AS v FROM sys_storage_upload_claim WHERE id = ${claim.id}`
        })
        const value = String((raw[0] as { v: unknown }).v)
        const expected = {
          pg: "2026-11-29 01:02:03.004",
          mysql: "2026-11-29 01:02:03.004000",
          sqlite: "2026-11-29T01:02:03.004Z"
        }[dialect]
        assert.strictEqual(value, expected)
      }))

    it.effect("a taken id or key is ClaimAlreadyExists", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const claim = makeClaim()
        yield* store.create(claim)
        const sameId = yield* Effect.exit(store.create(makeClaim({ id: claim.id })))
        const sameKey = yield* Effect.exit(store.create(makeClaim({ key: claim.key })))
        assert.strictEqual(failureTag(sameId), "ClaimAlreadyExists")
        assert.strictEqual(failureTag(sameKey), "ClaimAlreadyExists")
      }))

    it.effect("keys differing only in case or trailing space are different keys", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const base = `priv/${unique()}/Photo.png`
        yield* store.create(makeClaim({ key: base }))
        yield* store.create(makeClaim({ key: base.toLowerCase() }))
        yield* store.create(makeClaim({ key: `${base} ` }))
        assert.strictEqual((yield* store.getByKey(base)).key, base)
        assert.strictEqual((yield* store.getByKey(base.toLowerCase())).key, base.toLowerCase())
        assert.strictEqual((yield* store.getByKey(`${base} `)).key, `${base} `)
      }))

    it.effect("get and getByKey of an unknown claim are ClaimNotFound", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        assert.strictEqual(failureTag(yield* Effect.exit(store.get("nope"))), "ClaimNotFound")
        assert.strictEqual(failureTag(yield* Effect.exit(store.getByKey("nope"))), "ClaimNotFound")
      }))

    it.effect("updateUploadId moves only pending claims", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const pending = makeClaim()
        const done = uploaded()
        yield* store.create(pending)
        yield* store.create(done)
        yield* store.updateUploadId(pending.id, "mp-1")
        assert.strictEqual((yield* store.get(pending.id)).uploadId, "mp-1")
        assert.strictEqual(failureTag(yield* Effect.exit(store.updateUploadId(done.id, "mp-2"))), "ClaimNotFound")
        assert.strictEqual(failureTag(yield* Effect.exit(store.updateUploadId("missing", "mp-3"))), "ClaimNotFound")
      }))

    it.effect("markUploaded is pending -> uploaded once; again or unknown is ClaimNotFound", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const claim = makeClaim()
        yield* store.create(claim)
        yield* store.markUploaded(claim.id)
        assert.strictEqual((yield* store.get(claim.id)).status, "uploaded")
        assert.strictEqual(failureTag(yield* Effect.exit(store.markUploaded(claim.id))), "ClaimNotFound")
        assert.strictEqual(failureTag(yield* Effect.exit(store.markUploaded("missing"))), "ClaimNotFound")
      }))

    it.effect("countPendingByOwner counts the owner's pending claims, expired ones too", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const owner = unique("owner")
        yield* store.create(makeClaim({ createdBy: owner }))
        yield* store.create(makeClaim({ createdBy: owner, expiresAt: at(-1000) }))
        yield* store.create(uploaded({ createdBy: owner }))
        yield* store.create(makeClaim({ createdBy: unique("other") }))
        assert.strictEqual(yield* store.countPendingByOwner(owner), 2)
        assert.strictEqual(yield* store.countPendingByOwner(unique("nobody")), 0)
      }))

    it.effect("createWithinCap refuses the claim past the cap", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const owner = unique("owner")
        yield* store.createWithinCap(makeClaim({ createdBy: owner }), 2)
        yield* store.createWithinCap(makeClaim({ createdBy: owner }), 2)
        const third = makeClaim({ createdBy: owner })
        assert.strictEqual(failureTag(yield* Effect.exit(store.createWithinCap(third, 2))), "TooManyPendingUploads")
        assert.strictEqual(failureTag(yield* Effect.exit(store.get(third.id))), "ClaimNotFound")
        // uploaded claims do not count against the cap
        yield* store.create(uploaded({ createdBy: owner }))
        assert.strictEqual(yield* store.countPendingByOwner(owner), 2)
      }))

    it.effect("createWithinCap holds exactly under a concurrent burst", () =>
      TestServices.provideLive(Effect.gen(function*() {
        const store = yield* ClaimStore
        const owner = unique("burst")
        const results = yield* Effect.forEach(
          Array.from({ length: 24 }, () => makeClaim({ createdBy: owner })),
          (claim) => Effect.either(store.createWithinCap(claim, 5)),
          { concurrency: "unbounded" }
        )
        const created = results.filter((r) => r._tag === "Right").length
        const refused = results.filter((r) => r._tag === "Left" && r.left._tag === "TooManyPendingUploads").length
        assert.strictEqual(created, 5)
        assert.strictEqual(refused, 19)
        assert.strictEqual(yield* store.countPendingByOwner(owner), 5)
      })))

    it.effect("consume adopts one uploaded claim; pending or unknown is ClaimNotFound", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const done = uploaded()
        const pending = makeClaim()
        yield* store.create(done)
        yield* store.create(pending)
        yield* store.consume(done.key)
        assert.strictEqual(failureTag(yield* Effect.exit(store.get(done.id))), "ClaimNotFound")
        assert.strictEqual(failureTag(yield* Effect.exit(store.consume(pending.key))), "ClaimNotFound")
        assert.strictEqual(failureTag(yield* Effect.exit(store.consume("missing"))), "ClaimNotFound")
        assert.strictEqual((yield* store.get(pending.id)).status, "pending")
      }))

    it.effect("consumeMany adopts the owner's uploaded claims, de-duplicating keys", () =>
      Effect.gen(function*() {
        const consumer = yield* ClaimConsumer
        const store = yield* ClaimStore
        const a = uploaded()
        const b = uploaded()
        yield* store.create(a)
        yield* store.create(b)
        yield* consumer.consumeMany({ id: "alice" }, [a.key, b.key, a.key])
        assert.strictEqual(failureTag(yield* Effect.exit(store.get(a.id))), "ClaimNotFound")
        assert.strictEqual(failureTag(yield* Effect.exit(store.get(b.id))), "ClaimNotFound")
      }))

    it.effect("consumeMany is all or nothing: missing, pending or foreign keys adopt nothing", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const mine = uploaded()
        const pending = makeClaim()
        const foreign = uploaded({ createdBy: "bob" })
        yield* Effect.forEach([mine, pending, foreign], store.create)
        for (const other of ["missing-key", pending.key, foreign.key]) {
          const exit = yield* Effect.exit(store.consumeMany({ id: "alice" }, [mine.key, other]))
          assert.strictEqual(failureTag(exit), "ClaimNotFound")
          assert.strictEqual((yield* store.get(mine.id)).status, "uploaded")
        }
        assert.strictEqual((yield* store.get(foreign.id)).status, "uploaded")
      }))

    it.effect("consumeMany: anonymous is AccessDenied, an empty list is a no-op", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const claim = uploaded({ createdBy: "anonymous" })
        yield* store.create(claim)
        for (const id of ["", "anonymous"]) {
          assert.strictEqual(failureTag(yield* Effect.exit(store.consumeMany({ id }, [claim.key]))), "AccessDenied")
        }
        yield* store.consumeMany({ id: "" }, [])
        yield* store.consumeMany({ id: "alice" }, [])
        assert.strictEqual((yield* store.get(claim.id)).status, "uploaded")
      }))

    it.effect("consumeMany ignores expiry: an uploaded claim stays adoptable", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const claim = uploaded({ expiresAt: at(-365 * 24 * 3600_000) })
        yield* store.create(claim)
        yield* store.consumeMany({ id: "alice" }, [claim.key])
        assert.strictEqual(failureTag(yield* Effect.exit(store.get(claim.id))), "ClaimNotFound")
      }))

    it.effect("a business transaction that adopts and then fails leaves the upload adoptable", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const consumer = yield* ClaimConsumer
        const store = yield* ClaimStore
        const claim = uploaded()
        yield* store.create(claim)

        const business = Effect.gen(function*() {
          yield* consumer.consumeMany({ id: "alice" }, [claim.key])
          // the claim is gone inside the transaction...
          assert.strictEqual(failureTag(yield* Effect.exit(store.get(claim.id))), "ClaimNotFound")
          return yield* Effect.fail("business rule broken" as const)
        })
        const exit = yield* Effect.exit(sql.withTransaction(business))
        assert.isTrue(Exit.isFailure(exit))
        // ...and back after the rollback, still adoptable
        assert.strictEqual((yield* store.get(claim.id)).status, "uploaded")
        yield* sql.withTransaction(consumer.consumeMany({ id: "alice" }, [claim.key]))
        assert.strictEqual(failureTag(yield* Effect.exit(store.get(claim.id))), "ClaimNotFound")
      }))

    it.effect("scanExpired returns expired pending claims only, oldest first, up to the limit", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const owner = unique("scan")
        const old = makeClaim({ createdBy: owner, expiresAt: at(-3000) })
        const older = makeClaim({ createdBy: owner, expiresAt: at(-5000) })
        const fresh = makeClaim({ createdBy: owner, expiresAt: at(5000) })
        const done = uploaded({ createdBy: owner, expiresAt: at(-9000) })
        yield* Effect.forEach([old, older, fresh, done], store.create)
        const found = (yield* store.scanExpired(t0, 100)).filter((c) => c.createdBy === owner)
        assert.deepStrictEqual(found.map((c) => c.id), [older.id, old.id])
        assert.strictEqual((yield* store.scanExpired(at(-4000), 100)).some((c) => c.id === old.id), false)
        assert.strictEqual((yield* store.scanExpired(t0, 1)).length, 1)
      }))

    it.effect("scanUnadopted returns uploaded claims expired before the cutoff", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const owner = unique("orphan")
        const orphan = uploaded({ createdBy: owner, expiresAt: at(-10_000) })
        const recent = uploaded({ createdBy: owner, expiresAt: at(10_000) })
        const pending = makeClaim({ createdBy: owner, expiresAt: at(-10_000) })
        yield* Effect.forEach([orphan, recent, pending], store.create)
        const found = (yield* store.scanUnadopted(t0, 100)).filter((c) => c.createdBy === owner)
        assert.deepStrictEqual(found.map((c) => c.id), [orphan.id])
      }))

    it.effect("deleteById and deleteByIds remove claims whatever their state", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const a = makeClaim()
        const b = uploaded()
        const c = makeClaim()
        yield* Effect.forEach([a, b, c], store.create)
        yield* store.deleteById(a.id)
        yield* store.deleteByIds([b.id, c.id, "missing"])
        for (const claim of [a, b, c]) {
          assert.strictEqual(failureTag(yield* Effect.exit(store.get(claim.id))), "ClaimNotFound")
        }
      }))

    it.effect("deleteIfPending deletes a pending claim and never an uploaded one", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const pending = makeClaim()
        const done = uploaded()
        yield* Effect.forEach([pending, done], store.create)
        assert.strictEqual(yield* store.deleteIfPending(pending.id), true)
        assert.strictEqual(yield* store.deleteIfPending(pending.id), false)
        assert.strictEqual(yield* store.deleteIfPending(done.id), false)
        assert.strictEqual((yield* store.get(done.id)).status, "uploaded")
      }))

    it.effect("the sweeper's compare-and-set helpers act only on the unchanged, expired, pending snapshot", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const expired = makeClaim({ uploadId: "mp-a", expiresAt: at(-60_000) })
        yield* store.create(expired)
        const cutoff = at(-30_000)

        // not expired before the cutoff: nothing
        assert.strictEqual(yield* store.deleteIfPendingExpired(expired, at(-90_000)), false)
        // a snapshot with another upload id (the claim moved on): nothing
        const stale = new UploadClaim({ ...expired, uploadId: "mp-other" })
        assert.strictEqual(yield* store.deleteIfPendingExpired(stale, cutoff), false)
        assert.strictEqual(yield* store.markUploadedIfPendingExpired(stale, cutoff), false)
        // the real snapshot: recovery wins once
        assert.strictEqual(yield* store.markUploadedIfPendingExpired(expired, cutoff), true)
        assert.strictEqual(yield* store.markUploadedIfPendingExpired(expired, cutoff), false)
        // now uploaded: the delete must not touch it
        assert.strictEqual(yield* store.deleteIfPendingExpired(expired, cutoff), false)
        assert.strictEqual((yield* store.get(expired.id)).status, "uploaded")

        const doomed = makeClaim({ uploadId: "mp-b", expiresAt: at(-60_000) })
        yield* store.create(doomed)
        assert.strictEqual(yield* store.deleteIfPendingExpired(doomed, cutoff), true)
        assert.strictEqual(failureTag(yield* Effect.exit(store.get(doomed.id))), "ClaimNotFound")
      }))

    it.effect("deleteIfUploadedBefore deletes an unadopted upload, never a pending or fresh one", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const orphan = uploaded({ expiresAt: at(-60_000) })
        const fresh = uploaded({ expiresAt: at(60_000) })
        const pending = makeClaim({ expiresAt: at(-60_000) })
        yield* Effect.forEach([orphan, fresh, pending], store.create)
        assert.strictEqual(yield* store.deleteIfUploadedBefore(fresh, t0), false)
        assert.strictEqual(yield* store.deleteIfUploadedBefore(pending, t0), false)
        assert.strictEqual(yield* store.deleteIfUploadedBefore(orphan, t0), true)
        assert.strictEqual(yield* store.deleteIfUploadedBefore(orphan, t0), false)
        assert.strictEqual((yield* store.get(pending.id)).status, "pending")
      }))

    it.effect("totals and list report claims by state and owner", () =>
      Effect.gen(function*() {
        const store = yield* ClaimStore
        const owner = unique("totals")
        const before = yield* store.totals
        yield* store.create(makeClaim({ createdBy: owner, size: 10 }))
        yield* store.create(makeClaim({ createdBy: owner, size: 20 }))
        yield* store.create(uploaded({ createdBy: owner, size: 300 }))
        const after = yield* store.totals
        assert.strictEqual(after.pendingCount - before.pendingCount, 2)
        assert.strictEqual(after.pendingBytes - before.pendingBytes, 30)
        assert.strictEqual(after.uploadedCount - before.uploadedCount, 1)
        assert.strictEqual(after.uploadedBytes - before.uploadedBytes, 300)
        assert.strictEqual((yield* store.list({ owner, limit: 10 })).length, 3)
        assert.strictEqual((yield* store.list({ owner, status: "uploaded", limit: 10 })).length, 1)
        assert.strictEqual((yield* store.list({ owner, limit: 2 })).length, 2)
      }))
  }
)
