import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import { backoff, classify, DeleteWorker } from "../../src/layers/DeleteWorker.js"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import * as SqlEventOutbox from "../../src/layers/sql/SqlEventOutbox.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig, type StorageOverrides } from "../../src/layers/StorageConfig.js"
import * as StorageMetrics from "../../src/layers/StorageMetrics.js"
import { InvalidObjectKey, StorageBackendError, UploadSessionNotFound } from "../../src/schema/Errors.js"
import { PendingDelete } from "../../src/schema/Models.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { FileRegistry } from "../../src/services/FileRegistry.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { describeEachDialect } from "../support/databases.js"
import { eventually } from "../support/eventually.js"
import * as Faults from "../support/faults.js"
import { completeClaim, makeClaim, unique } from "../support/fixtures.js"

const settings: StorageOverrides = { deleteBatchSize: 100, deleteMaxAttempts: 4, leaseWindow: "5 minutes" }

const workerLayer = (database: Layer.Layer<SqlClient.SqlClient>, overrides: StorageOverrides = settings) =>
  DeleteWorker.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(
      SqlStores.layer,
      SqlEventOutbox.layer,
      Faults.layer.pipe(Layer.provideMerge(MemoryObjectStorage.layer())),
      StorageConfig.layer(overrides)
    )),
    Layer.provideMerge(database)
  )

/** Stores objects and queues their deletion, due now. */
const queued = (count: number, fields: Partial<ConstructorParameters<typeof PendingDelete>[0]> = {}) =>
  Effect.gen(function*() {
    const objects = yield* ObjectStorage
    const queue = yield* DeleteQueue
    const now = yield* DateTime.now
    const prefix = unique("w")
    const jobs = Array.from({ length: count }, (_, i) =>
      new PendingDelete({
        id: `${prefix}-${i}`,
        key: `priv/${prefix}/${i}.bin`,
        uploadId: "",
        reason: "deleted",
        attempts: 0,
        nextAttemptAt: now,
        createdAt: now,
        ...fields
      }))
    yield* Effect.forEach(jobs, (job) => objects.putObject({ key: job.key, body: new Uint8Array([1, 2, 3]) }), {
      discard: true
    })
    yield* queue.enqueue(jobs)
    return jobs
  })

const exists = (key: string) =>
  Effect.flatMap(ObjectStorage, (objects) =>
    objects.statObject(key).pipe(
      Effect.as(true),
      Effect.catchTag("ObjectNotFound", () => Effect.succeed(false))
    ))

const outboxTopics = Effect.map(SqlEventOutbox.take(100_000), (entries) => entries.map((e) => e.event))

const clearQueue = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.zipRight(sql`DELETE FROM sys_storage_pending_delete`, sql`DELETE FROM sys_storage_event_outbox`)
)

