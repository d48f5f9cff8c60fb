import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { ClaimSweeper } from "../../src/layers/ClaimSweeper.js"
import { DeleteWorker } from "../../src/layers/DeleteWorker.js"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import * as SqlEventOutbox from "../../src/layers/sql/SqlEventOutbox.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig, type StorageOverrides } from "../../src/layers/StorageConfig.js"
import { StorageBackendError } from "../../src/schema/Errors.js"
import { UploadPart } from "../../src/schema/Models.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { FileRegistry } from "../../src/services/FileRegistry.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { UploadPartStore } from "../../src/services/UploadPartStore.js"
import { describeEachDialect } from "../support/databases.js"
import { eventually } from "../support/eventually.js"
import * as Faults from "../support/faults.js"
import { makeClaim, t0, unique } from "../support/fixtures.js"

const sweeperLayer = (database: Layer.Layer<SqlClient.SqlClient>, overrides: StorageOverrides = {}) =>
  Layer.mergeAll(ClaimSweeper.Default, DeleteWorker.Default).pipe(
    Layer.provideMerge(Layer.mergeAll(
      SqlStores.layer,
      SqlEventOutbox.layer,
      Faults.layer.pipe(Layer.provideMerge(MemoryObjectStorage.layer())),
      StorageConfig.layer({ sweepInterval: "5 minutes", sweepBatchSize: 200, ...overrides })
    )),
    Layer.provideMerge(database)
  )

