/**
 * The claim sweeper: reaps abandoned uploads.
 *
 * A run takes pending claims that expired more than one sweep interval ago
 * (the grace window), probes the backend for each outside any transaction,
 * then in one transaction per batch recovers those whose object was in fact
 * assembled (complete crashed before its bookkeeping) and removes the rest,
 * queueing their object and multipart session for deletion. Both use
 * compare-and-set predicates, so a complete or abort that wins the race is
 * left alone. After the commit, what is left of a recovered upload's
 * session is closed. Optionally it also reclaims uploads nobody adopted.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { runForever } from "../internal/runForever.js"
import { uuidv7 } from "../internal/uuidv7.js"
import { type DeleteReason, PendingDelete, type UploadClaim } from "../schema/Models.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { DeleteQueue } from "../services/DeleteQueue.js"
import { FileRegistry } from "../services/FileRegistry.js"
import { ObjectStorage } from "../services/ObjectStorage.js"
import { UploadPartStore } from "../services/UploadPartStore.js"
import { retriedTransaction } from "./sql/Dialect.js"
import { StorageConfig } from "./StorageConfig.js"
import * as StorageMetrics from "./StorageMetrics.js"

/**
 * What one run did.
 *
 * @since 0.1.0
 * @category models
 */
export interface SweepReport {
  /** Expired pending claims looked at. */
  readonly scanned: number
  /** Claims whose object was assembled, marked uploaded. */
  readonly recovered: number
  /** Claims removed and queued for deletion. */
  readonly removed: number
  /** Claims left for the next run (the backend probe failed). */
  readonly skipped: number
  /** Unadopted uploads reclaimed (only with an orphan retention). */
  readonly orphansReclaimed: number
}

/**
 * What the sweeper decided for one expired claim.
 *
 * @since 0.1.0
 * @category models
 */
export type SweepPlan = "recover" | "remove" | "skip"

/**
 * @since 0.1.0
 * @category services
 */
