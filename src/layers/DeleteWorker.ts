/**
 * The delete worker: drains the delete queue.
 *
 * Each run leases due rows batch after batch until none is due, working on
 * up to `batchLanes(deleteConcurrency)` batches at once. For a batch it aborts the rows' multipart sessions (at most `deleteConcurrency`
 * at once), deletes the batch's objects in as few backend calls as the
 * backend allows (S3: one `DeleteObjects` per 1,000 keys; a missing object
 * is success), and in one transaction removes the finished rows (one
 * statement), marks the registry and publishes their `FileDeleted` events.
 * Each failed row is deferred with exponential backoff and jitter, or
 * dead-lettered after the last attempt, on its own. The work per row is
 * plain data: no fiber, span or schema decoding per row.
 * Leases are renewed while a batch is in progress, so a slow worker keeps
 * its rows and no second worker deletes the same object meanwhile.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { runForever } from "../internal/runForever.js"
import { trustedInstance } from "../internal/trusted.js"
import type { InvalidObjectKey, StorageBackendError } from "../schema/Errors.js"
import { DeleteDeadLettered, FileDeleted } from "../schema/Events.js"
import type { PendingDelete } from "../schema/Models.js"
import { resumableTailPrefix } from "../schema/Naming.js"
import { DeleteQueue } from "../services/DeleteQueue.js"
import { FileRegistry } from "../services/FileRegistry.js"
import { ObjectStorage } from "../services/ObjectStorage.js"
import { publishAll, StorageEvents } from "../services/StorageEvents.js"
import { retriedTransaction } from "./sql/Dialect.js"
import { StorageConfig, type StorageSettings } from "./StorageConfig.js"
import * as StorageMetrics from "./StorageMetrics.js"

/**
 * What one run did.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeleteReport {
  readonly batches: number
  readonly leased: number
  readonly deleted: number
  readonly deferred: number
  readonly deadLettered: number
}

/**
 * How a failed delete is recorded: `access_denied`, `bucket_not_found`,
 * `session_not_found`, `invalid` (it can never succeed) or `transient`.
 *
 * @since 0.1.0
 * @category models
 */
export type FailureClass = "access_denied" | "bucket_not_found" | "session_not_found" | "invalid" | "transient"

const emptyFailures: ReadonlyMap<string, InvalidObjectKey | StorageBackendError> = new Map()

/** A batch in progress whose lease a run keeps alive: the rows being worked on, and those lost. */
interface HeldBatch {
  readonly token: string
  readonly working: Set<string>
  readonly lost: Set<string>
}

/**
 * How many batches one run works on at once: while one batch waits for the
 * backend, another is leased or settled. A quarter of `deleteConcurrency`
 * (the default 8 gives 2), at least 1, at most 4.
 *
 * @since 0.1.0
 * @category models
 */
export const batchLanes = (deleteConcurrency: number): number =>
  Math.max(1, Math.min(4, Math.ceil(deleteConcurrency / 4)))

/**
 * @since 0.1.0
 * @category services
 */