describeEachDialect("DeleteWorker", (database) => workerLayer(database), (it) => {
  it.effect("a run deletes the objects of due rows, removes the rows and publishes FileDeleted", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const jobs = yield* queued(3)
      const report = yield* worker.runOnce
      assert.deepStrictEqual(report, { batches: 1, leased: 3, deleted: 3, deferred: 0, deadLettered: 0 })
      for (const job of jobs) assert.isFalse(yield* exists(job.key))
      const queue = yield* DeleteQueue
      for (const job of jobs) assert.isTrue(Option.isNone(yield* queue.get(job.id)))
      const events = yield* outboxTopics
      assert.deepStrictEqual(
        events.map((e) => e._tag === "storage.file.deleted" ? `${e.key}:${e.reason}` : e._tag).sort(),
        jobs.map((j) => `${j.key}:deleted`).sort()
      )
    }))

  it.effect("the registry records the deletion and its reason in the same transaction", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const claims = yield* ClaimStore
      const claim = makeClaim({ status: "pending" })
      yield* claims.create(claim)
      yield* completeClaim(claim)
      yield* (yield* DeleteQueue).schedule([claim.key], "replaced")
      yield* worker.runOnce
      const record = Option.getOrThrow(yield* (yield* FileRegistry).get(claim.key))
      assert.strictEqual(record.status, "deleted")
      assert.strictEqual(record.deleteReason, "replaced")
    }))

  it.effect("a missing object counts as deleted", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const queue = yield* DeleteQueue
      yield* queue.schedule([`priv/${unique("gone")}.bin`], "replaced")
      const report = yield* worker.runOnce
      assert.strictEqual(report.deleted, 1)
      assert.strictEqual((yield* queue.stats(yield* DateTime.now)).depth, 0)
    }))

  it.effect("a row with a multipart session aborts it before deleting", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const objects = yield* ObjectStorage
      const faults = yield* Faults.Faults
      const multipart = Option.getOrThrow(objects.multipart)
      const key = `priv/${unique("mp")}.bin`
      const session = yield* multipart.initMultipart({ key })
      yield* multipart.putPart({ key, uploadId: session.uploadId, partNumber: 1, body: new Uint8Array(10) })
      const queue = yield* DeleteQueue
      const now = yield* DateTime.now
      yield* queue.enqueue([
        new PendingDelete({
          id: unique("pd"),
          key,
          uploadId: session.uploadId,
          reason: "aborted",
          attempts: 0,
          nextAttemptAt: now,
          createdAt: now
        })
      ])
      yield* worker.runOnce
      assert.deepStrictEqual(faults.aborts.filter((a) => a.key === key), [{ key, uploadId: session.uploadId }])
      const sessions = yield* Stream.runCollect(multipart.listMultipartUploads(key)).pipe(Effect.orDie)
      assert.notInclude(Array.from(sessions, (x) => x.uploadId), session.uploadId)
    }))

  it.effect("rows not yet due are left alone", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const later = DateTime.add(yield* DateTime.now, { minutes: 10 })
      const [job] = yield* queued(1, { nextAttemptAt: later })
      const report = yield* worker.runOnce
      assert.strictEqual(report.leased, 0)
      assert.isTrue(yield* exists(job!.key))
    }))

  it.effect("a run keeps leasing until no row is due (250 rows, batches of 100)", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const jobs = yield* queued(250)
      const report = yield* worker.runOnce
      assert.strictEqual(report.batches, 3)
      assert.strictEqual(report.deleted, 250)
      for (const job of jobs) assert.isFalse(yield* exists(job.key))
    }))

  it.effect("a failed delete is deferred with backoff, then dead-lettered after the last attempt, and kept", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const queue = yield* DeleteQueue
      const faults = yield* Faults.Faults
      const [job] = yield* queued(1)
      faults.failing.set(job!.key, new StorageBackendError({ operation: "deleteObject", reason: "transient" }))

      const delays: Array<number> = []
      for (let attempt = 1; attempt <= 3; attempt++) {
        const before = yield* DateTime.now
        const report = yield* worker.runOnce
        assert.deepStrictEqual([report.deferred, report.deadLettered], [1, 0])
        const row = Option.getOrThrow(yield* queue.get(job!.id))
        assert.strictEqual(row.attempts, attempt)
        assert.strictEqual(row.lastError, "transient")
        const delay = DateTime.distance(before, row.nextAttemptAt)
        delays.push(delay)
        // not due before its backoff has passed
        assert.strictEqual((yield* worker.runOnce).leased, 0)
        yield* TestClock.adjust(Duration.millis(delay))
      }
      // base 30 s doubling, ±20% jitter
      assert.isTrue(delays[0]! >= 24_000 && delays[0]! <= 36_000, String(delays))
      assert.isTrue(delays[1]! >= 48_000 && delays[1]! <= 72_000, String(delays))
      assert.isTrue(delays[2]! >= 96_000 && delays[2]! <= 144_000, String(delays))

      const last = yield* worker.runOnce
      assert.deepStrictEqual([last.deferred, last.deadLettered], [0, 1])
      const dead = Option.getOrThrow(yield* queue.get(job!.id))
      assert.isTrue(dead.isDead)
      assert.strictEqual(dead.attempts, 4)
      assert.isTrue(yield* exists(job!.key))
      const events = yield* outboxTopics
      assert.deepStrictEqual(events.filter((e) => e._tag === "storage.delete.dead_letter"), [
        events.find((e) => e._tag === "storage.delete.dead_letter")!
      ])
      const deadEvent = events.find((e) => e._tag === "storage.delete.dead_letter")
      assert.deepInclude(deadEvent, { pendingDeleteId: job!.id, key: job!.key, attempts: 4, lastError: "transient" })

      // an operator requeues it once the backend is fixed
      faults.failing.delete(job!.key)
      assert.strictEqual(yield* queue.requeueDeadLetters(yield* DateTime.now, [job!.id]), 1)
      assert.strictEqual((yield* worker.runOnce).deleted, 1)
      assert.isFalse(yield* exists(job!.key))
    }))

  it.effect("a key that can never be deleted (invalid) is dead-lettered at once", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const queue = yield* DeleteQueue
      const faults = yield* Faults.Faults
      const [job] = yield* queued(1)
      faults.failing.set(job!.key, new InvalidObjectKey({ key: job!.key }))
      const report = yield* worker.runOnce
      assert.strictEqual(report.deadLettered, 1)
      const row = Option.getOrThrow(yield* queue.get(job!.id))
      assert.strictEqual(row.lastError, "invalid")
      assert.strictEqual(row.attempts, 1)
    }))

  it.effect("a failure of one row does not hold back the others", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const faults = yield* Faults.Faults
      const jobs = yield* queued(5)
      faults.failing.set(jobs[2]!.key, new StorageBackendError({ operation: "deleteObject", reason: "access_denied" }))
      const report = yield* worker.runOnce
      assert.deepStrictEqual([report.deleted, report.deferred], [4, 1])
      const row = Option.getOrThrow(yield* (yield* DeleteQueue).get(jobs[2]!.id))
      assert.strictEqual(row.lastError, "access_denied")
    }))

  it.effect("an interrupted run gives its leased rows back; nothing is lost", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const worker = yield* DeleteWorker
      const queue = yield* DeleteQueue
      const faults = yield* Faults.Faults
      const jobs = yield* queued(4)
      for (const job of jobs) faults.slow.set(job.key, "1 hour")
      const fiber = yield* Effect.fork(worker.runOnce)
      // wait until the batch is leased and its deletes are under way
      yield* eventually(Effect.map(queue.stats(yield* DateTime.now), (s) => s.due === 0), { what: "the lease" })
      yield* Fiber.interrupt(fiber)
      // given back: due again at once, not after the lease window, no attempt counted
      const stats = yield* queue.stats(yield* DateTime.now)
      assert.strictEqual(stats.due, 4)
      for (const job of jobs) faults.slow.delete(job.key)
      const report = yield* worker.runOnce
      assert.strictEqual(report.deleted, 4)
      for (const job of jobs) assert.isFalse(yield* exists(job.key))
    }))
})