/** Every test starts at t0 on the test clock and with empty tables. */
const fresh = Effect.gen(function*() {
  yield* TestClock.setTime(DateTime.toEpochMillis(t0))
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM sys_storage_upload_claim`
  yield* sql`DELETE FROM sys_storage_pending_delete`
})

const minutesAgo = (n: number) => DateTime.subtract(t0, { minutes: n })

const queueRows = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ object_key: string; upload_id: string; reason: string }>`
    SELECT object_key, upload_id, reason FROM sys_storage_pending_delete ORDER BY object_key`
)

const statusOf = (id: string) =>
  Effect.flatMap(ClaimStore, (claims) =>
    claims.get(id).pipe(
      Effect.map((c) => c.status as string),
      Effect.catchTag("ClaimNotFound", () => Effect.succeed("gone"))
    ))

/** A pending claim with an open multipart session and, optionally, its assembled object. */
const startedUpload = (fields: Parameters<typeof makeClaim>[0], options: { assembled?: number } = {}) =>
  Effect.gen(function*() {
    const objects = yield* ObjectStorage
    const claims = yield* ClaimStore
    const parts = yield* UploadPartStore
    const multipart = Option.getOrThrow(objects.multipart)
    const key = `priv/${unique("sweep")}.bin`
    const session = yield* multipart.initMultipart({ key })
    const claim = makeClaim({ key, uploadId: session.uploadId, size: 3, ...fields })
    yield* claims.create(claim)
    yield* parts.upsert(
      new UploadPart({ id: unique("p"), claimId: claim.id, partNumber: 1, etag: "e", size: 3, createdAt: t0 })
    )
    if (options.assembled !== undefined) {
      yield* objects.putObject({ key, body: new Uint8Array(options.assembled) })
    }
    return claim
  })

describeEachDialect("ClaimSweeper", (database) => sweeperLayer(database), (it) => {
  it.effect("removes an expired claim whose init never opened a session, queueing its key", () =>
    Effect.gen(function*() {
      yield* fresh
      const claims = yield* ClaimStore
      const claim = makeClaim({ expiresAt: minutesAgo(10), partCount: 2, partSize: 1000, size: 1500 })
      yield* claims.create(claim)
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.deepStrictEqual(report, { scanned: 1, recovered: 0, removed: 1, skipped: 0, orphansReclaimed: 0 })
      assert.strictEqual(yield* statusOf(claim.id), "gone")
      assert.deepStrictEqual(yield* queueRows, [{ object_key: claim.key, upload_id: "", reason: "claim_expired" }])
    }))

  it.effect("a single-request upload (one part, no session): recovered when its object was stored, else removed", () =>
    Effect.gen(function*() {
      yield* fresh
      const claims = yield* ClaimStore
      const objects = yield* ObjectStorage
      // stored, but the client never completed (or the server died before recording it)
      const stored = makeClaim({ expiresAt: minutesAgo(10), partCount: 1, size: 5 })
      yield* claims.create(stored)
      yield* objects.putObject({ key: stored.key, body: new Uint8Array(5) })
      // never stored
      const empty = makeClaim({ expiresAt: minutesAgo(10), partCount: 1, size: 5 })
      yield* claims.create(empty)
      assert.isTrue(stored.isSingleRequest && empty.isSingleRequest)
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.deepInclude(report, { scanned: 2, recovered: 1, removed: 1 })
      assert.strictEqual(yield* statusOf(stored.id), "uploaded")
      assert.strictEqual(yield* statusOf(empty.id), "gone")
      assert.deepStrictEqual(yield* queueRows, [{ object_key: empty.key, upload_id: "", reason: "claim_expired" }])
      const record = Option.getOrThrow(yield* (yield* FileRegistry).get(stored.key))
      assert.strictEqual(record.status, "uploaded")
    }))

  it.effect("removes an abandoned multipart upload with its session id, and the worker then aborts it", () =>
    Effect.gen(function*() {
      yield* fresh
      const claim = yield* startedUpload({ expiresAt: minutesAgo(10) })
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.strictEqual(report.removed, 1)
      assert.deepStrictEqual(yield* queueRows, [{
        object_key: claim.key,
        upload_id: claim.uploadId,
        reason: "claim_expired"
      }])
      // part rows went with the claim
      assert.strictEqual((yield* (yield* UploadPartStore).listByClaim(claim.id)).length, 0)
      yield* (yield* DeleteWorker).runOnce
      const faults = yield* Faults.Faults
      assert.deepStrictEqual(faults.aborts.map((a) => a.uploadId), [claim.uploadId])
      assert.strictEqual((yield* queueRows).length, 0)
    }))

  it.effect("recovers a claim whose object was assembled (complete crashed before its bookkeeping) and registers it", () =>
    Effect.gen(function*() {
      yield* fresh
      const claim = yield* startedUpload({ expiresAt: minutesAgo(10) }, { assembled: 3 })
      assert.isTrue(Option.isNone(yield* (yield* FileRegistry).get(claim.key)))
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.strictEqual(report.recovered, 1)
      assert.strictEqual(yield* statusOf(claim.id), "uploaded")
      const record = Option.getOrThrow(yield* (yield* FileRegistry).get(claim.key))
      assert.deepInclude(record, { id: claim.id, status: "uploaded", size: claim.size, createdBy: claim.createdBy })
      assert.strictEqual((yield* (yield* UploadPartStore).listByClaim(claim.id)).length, 0)
      assert.strictEqual((yield* queueRows).length, 0)
      // What the dead completion left of its session is closed: nothing else ever would.
      assert.include((yield* Faults.Faults).aborts.map((a) => a.uploadId), claim.uploadId)
      const sessions = yield* Stream.runCollect(
        Option.getOrThrow((yield* ObjectStorage).multipart).listMultipartUploads(claim.key)
      )
      assert.strictEqual(Chunk.size(sessions), 0)
    }))

  it.effect("removes a claim whose assembled object has the wrong size", () =>
    Effect.gen(function*() {
      yield* fresh
      const claim = yield* startedUpload({ expiresAt: minutesAgo(10) }, { assembled: 7 })
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.strictEqual(report.removed, 1)
      assert.strictEqual(yield* statusOf(claim.id), "gone")
      assert.strictEqual((yield* queueRows)[0]!.object_key, claim.key)
    }))

  it.effect("leaves claims inside the grace window, unexpired claims and uploaded claims alone", () =>
    Effect.gen(function*() {
      yield* fresh
      const claims = yield* ClaimStore
      const inGrace = makeClaim({ expiresAt: minutesAgo(4) })
      const live = makeClaim({ expiresAt: DateTime.add(t0, { hours: 1 }) })
      const done = makeClaim({ status: "uploaded", expiresAt: minutesAgo(60 * 24 * 30) })
      yield* Effect.forEach([inGrace, live, done], claims.create)
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.deepStrictEqual([report.scanned, report.removed, report.orphansReclaimed], [0, 0, 0])
      assert.deepStrictEqual(
        [yield* statusOf(inGrace.id), yield* statusOf(live.id), yield* statusOf(done.id)],
        ["pending", "pending", "uploaded"]
      )
      // once the grace window has passed, the first goes
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual((yield* (yield* ClaimSweeper).runOnce).removed, 1)
      assert.strictEqual(yield* statusOf(inGrace.id), "gone")
    }))

  it.effect("a failed backend probe skips the claim until a later run", () =>
    Effect.gen(function*() {
      yield* fresh
      const faults = yield* Faults.Faults
      const claim = yield* startedUpload({ expiresAt: minutesAgo(10) })
      faults.failingStat.set(claim.key, new StorageBackendError({ operation: "statObject", reason: "transient" }))
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.deepStrictEqual([report.scanned, report.skipped, report.removed], [1, 1, 0])
      assert.strictEqual(yield* statusOf(claim.id), "pending")
      faults.failingStat.delete(claim.key)
      assert.strictEqual((yield* (yield* ClaimSweeper).runOnce).removed, 1)
    }))

  it.effect("a complete that wins the race after the probe keeps its upload; nothing is queued", () =>
    Effect.gen(function*() {
      yield* fresh
      const faults = yield* Faults.Faults
      const claims = yield* ClaimStore
      const claim = yield* startedUpload({ expiresAt: minutesAgo(10) })
      faults.slowStat.set(claim.key, "10 seconds")
      const sweep = yield* Effect.fork((yield* ClaimSweeper).runOnce)
      yield* TestClock.adjust("1 second")
      // the client's complete lands while the sweeper is probing
      yield* claims.markUploaded(claim.id)
      yield* TestClock.adjust("10 seconds")
      const report = yield* Fiber.join(sweep)
      assert.deepStrictEqual([report.scanned, report.removed, report.recovered], [1, 0, 0])
      assert.strictEqual(yield* statusOf(claim.id), "uploaded")
      assert.strictEqual((yield* queueRows).length, 0)
    }))

  it.effect("works through more expired claims than one batch in a single run", () =>
    Effect.gen(function*() {
      yield* fresh
      const claims = yield* ClaimStore
      const batch = Array.from({ length: 450 }, (_, i) =>
        makeClaim({ createdBy: `u${i % 7}`, expiresAt: DateTime.subtract(minutesAgo(10), { seconds: i }) }))
      yield* Effect.forEach(batch, claims.create, { discard: true })
      const report = yield* (yield* ClaimSweeper).runOnce
      assert.deepStrictEqual([report.scanned, report.removed], [450, 450])
      assert.strictEqual((yield* queueRows).length, 450)
    }))
})

describeEachDialect(
  "ClaimSweeper orphan reclaim",
  (database) => sweeperLayer(database, { orphanRetention: "7 days" }),
  (it) => {
    it.effect("reclaims uploads nobody adopted past the retention, and only those", () =>
      Effect.gen(function*() {
        yield* fresh
        const claims = yield* ClaimStore
        const old = makeClaim({ status: "uploaded", expiresAt: DateTime.subtract(t0, { days: 30 }) })
        const recent = makeClaim({ status: "uploaded", expiresAt: DateTime.subtract(t0, { days: 3 }) })
        const pendingOld = makeClaim({ expiresAt: minutesAgo(2) })
        yield* Effect.forEach([old, recent, pendingOld], claims.create)
        const report = yield* (yield* ClaimSweeper).runOnce
        assert.strictEqual(report.orphansReclaimed, 1)
        assert.deepStrictEqual(
          [yield* statusOf(old.id), yield* statusOf(recent.id), yield* statusOf(pendingOld.id)],
          ["gone", "uploaded", "pending"]
        )
        assert.deepStrictEqual(yield* queueRows, [{ object_key: old.key, upload_id: "", reason: "orphaned" }])
      }))
  }
)

describeEachDialect("ClaimSweeper.layerScheduled", (database) => sweeperLayer(database), (it) => {
  it.effect("sweeps at start and every interval", () =>
    Effect.gen(function*() {
      yield* fresh
      const claims = yield* ClaimStore
      const first = makeClaim({ expiresAt: minutesAgo(10) })
      yield* claims.create(first)
      yield* Layer.launch(ClaimSweeper.layerScheduled).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      yield* eventually(Effect.map(statusOf(first.id), (s) => s === "gone"), { what: "the first sweep" })
      const second = makeClaim({ expiresAt: minutesAgo(10) })
      yield* claims.create(second)
      assert.strictEqual(yield* statusOf(second.id), "pending")
      // the next sweep comes one interval later
      yield* TestClock.adjust("4 minutes")
      assert.strictEqual(yield* statusOf(second.id), "pending")
      yield* TestClock.adjust("1 minute")
      yield* eventually(Effect.map(statusOf(second.id), (s) => s === "gone"), { what: "the second sweep" })
    }).pipe(Effect.scoped))
}, ["sqlite"])