export class ClaimSweeper extends Effect.Service<ClaimSweeper>()("effect-storage/ClaimSweeper", {
  effect: Effect.gen(function*() {
    const config = yield* StorageConfig
    const claims = yield* ClaimStore
    const parts = yield* UploadPartStore
    const queue = yield* DeleteQueue
    const registry = yield* FileRegistry
    const objects = yield* ObjectStorage
    const sql = yield* SqlClient.SqlClient
    const transaction = retriedTransaction(sql)

    /** Decides outside any transaction, so backend latency never holds row locks. */
    const plan = (claim: UploadClaim): Effect.Effect<SweepPlan> => {
      // The init crashed before the backend session existed (a single-request
      // upload has none, but its object may have been stored: probe it).
      if (!claim.isMultipart && !claim.isSingleRequest) return Effect.succeed("remove")
      return objects.statObject(claim.key).pipe(
        Effect.map((info): SweepPlan => info.size === claim.size ? "recover" : "remove"),
        Effect.catchTag("ObjectNotFound", () => Effect.succeed<SweepPlan>("remove")),
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning(`could not probe ${claim.key}; retrying next run`, cause), "skip" as const)
        )
      )
    }

    const deleteJob = (claim: UploadClaim, uploadId: string, reason: DeleteReason, now: DateTime.Utc) =>
      Effect.map(uuidv7, (id) =>
        new PendingDelete({
          id,
          key: claim.key,
          uploadId,
          reason,
          attempts: 0,
          nextAttemptAt: now,
          createdAt: now
        }))

    /** Applies a batch's plans in one transaction; answers what won its compare-and-set. */
    const apply = (
      planned: ReadonlyArray<readonly [UploadClaim, SweepPlan]>,
      cutoff: DateTime.Utc,
      now: DateTime.Utc
    ) =>
      transaction(Effect.gen(function*() {
        const recovered: Array<UploadClaim> = []
        const jobs: Array<PendingDelete> = []
        for (const [claim, decision] of planned) {
          if (decision === "recover" && (yield* claims.markUploadedIfPendingExpired(claim, cutoff))) {
            yield* parts.deleteByClaim(claim.id)
            yield* registry.recordUploaded(claim, now)
            recovered.push(claim)
          } else if (decision === "remove" && (yield* claims.deleteIfPendingExpired(claim, cutoff))) {
            // Part rows go with the claim (foreign key cascade).
            jobs.push(yield* deleteJob(claim, claim.uploadId, "claim_expired", now))
          }
        }
        yield* queue.enqueue(jobs)
        return { recovered, removed: jobs.length }
      }))

    /**
     * Closes what is left of the multipart sessions of recovered claims,
     * after their commit: a completion that died after assembling may have
     * left its session (the filesystem backend's, taken aside), which
     * nothing would ever close. A session already closed is success; a
     * failure is only logged (the object is safe either way).
     */
    const closeSessions = (recovered: ReadonlyArray<UploadClaim>) =>
      Option.match(objects.multipart, {
        onNone: () => Effect.void,
        onSome: (multipart) =>
          Effect.forEach(
            recovered.filter((claim) => claim.isMultipart),
            (claim) =>
              multipart.abortMultipart({ key: claim.key, uploadId: claim.uploadId }).pipe(
                Effect.catchAllCause((cause) =>
                  Effect.logWarning(`could not close the upload session of recovered ${claim.key}`, cause)
                )
              ),
            { concurrency: 8, discard: true }
          )
      })

    const sweepExpired = Effect.gen(function*() {
      const now = yield* DateTime.now
      const cutoff = DateTime.subtractDuration(now, config.sweepInterval)
      let scanned = 0
      let recovered = 0
      let removed = 0
      let skipped = 0
      while (true) {
        const expired = yield* claims.scanExpired(cutoff, config.sweepBatchSize)
        if (expired.length === 0) break
        const planned = yield* Effect.forEach(expired, (claim) => Effect.map(plan(claim), (p) => [claim, p] as const), {
          concurrency: 8
        })
        const done = yield* apply(planned, cutoff, now)
        yield* closeSessions(done.recovered)
        scanned += expired.length
        recovered += done.recovered.length
        removed += done.removed
        skipped += planned.filter(([, p]) => p === "skip").length
        // Only skipped claims (an unreachable backend) or a short batch: nothing more to do now.
        if (done.recovered.length + done.removed === 0 || expired.length < config.sweepBatchSize) break
      }
      return { scanned, recovered, removed, skipped }
    })

    const reclaimOrphans = (retention: Duration.Duration) =>
      Effect.gen(function*() {
        const now = yield* DateTime.now
        const cutoff = DateTime.subtractDuration(now, retention)
        let reclaimed = 0
        while (true) {
          const orphans = yield* claims.scanUnadopted(cutoff, config.sweepBatchSize)
          if (orphans.length === 0) break
          const won = yield* transaction(Effect.gen(function*() {
            const jobs: Array<PendingDelete> = []
            for (const claim of orphans) {
              // Loses, harmlessly, to an adoption that commits first.
              if (yield* claims.deleteIfUploadedBefore(claim, cutoff)) {
                jobs.push(yield* deleteJob(claim, "", "orphaned", now))
              }
            }
            yield* queue.enqueue(jobs)
            return jobs.length
          }))
          reclaimed += won
          if (won === 0 || orphans.length < config.sweepBatchSize) break
        }
        return reclaimed
      })

    const runOnce: Effect.Effect<SweepReport, SqlError> = Effect.gen(function*() {
      const expired = yield* sweepExpired
      const orphansReclaimed = Option.isSome(config.orphanRetention)
        ? yield* reclaimOrphans(config.orphanRetention.value)
        : 0
      yield* Metric.incrementBy(StorageMetrics.claimsRecovered, expired.recovered)
      yield* Metric.incrementBy(StorageMetrics.claimsSwept, expired.removed)
      yield* Metric.incrementBy(StorageMetrics.orphansReclaimed, orphansReclaimed)
      return { ...expired, orphansReclaimed }
    }).pipe(
      Metric.trackDurationWith(StorageMetrics.sweepTickDuration, Duration.toSeconds),
      Effect.withSpan("ClaimSweeper.runOnce")
    )

    return {
      /** One sweep of expired claims (and orphans, when enabled); answers what it did. */
      runOnce
    } as const
  })
}) {
  /**
   * Runs the sweeper forever as a scoped fiber: a run at start, then one
   * every `sweepInterval`, surviving failed runs: each is retried with backoff up to the interval.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerScheduled: Layer.Layer<never, never, ClaimSweeper | StorageConfig> = Layer.scopedDiscard(
    Effect.gen(function*() {
      const sweeper = yield* ClaimSweeper
      const config = yield* StorageConfig
      yield* runForever("ClaimSweeper", sweeper.runOnce, config.sweepInterval)
    })
  )
}