describeEachDialect(
  "DeleteWorker with a lease shorter than a delete",
  (database) => workerLayer(database, { leaseWindow: "1500 millis", deleteMaxAttempts: 4 }),
  (it) => {
    it.effect(
      "a second worker does not take rows a slow first worker still holds (the lease is renewed)",
      () =>
        TestServices.provideLive(Effect.gen(function*() {
          yield* clearQueue
          const worker = yield* DeleteWorker
          const faults = yield* Faults.Faults
          const jobs = yield* queued(3)
          for (const job of jobs) faults.slow.set(job.key, "4 seconds")
          const first = yield* Effect.fork(worker.runOnce)
          yield* Effect.sleep("300 millis")
          // well past the 1.5 s window while the first is still deleting
          const seen: Array<number> = []
          for (let i = 0; i < 8; i++) {
            yield* Effect.sleep("400 millis")
            seen.push((yield* worker.runOnce).leased)
          }
          const report = yield* Fiber.join(first)
          assert.deepStrictEqual(seen, [0, 0, 0, 0, 0, 0, 0, 0])
          assert.strictEqual(report.deleted, 3)
          for (const job of jobs) {
            assert.strictEqual(faults.deletes.filter((d) => d.key === job.key).length, 1)
          }
        })),
      { timeout: 30_000 }
    )
  },
  ["sqlite", "pg"]
)

