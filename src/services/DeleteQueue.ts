/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { DeleteReason, PendingDelete } from "../schema/Models.js"

/**
 * The state of the queue at one instant, for metrics and operators.
 *
 * @since 0.1.0
 * @category models
 */
export interface QueueStats {
  /** Live rows (not dead-lettered), due or not, leased or not. */
  readonly depth: number
  /** Live rows whose next attempt is due. */
  readonly due: number
  /** Dead-lettered rows. */
  readonly dead: number
  /** The `nextAttemptAt` of the oldest due row. */
  readonly oldestDue: Option.Option<DateTime.Utc>
}

/**
 * The durable delete queue (`sys_storage_pending_delete`): "delete object
 * `key`, and abort multipart session `uploadId` if set" jobs.
 *
 * Business code schedules inside its own transaction; workers lease due rows
 * (`FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL/MariaDB), and mark them
 * done, defer them with backoff, or dead-letter them. Every method joins the
 * caller's transaction.
 *
 * @since 0.1.0
 * @category tags
 */
export class DeleteQueue extends Context.Tag("effect-storage/DeleteQueue")<DeleteQueue, {
  /**
   * Queues the deletion of `keys` (de-duplicated, empty ones skipped), due
   * now. Idempotent on (key, reason): a key already queued for that reason
   * is left as it is. An empty list is a no-op.
   */
  readonly schedule: (keys: Iterable<string>, reason: DeleteReason) => Effect.Effect<void, SqlError>

  /**
   * Queues prepared jobs as they are (upload id, due time, attempts),
   * idempotent on (key, reason) like `schedule`.
   */
  readonly enqueue: (items: ReadonlyArray<PendingDelete>) => Effect.Effect<void, SqlError>

  /**
   * Takes up to `limit` due, live rows, oldest due first, and hides them
   * from other leases for `leaseDuration` by pushing `nextAttemptAt` to
   * `now + leaseDuration`. Each row is handed to exactly one caller; the
   * returned rows carry this lease's `leaseToken`. Never fails spuriously
   * under contention (MySQL deadlocks are retried).
   */
  readonly lease: (
    now: DateTime.Utc,
    limit: number,
    leaseDuration: Duration.DurationInput
  ) => Effect.Effect<ReadonlyArray<PendingDelete>, SqlError>

  /**
   * Extends the lease of the rows of `ids` still held under `leaseToken` to
   * `until`. Returns the ids still held: a row missing from the answer was
   * finished or re-leased by someone else, and must be left alone.
   */
  readonly renew: (
    leaseToken: string,
    ids: ReadonlyArray<string>,
    until: DateTime.Utc
  ) => Effect.Effect<ReadonlySet<string>, SqlError>

  /**
   * Gives back the rows of `ids` still held under `leaseToken`: they are due
   * again at `now`, with no attempt counted (a worker stopping mid-batch).
   */
  readonly release: (
    leaseToken: string,
    ids: ReadonlyArray<string>,
    now: DateTime.Utc
  ) => Effect.Effect<void, SqlError>

  /** Removes finished rows. A missing row is fine. */
  readonly done: (ids: Iterable<string>) => Effect.Effect<void, SqlError>

  /**
   * Counts one more failed attempt and makes the row due again at `nextAt`,
   * releasing its lease. A missing row (finished elsewhere) is fine.
   */
  readonly defer: (id: string, nextAt: DateTime.Utc, lastError?: string) => Effect.Effect<void, SqlError>

  /**
   * Counts one more failed attempt and parks the row as dead-lettered with
   * its last error: it is kept, out of the lease set, until requeued.
   * Returns whether the row still existed.
   */
  readonly deadLetter: (id: string, lastError: string, now: DateTime.Utc) => Effect.Effect<boolean, SqlError>

  /** Lists dead-lettered rows, oldest first. */
  readonly listDeadLetters: (options?: {
    readonly limit?: number | undefined
  }) => Effect.Effect<ReadonlyArray<PendingDelete>, SqlError>

  /**
   * Makes dead-lettered rows live and due at `now` with no attempts, all of
   * them or those of `ids`. Returns how many were requeued.
   */
  readonly requeueDeadLetters: (
    now: DateTime.Utc,
    ids?: ReadonlyArray<string>
  ) => Effect.Effect<number, SqlError>

  /**
   * Removes dead-lettered rows for good, all of them or those of `ids`
   * (the operator gave up on those objects). Returns how many.
   */
  readonly purgeDeadLetters: (ids?: ReadonlyArray<string>) => Effect.Effect<number, SqlError>

  /**
   * The rows, live or dead-lettered, queued for any of `keys` (keys
   * de-duplicated, looked up in bounded `IN (...)` batches; order
   * unspecified). A key may have one row per reason. For bulk checks such
   * as the reconciler's.
   */
  readonly findByKeys: (keys: Iterable<string>) => Effect.Effect<ReadonlyArray<PendingDelete>, SqlError>

  /** Reads one row by id. */
  readonly get: (id: string) => Effect.Effect<Option.Option<PendingDelete>, SqlError>

  /** Depth, due, dead and oldest due row at `now`. */
  readonly stats: (now: DateTime.Utc) => Effect.Effect<QueueStats, SqlError>
}>() {}
