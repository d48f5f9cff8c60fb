/**
 * Every metric of effect-storage, in one module (Effect `Metric`s, so any
 * exporter sees them; `Prometheus.render` prints them as Prometheus text).
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import { runForever } from "../internal/runForever.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { DeleteQueue } from "../services/DeleteQueue.js"

const seconds = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 })

// ---- uploads ----

/** @since 0.1.0 @category uploads */
export const uploadsStarted = Metric.counter("storage_uploads_started_total", {
  description: "Uploads opened (claims created)",
  incremental: true
})
/** @since 0.1.0 @category uploads */
export const uploadsCompleted = Metric.counter("storage_uploads_completed_total", {
  description: "Uploads assembled and marked uploaded",
  incremental: true
})
/** @since 0.1.0 @category uploads */
export const uploadsAborted = Metric.counter("storage_uploads_aborted_total", {
  description: "Pending uploads aborted by their owner",
  incremental: true
})
/** @since 0.1.0 @category uploads */
export const partsUploaded = Metric.counter("storage_parts_uploaded_total", {
  description: "Parts stored",
  incremental: true
})
/** @since 0.1.0 @category uploads */
export const bytesUploaded = Metric.counter("storage_uploaded_bytes_total", {
  description: "Bytes of parts stored",
  incremental: true
})
/** @since 0.1.0 @category uploads */
export const claimsAdopted = Metric.counter("storage_claims_adopted_total", {
  description: "Uploads adopted by business records",
  incremental: true
})

// ---- delete worker ----

/** @since 0.1.0 @category worker */
export const objectsDeleted = Metric.counter("storage_objects_deleted_total", {
  description: "Objects the delete worker removed (or found already gone)",
  incremental: true
})
/** @since 0.1.0 @category worker */
export const deletesDeferred = Metric.counter("storage_deletes_deferred_total", {
  description: "Failed delete attempts put back with backoff",
  incremental: true
})
/** @since 0.1.0 @category worker */
export const deletesDeadLettered = Metric.counter("storage_deletes_dead_lettered_total", {
  description: "Delete jobs dead-lettered after the last attempt",
  incremental: true
})
/** @since 0.1.0 @category worker */
export const leaseDuration = Metric.histogram(
  "storage_lease_duration_seconds",
  seconds,
  "Time to lease one batch of the delete queue"
)
/** @since 0.1.0 @category worker */
export const deleteTickDuration = Metric.histogram(
  "storage_delete_tick_duration_seconds",
  seconds,
  "Time of one delete worker run"
)

// ---- backend ----

/**
 * Requests refused because the object backend is misconfigured (wrong
 * credentials, access denied, no bucket), tagged with `reason` and
 * `operation`: anything above zero needs an operator.
 *
 * @since 0.1.0 @category backend
 */
export const backendMisconfigured = Metric.counter("storage_backend_misconfigured_total", {
  description: "Requests failed on a misconfigured object backend (credentials, access, missing bucket)",
  incremental: true
})

// ---- sweeper ----

/** @since 0.1.0 @category sweeper */
export const claimsSwept = Metric.counter("storage_claims_swept_total", {
  description: "Expired pending claims removed and queued for deletion",
  incremental: true
})
/** @since 0.1.0 @category sweeper */
export const claimsRecovered = Metric.counter("storage_claims_recovered_total", {
  description: "Expired pending claims whose object was assembled, marked uploaded",
  incremental: true
})
/** @since 0.1.0 @category sweeper */
export const orphansReclaimed = Metric.counter("storage_orphans_reclaimed_total", {
  description: "Uploaded claims nobody adopted, reclaimed",
  incremental: true
})
/** @since 0.1.0 @category sweeper */
export const sweepTickDuration = Metric.histogram(
  "storage_sweep_tick_duration_seconds",
  seconds,
  "Time of one sweeper run"
)

// ---- state (sampled) ----

/** @since 0.1.0 @category state */
export const queueDepth = Metric.gauge("storage_delete_queue_depth", {
  description: "Live rows of the delete queue"
})
/** @since 0.1.0 @category state */
export const queueDue = Metric.gauge("storage_delete_queue_due", {
  description: "Rows of the delete queue due now"
})
/** @since 0.1.0 @category state */
export const queueDead = Metric.gauge("storage_delete_queue_dead_letters", {
  description: "Dead-lettered rows of the delete queue"
})
/** @since 0.1.0 @category state */
export const queueOldestDueAge = Metric.gauge("storage_delete_queue_oldest_due_age_seconds", {
  description: "How long the oldest due row has been waiting (0 when none)"
})
/** @since 0.1.0 @category state */
export const pendingClaims = Metric.gauge("storage_pending_claims", {
  description: "Uploads in progress (pending claims)"
})
/** @since 0.1.0 @category state */
export const pendingClaimBytes = Metric.gauge("storage_pending_claim_bytes", {
  description: "Declared bytes of pending claims"
})
/** @since 0.1.0 @category state */
export const unadoptedClaims = Metric.gauge("storage_unadopted_claims", {
  description: "Completed uploads no record has adopted yet"
})
/** @since 0.1.0 @category state */
export const unadoptedClaimBytes = Metric.gauge("storage_unadopted_claim_bytes", {
  description: "Bytes of completed uploads no record has adopted yet"
})

// ---- sampling ----

/**
 * Reads the queue and claim totals once into the gauges.
 *
 * @since 0.1.0
 * @category state
 */
export const sample: Effect.Effect<void, SqlError, DeleteQueue | ClaimStore> = Effect.gen(function*() {
  const queue = yield* DeleteQueue
  const claims = yield* ClaimStore
  const now = yield* DateTime.now
  const stats = yield* queue.stats(now)
  const totals = yield* claims.totals
  yield* Metric.set(queueDepth, stats.depth)
  yield* Metric.set(queueDue, stats.due)
  yield* Metric.set(queueDead, stats.dead)
  yield* Metric.set(
    queueOldestDueAge,
    Option.match(stats.oldestDue, { onNone: () => 0, onSome: (at) => Math.max(0, DateTime.distance(at, now) / 1000) })
  )
  yield* Metric.set(pendingClaims, totals.pendingCount)
  yield* Metric.set(pendingClaimBytes, totals.pendingBytes)
  yield* Metric.set(unadoptedClaims, totals.uploadedCount)
  yield* Metric.set(unadoptedClaimBytes, totals.uploadedBytes)
}).pipe(Effect.withSpan("StorageMetrics.sample"))

/**
 * Samples the state gauges at start and every `interval` (15 seconds) as
 * a scoped fiber; a failed sample is logged and retried.
 *
 * @since 0.1.0
 * @category state
 */
export const layerSampler = (
  interval: Duration.DurationInput = "15 seconds"
): Layer.Layer<never, never, DeleteQueue | ClaimStore> =>
  Layer.scopedDiscard(runForever("StorageMetrics", sample, Duration.decode(interval)))