// Not on SQLite: its client caches a failed statement preparation (the
// renamed table) for ten minutes, which is this test's artifact, not an outage.
describeEachDialect("DeleteWorker.layerScheduled", (database) => workerLayer(database), (it) => {
  it.effect("runs at start and every interval, and survives a failing run", () =>
    Effect.gen(function*() {
      yield* clearQueue
      const sql = yield* SqlClient.SqlClient
      const runs = Effect.map(Metric.value(StorageMetrics.deleteTickDuration), (state) => state.count)
      const before = yield* runs
      yield* Layer.launch(DeleteWorker.layerScheduled).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      // The first run (at start) does real I/O: let it finish before the clock moves on.
      yield* eventually(Effect.map(runs, (n) => n > before), { what: "the first run" })
      const first = yield* queued(2)
      // the next run comes after the 5-minute interval
      assert.isTrue(yield* exists(first[0]!.key))
      yield* TestClock.adjust("5 minutes")
      // The run does real I/O: wait for it on the real clock.
      yield* eventually(
        Effect.map(Effect.forEach(first, (job) => exists(job.key)), (left) => left.every((e) => !e)),
        { what: "the second run to delete the first jobs" }
      )

      // the database loses the queue table: runs fail, the fiber lives on
      yield* sql`ALTER TABLE sys_storage_pending_delete RENAME TO sys_storage_pending_delete_away`
      yield* TestClock.adjust("5 minutes")
      yield* TestClock.adjust("10 seconds")
      yield* sql`ALTER TABLE sys_storage_pending_delete_away RENAME TO sys_storage_pending_delete`
      const second = yield* queued(2)
      // the retry (backoff from 1 s, capped at the interval) picks it up
      for (let i = 0; i < 10; i++) {
        yield* TestClock.adjust("1 minute")
        yield* Effect.sleep("50 millis").pipe(TestServices.provideLive)
      }
      for (const job of second) assert.isFalse(yield* exists(job.key))
    }).pipe(Effect.scoped), { timeout: 60_000 })
}, ["pg", "mysql"])

describeEachDialect("backoff and classification", (database) => workerLayer(database), (it) => {
  it.effect("backoff doubles from the base and stops at the cap", () =>
    Effect.gen(function*() {
      const settings = { backoffBase: Duration.seconds(30), backoffCap: Duration.hours(1) }
      for (let i = 0; i < 20; i++) {
        const delays = yield* Effect.forEach(
          [1, 2, 3, 8, 12],
          (n) => Effect.map(backoff(settings, n), Duration.toMillis)
        )
        assert.isTrue(delays[0]! >= 24_000 && delays[0]! <= 36_000)
        assert.isTrue(delays[1]! >= 48_000 && delays[1]! <= 72_000)
        assert.isTrue(delays[2]! >= 96_000 && delays[2]! <= 144_000)
        assert.isTrue(delays[3]! >= 2_880_000 && delays[3]! <= 4_320_000)
        assert.isTrue(delays[4]! >= 2_880_000 && delays[4]! <= 4_320_000)
      }
    }))

  it.effect("classify maps backend failures to the dead-letter classes", () =>
    Effect.sync(() => {
      const of = (reason: StorageBackendError["reason"]) =>
        classify(Cause.fail(new StorageBackendError({ operation: "x", reason })))
      assert.strictEqual(of("access_denied"), "access_denied")
      assert.strictEqual(of("bucket_not_found"), "bucket_not_found")
      assert.strictEqual(of("transient"), "transient")
      assert.strictEqual(classify(Cause.fail(new UploadSessionNotFound())), "session_not_found")
      assert.strictEqual(classify(Cause.fail(new InvalidObjectKey({ key: "../x" }))), "invalid")
      assert.strictEqual(classify(Cause.die(new Error("boom"))), "transient")
    }))
}, ["sqlite"])