export class DeleteWorker extends Effect.Service<DeleteWorker>()("effect-storage/DeleteWorker", {
  effect: Effect.gen(function*() {
    const config = yield* StorageConfig
    const queue = yield* DeleteQueue
    const objects = yield* ObjectStorage
    const events = yield* StorageEvents
    const registry = yield* FileRegistry
    const sql = yield* SqlClient.SqlClient
    const transaction = retriedTransaction(sql)

    /**
     * The backend work of a batch: the sessions (bounded concurrency), then
     * the objects in one batch call. Answers the failed rows, classified;
     * never fails. Not traced per row: a span per object would cost more
     * than a memory or disk delete itself.
     */
    const removeObjects = (rows: ReadonlyArray<PendingDelete>) =>
      Effect.gen(function*() {
        const failed = new Map<string, FailureClass>()
        const multipart = objects.multipart
        const sessions = Option.isSome(multipart) ? rows.filter((row) => row.isMultipart) : []
        if (Option.isSome(multipart) && sessions.length > 0) {
          yield* Effect.forEach(sessions, (row) =>
            Effect.catchAllCause(
              multipart.value.abortMultipart({ key: row.key, uploadId: row.uploadId }),
              (cause) =>
                Effect.sync(() => failed.set(row.id, classify(cause))).pipe(
                  Effect.zipRight(Effect.logWarning(`could not abort the upload session of ${row.key}`, cause))
                )
            ), { concurrency: config.deleteConcurrency, discard: true })
        }
        // A row whose session could not be aborted keeps its object for the retry.
        const keys = rows.filter((row) => !failed.has(row.id)).map((row) => row.key)
        const failedKeys = keys.length === 0 ? emptyFailures : yield* objects.deleteEach(keys)
        if (failedKeys.size > 0) {
          for (const row of rows) {
            const error = failedKeys.get(row.key)
            if (error !== undefined && !failed.has(row.id)) failed.set(row.id, classifyError(error))
          }
          const sample = [...failedKeys].slice(0, 3).map(([key, error]) => `${key}: ${error.message}`).join("; ")
          yield* Effect.logWarning(`could not delete ${failedKeys.size} of ${keys.length} objects (${sample})`)
        }
        return failed as ReadonlyMap<string, FailureClass>
      }).pipe(Effect.withTracerEnabled(false))

    /**
     * Records the outcome of a batch in one transaction: the finished rows in
     * one statement (with their registry records and events), each failed
     * row deferred or dead-lettered on its own.
     */
    const settle = (
      rows: ReadonlyArray<PendingDelete>,
      failed: ReadonlyMap<string, FailureClass>,
      now: DateTime.Utc
    ) =>
      Effect.gen(function*() {
        let deferred = 0
        let deadLettered = 0
        const finished = failed.size === 0 ? rows : rows.filter((row) => !failed.has(row.id))
        if (finished.length > 0) {
          yield* queue.done(finished.map((row) => row.id))
          yield* registry.markDeleted(finished.map((row) => ({ key: row.key, reason: row.reason })), now)
          // The fields come from a validated PendingDelete: no need to check them again.
          // A resumable upload's tail object was never a file: no event.
          yield* publishAll(
            events,
            finished.filter((row) => !row.key.startsWith(resumableTailPrefix)).map((row) =>
              trustedInstance(FileDeleted, { _tag: "storage.file.deleted", key: row.key, reason: row.reason })
            )
          )
        }
        for (const row of rows) {
          const failure = failed.get(row.id)
          if (failure === undefined) continue
          const attempts = row.attempts + 1
          if (attempts >= config.deleteMaxAttempts || failure === "invalid") {
            if (yield* queue.deadLetter(row.id, failure, now)) {
              yield* events.publish(
                new DeleteDeadLettered({
                  pendingDeleteId: row.id,
                  key: row.key,
                  reason: row.reason,
                  attempts,
                  lastError: failure
                })
              )
              deadLettered++
            }
          } else {
            const delay = yield* backoff(config, attempts)
            yield* queue.defer(row.id, DateTime.addDuration(now, delay), failure)
            deferred++
          }
        }
        return { deleted: finished.length, deferred, deadLettered }
      }).pipe(transaction)

    /**
     * Gives leased rows back. Rows already settled no longer carry the lease
     * token (done rows are gone, deferred ones were released), so only the
     * unfinished ones are affected.
     */
    const release = (rows: ReadonlyArray<PendingDelete>) =>
      Effect.flatMap(DateTime.now, (now) => queue.release(rows[0]!.leaseToken!, rows.map((row) => row.id), now)).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("could not give leased rows back", cause))
      )

    /**
     * Keeps the leases of the batches in progress alive, one fiber for a
     * whole run: every third of the lease window it renews the rows still
     * being worked on, and notes the ones it no longer holds.
     */
    const keepLeases = Effect.gen(function*() {
      const held = new Set<HeldBatch>()
      const renewOne = (batch: HeldBatch) =>
        Effect.gen(function*() {
          if (batch.working.size === 0) return
          const ids = [...batch.working]
          const still = yield* queue.renew(
            batch.token,
            ids,
            DateTime.addDuration(yield* DateTime.now, config.leaseWindow)
          )
          for (const id of ids) if (!still.has(id)) batch.lost.add(id)
        })
      const renew = Effect.suspend(() => Effect.forEach([...held], renewOne, { discard: true })).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("lease renewal failed", cause))
      )
      yield* renew.pipe(
        Effect.delay(Duration.divide(config.leaseWindow, 3).pipe(Option.getOrElse(() => config.leaseWindow))),
        Effect.forever,
        Effect.forkScoped,
        Effect.interruptible
      )
      return held
    })

    /** Processes one leased batch while `held` keeps its lease alive. */
    const processBatch = (rows: ReadonlyArray<PendingDelete>, held: Set<HeldBatch>) =>
      Effect.gen(function*() {
        const batch: HeldBatch = {
          token: rows[0]!.leaseToken!,
          working: new Set(rows.map((row) => row.id)),
          lost: new Set()
        }
        held.add(batch)
        const failed = yield* removeObjects(rows).pipe(Effect.ensuring(Effect.sync(() => held.delete(batch))))
        // A row whose lease was lost belongs to another worker now. Settling
        // takes milliseconds; no renewal touches the rows meanwhile.
        const settled = batch.lost.size === 0 ? rows : rows.filter((row) => !batch.lost.has(row.id))
        return yield* settle(settled, failed, yield* DateTime.now)
      })

    /** One batch: leased, worked on, settled; `undefined` when nothing was due. */
    const nextBatch = (held: Set<HeldBatch>) =>
      // The lease is not interruptible, and the release is registered before
      // processing starts, so an interruption never strands leased rows.
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const rows = yield* queue.lease(yield* DateTime.now, config.deleteBatchSize, config.leaseWindow).pipe(
            Metric.trackDurationWith(StorageMetrics.leaseDuration, Duration.toSeconds)
          )
          if (rows.length === 0) return undefined
          const counts = yield* restore(processBatch(rows, held)).pipe(Effect.onInterrupt(() => release(rows)))
          return { leased: rows.length, ...counts }
        })
      ).pipe(
        // One span per batch; the statements and backend calls inside are
        // not traced one by one (a span costs about what a row does).
        Effect.withTracerEnabled(false),
        Effect.withSpan("DeleteWorker.batch")
      )

    const runOnce: Effect.Effect<DeleteReport, SqlError> = Effect.gen(function*() {
      const held = yield* keepLeases
      const report = { batches: 0, leased: 0, deleted: 0, deferred: 0, deadLettered: 0 }
      // Each lane takes batches until one comes back empty: nothing is due.
      const lane = Effect.gen(function*() {
        while (true) {
          const batch = yield* nextBatch(held)
          if (batch === undefined) return
          report.batches++
          report.leased += batch.leased
          report.deleted += batch.deleted
          report.deferred += batch.deferred
          report.deadLettered += batch.deadLettered
          yield* Metric.incrementBy(StorageMetrics.objectsDeleted, batch.deleted)
          yield* Metric.incrementBy(StorageMetrics.deletesDeferred, batch.deferred)
          yield* Metric.incrementBy(StorageMetrics.deletesDeadLettered, batch.deadLettered)
        }
      })
      const lanes = batchLanes(config.deleteConcurrency)
      yield* lanes === 1 ? lane : Effect.all(Array.from({ length: lanes }, () => lane), {
        concurrency: "unbounded",
        discard: true
      })
      return report as DeleteReport
    }).pipe(
      Effect.scoped,
      Metric.trackDurationWith(StorageMetrics.deleteTickDuration, Duration.toSeconds),
      Effect.withSpan("DeleteWorker.runOnce")
    )

    return {
      /** One drain: leases until no row is due; answers what it did. */
      runOnce
    } as const
  })
}) {
  /**
   * Runs the worker forever as a scoped fiber: a run at start, then one
   * every `deleteInterval`. A failed run (database or backend outage) is
   * retried with backoff up to the interval; interruption stops it cleanly,
   * and rows it had leased are given back.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerScheduled: Layer.Layer<never, never, DeleteWorker | StorageConfig> = Layer.scopedDiscard(
    Effect.gen(function*() {
      const worker = yield* DeleteWorker
      const config = yield* StorageConfig
      yield* runForever("DeleteWorker", worker.runOnce, config.deleteInterval)
    })
  )
}

/**
 * The wait before attempt `attempts + 1`: the base doubled per failure,
 * with ±20% jitter so failed rows do not come due together, and never more
 * than the cap.
 *
 * @since 0.1.0
 * @category backoff
 */
export const backoff = (
  settings: Pick<StorageSettings, "backoffBase" | "backoffCap">,
  attempts: number
): Effect.Effect<Duration.Duration> =>
  Effect.map(Random.next, (r) => {
    const base = Duration.toMillis(settings.backoffBase)
    const cap = Duration.toMillis(settings.backoffCap)
    const exponential = Math.min(cap, base * 2 ** Math.min(Math.max(attempts - 1, 0), 30))
    // Capped after the jitter too: the longest wait is the cap, never 20% more.
    return Duration.millis(Math.min(cap, Math.round(exponential * (0.8 + 0.4 * r))))
  })

/**
 * Classifies why a delete failed.
 *
 * @since 0.1.0
 * @category backoff
 */
export const classify = (cause: Cause.Cause<unknown>): FailureClass => {
  const failure = Cause.failureOption(cause)
  return Option.isNone(failure) ? "transient" : classifyError(failure.value)
}

/**
 * Classifies one typed failure of a delete.
 *
 * @since 0.1.0
 * @category backoff
 */
export const classifyError = (failure: unknown): FailureClass => {
  const error = failure as { _tag?: string; reason?: string }
  switch (error._tag) {
    case "UploadSessionNotFound":
      return "session_not_found"
    case "InvalidObjectKey":
      return "invalid"
    case "StorageBackendError":
      return error.reason === "access_denied" || error.reason === "bucket_not_found" || error.reason === "invalid"
        ? error.reason
        : "transient"
    default:
      return "transient"
  }
}
