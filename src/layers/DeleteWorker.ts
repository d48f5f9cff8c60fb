/**
 * The delete worker: drains the delete queue.
 *
 * Each run leases due rows batch after batch until none is due, aborts the
 * row's multipart session when it has one, deletes the object (a missing
 * object is success), and in one transaction removes the finished rows and
 * publishes their `FileDeleted` events. Failures are deferred with
 * exponential backoff and jitter, and dead-lettered after the last attempt.
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
import { withTransaction } from "../internal/transaction.js"
import { DeleteDeadLettered, FileDeleted } from "../schema/Events.js"
import type { PendingDelete } from "../schema/Models.js"
import { DeleteQueue } from "../services/DeleteQueue.js"
import { FileRegistry } from "../services/FileRegistry.js"
import { ObjectStorage } from "../services/ObjectStorage.js"
import { StorageEvents } from "../services/StorageEvents.js"
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

const noFailure: Effect.Effect<Option.Option<FailureClass>> = Effect.succeed(Option.none())

/** The lease a run keeps alive: its token, the rows being worked on, and those lost. */
interface HeldLease {
  token: string
  working: Set<string>
  lost: Set<string>
}

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
    const transaction = withTransaction(sql)

    /**
     * The backend work of one row; the failure is classified, never raised.
     * Not traced: a span per object would cost more than a memory or disk
     * delete itself; the batch's lease and settle transactions are traced.
     */
    const removeObject = (row: PendingDelete): Effect.Effect<Option.Option<FailureClass>> =>
      Effect.matchCauseEffect(
        row.isMultipart && Option.isSome(objects.multipart)
          ? Effect.zipRight(
            objects.multipart.value.abortMultipart({ key: row.key, uploadId: row.uploadId }),
            objects.deleteObject(row.key)
          )
          : objects.deleteObject(row.key),
        {
          onSuccess: () => noFailure,
          onFailure: (cause) =>
            Effect.as(
              Effect.logWarning(`could not delete ${row.key}`, cause),
              Option.some(classify(cause))
            )
        }
      ).pipe(Effect.withTracerEnabled(false))

    /** Records the outcome of a batch in one transaction. */
    const settle = (
      outcomes: ReadonlyArray<readonly [PendingDelete, Option.Option<FailureClass>]>,
      now: DateTime.Utc
    ) =>
      Effect.gen(function*() {
        let deleted = 0
        let deferred = 0
        let deadLettered = 0
        const finished = outcomes.filter(([, failure]) => Option.isNone(failure)).map(([row]) => row)
        yield* queue.done(finished.map((row) => row.id))
        yield* registry.markDeleted(finished.map((row) => ({ key: row.key, reason: row.reason })), now)
        for (const row of finished) {
          // The fields come from a validated PendingDelete: no need to validate them again.
          yield* events.publish(new FileDeleted({ key: row.key, reason: row.reason }, true))
          deleted++
        }
        for (const [row, failure] of outcomes) {
          if (Option.isNone(failure)) continue
          const attempts = row.attempts + 1
          if (attempts >= config.deleteMaxAttempts || failure.value === "invalid") {
            if (yield* queue.deadLetter(row.id, failure.value, now)) {
              yield* events.publish(
                new DeleteDeadLettered({
                  pendingDeleteId: row.id,
                  key: row.key,
                  reason: row.reason,
                  attempts,
                  lastError: failure.value
                })
              )
              deadLettered++
            }
          } else {
            const delay = yield* backoff(config, attempts)
            yield* queue.defer(row.id, DateTime.addDuration(now, delay), failure.value)
            deferred++
          }
        }
        return { deleted, deferred, deadLettered }
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
     * Keeps the lease of the batch in progress alive, one fiber for a whole
     * run: every third of the lease window it renews the rows still being
     * worked on, and notes the ones it no longer holds.
     */
    const keepLeases = Effect.gen(function*() {
      const held: HeldLease = { token: "", working: new Set(), lost: new Set() }
      const renew = Effect.gen(function*() {
        if (held.working.size === 0) return
        const { token } = held
        const ids = [...held.working]
        const still = yield* queue.renew(token, ids, DateTime.addDuration(yield* DateTime.now, config.leaseWindow))
        if (token !== held.token) return
        for (const id of ids) if (!still.has(id)) held.lost.add(id)
      }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("lease renewal failed", cause)))
      yield* renew.pipe(
        Effect.delay(Duration.divide(config.leaseWindow, 3).pipe(Option.getOrElse(() => config.leaseWindow))),
        Effect.forever,
        Effect.forkScoped,
        Effect.interruptible
      )
      return held
    })

    /** Processes one leased batch while `held` keeps its lease alive. */
    const processBatch = (rows: ReadonlyArray<PendingDelete>, held: HeldLease) =>
      Effect.gen(function*() {
        held.token = rows[0]!.leaseToken!
        held.working = new Set(rows.map((row) => row.id))
        held.lost = new Set()

        // At most `deleteConcurrency` rows at once: that many lanes, each
        // taking the next row when it is free (cheaper than a fiber per row).
        const outcomes: Array<Option.Option<FailureClass> | undefined> = new Array(rows.length)
        let next = 0
        const lane = Effect.whileLoop({
          while: () => next < rows.length,
          body: () => {
            const index = next++
            const row = rows[index]!
            // A row whose lease was lost belongs to another worker now.
            return held.lost.has(row.id) ? Effect.void : Effect.map(removeObject(row), (failure) => {
              outcomes[index] = failure
            })
          },
          step: () => {}
        })
        const lanes = Math.max(1, Math.min(config.deleteConcurrency, rows.length))
        yield* lanes === 1 ? lane : Effect.all(Array.from({ length: lanes }, () => lane), {
          concurrency: "unbounded",
          discard: true
        })
        const settled: Array<readonly [PendingDelete, Option.Option<FailureClass>]> = []
        rows.forEach((row, index) => {
          const failure = outcomes[index]
          if (failure !== undefined && !held.lost.has(row.id)) settled.push([row, failure])
        })
        // Settling takes milliseconds; no renewal may touch the rows meanwhile.
        held.working = new Set()
        return yield* settle(settled, yield* DateTime.now)
      })

    const runOnce: Effect.Effect<DeleteReport, SqlError> = Effect.gen(function*() {
      const held = yield* keepLeases
      let batches = 0
      let leased = 0
      let deleted = 0
      let deferred = 0
      let deadLettered = 0
      while (true) {
        // The lease is not interruptible, and the release is registered before
        // processing starts, so an interruption never strands leased rows.
        const batch = yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const rows = yield* queue.lease(yield* DateTime.now, config.deleteBatchSize, config.leaseWindow).pipe(
              Metric.trackDurationWith(StorageMetrics.leaseDuration, Duration.toSeconds)
            )
            if (rows.length === 0) return undefined
            const counts = yield* restore(processBatch(rows, held)).pipe(Effect.onInterrupt(() => release(rows)))
            return { rows, counts }
          })
        )
        if (batch === undefined) break
        const { counts, rows } = batch
        batches++
        leased += rows.length
        deleted += counts.deleted
        deferred += counts.deferred
        deadLettered += counts.deadLettered
        yield* Metric.incrementBy(StorageMetrics.objectsDeleted, counts.deleted)
        yield* Metric.incrementBy(StorageMetrics.deletesDeferred, counts.deferred)
        yield* Metric.incrementBy(StorageMetrics.deletesDeadLettered, counts.deadLettered)
      }
      return { batches, leased, deleted, deferred, deadLettered }
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
 * capped, with ±20% jitter so failed rows do not come due together.
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
    return Duration.millis(Math.round(exponential * (0.8 + 0.4 * r)))
  })

/**
 * Classifies why a delete failed.
 *
 * @since 0.1.0
 * @category backoff
 */
export const classify = (cause: Cause.Cause<unknown>): FailureClass => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return "transient"
  const error = failure.value as { _tag?: string; reason?: string }
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
