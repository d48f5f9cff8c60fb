/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Effect from "effect/Effect"
import type { AccessDenied, ClaimAlreadyExists, ClaimNotFound, TooManyPendingUploads } from "../schema/Errors.js"
import type { Principal, UploadClaim } from "../schema/Models.js"

/**
 * Totals over claims, for metrics and operators.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClaimTotals {
  readonly pendingCount: number
  readonly pendingBytes: number
  readonly uploadedCount: number
  readonly uploadedBytes: number
}

/**
 * The upload claims (`sys_storage_upload_claim`).
 *
 * Every method joins the caller's transaction: whatever runs inside
 * `sql.withTransaction` uses that transaction, so a business transaction that
 * fails rolls back every claim write made inside it.
 *
 * @since 0.1.0
 * @category tags
 */
export class ClaimStore extends Context.Tag("effect-storage/ClaimStore")<ClaimStore, {
  /**
   * Inserts a claim. Fails with `ClaimAlreadyExists` when its id or object
   * key is taken.
   */
  readonly create: (claim: UploadClaim) => Effect.Effect<void, ClaimAlreadyExists | SqlError>

  /**
   * Inserts a pending claim unless its owner already has `maxPending`
   * pending claims (expired but unswept ones count). The count and the
   * insert are serialized per owner, so the cap holds exactly under a
   * concurrent burst.
   */
  readonly createWithinCap: (
    claim: UploadClaim,
    maxPending: number
  ) => Effect.Effect<void, TooManyPendingUploads | ClaimAlreadyExists | SqlError>

  /**
   * Records the backend multipart session of a pending claim.
   * `ClaimNotFound` when no pending claim has that id.
   */
  readonly updateUploadId: (id: string, uploadId: string) => Effect.Effect<void, ClaimNotFound | SqlError>

  /**
   * Moves a claim from `pending` to `uploaded`. `ClaimNotFound` when no
   * pending claim has that id (also when a concurrent complete won).
   */
  readonly markUploaded: (id: string) => Effect.Effect<void, ClaimNotFound | SqlError>

  /** Reads a claim by id; `ClaimNotFound` when absent. */
  readonly get: (id: string) => Effect.Effect<UploadClaim, ClaimNotFound | SqlError>

  /** Reads a claim by object key; `ClaimNotFound` when absent. */
  readonly getByKey: (key: string) => Effect.Effect<UploadClaim, ClaimNotFound | SqlError>

  /**
   * The claims, whatever their status, of those of `keys` that have one
   * (keys de-duplicated, looked up in bounded `IN (...)` batches; order
   * unspecified). For bulk checks such as the reconciler's.
   */
  readonly findByKeys: (keys: Iterable<string>) => Effect.Effect<ReadonlyArray<UploadClaim>, SqlError>

  /** Counts an owner's pending claims, expired-but-unswept ones included. */
  readonly countPendingByOwner: (owner: string) => Effect.Effect<number, SqlError>

  /**
   * Adopts one uploaded claim by key, whoever owns it (trusted system
   * code). `ClaimNotFound` when no uploaded claim has that key.
   */
  readonly consume: (key: string) => Effect.Effect<void, ClaimNotFound | SqlError>

  /**
   * Adopts the principal's uploaded claims for `keys` (de-duplicated) in one
   * statement. All or nothing: when any key is missing, pending or someone
   * else's it fails with `ClaimNotFound`, and the caller's transaction must
   * roll back (the partial delete is undone with it). `AccessDenied` for an
   * anonymous principal. An empty list is a no-op. Expiry is not checked:
   * an uploaded claim stays adoptable after its time to live.
   */
  readonly consumeMany: (
    principal: Principal,
    keys: Iterable<string>
  ) => Effect.Effect<void, AccessDenied | ClaimNotFound | SqlError>

  /**
   * Pending claims whose `expiresAt` is before `now`, oldest first. Uploaded
   * claims are never returned.
   */
  readonly scanExpired: (now: DateTime.Utc, limit: number) => Effect.Effect<ReadonlyArray<UploadClaim>, SqlError>

  /**
   * Uploaded claims nobody adopted whose `expiresAt` is before `cutoff`,
   * oldest first (the orphan reclaim).
   */
  readonly scanUnadopted: (cutoff: DateTime.Utc, limit: number) => Effect.Effect<ReadonlyArray<UploadClaim>, SqlError>

  /** Deletes a claim whatever its state; part rows go with it. */
  readonly deleteById: (id: string) => Effect.Effect<void, SqlError>

  /** Deletes claims whatever their state; part rows go with them. */
  readonly deleteByIds: (ids: Iterable<string>) => Effect.Effect<void, SqlError>

  /**
   * Compare-and-set delete of a pending claim. Returns whether this call
   * deleted it (false when it was completed or removed meanwhile).
   */
  readonly deleteIfPending: (id: string) => Effect.Effect<boolean, SqlError>

  /**
   * The sweeper's compare-and-set delete: succeeds only while the claim is
   * still pending, expired before `cutoff`, and has the snapshot's key and
   * upload id. Returns whether this call deleted it.
   */
  readonly deleteIfPendingExpired: (snapshot: UploadClaim, cutoff: DateTime.Utc) => Effect.Effect<boolean, SqlError>

  /**
   * The sweeper's compare-and-set recovery: marks the claim uploaded only
   * under the same predicate as `deleteIfPendingExpired`.
   */
  readonly markUploadedIfPendingExpired: (
    snapshot: UploadClaim,
    cutoff: DateTime.Utc
  ) => Effect.Effect<boolean, SqlError>

  /**
   * The orphan reclaim's compare-and-set delete: succeeds only while the
   * claim is still uploaded (not adopted meanwhile) and expired before
   * `cutoff`. Returns whether this call deleted it.
   */
  readonly deleteIfUploadedBefore: (snapshot: UploadClaim, cutoff: DateTime.Utc) => Effect.Effect<boolean, SqlError>

  /** Counts and bytes of pending and uploaded claims. */
  readonly totals: Effect.Effect<ClaimTotals, SqlError>

  /** Lists claims, newest first, optionally only one owner's or one status. */
  readonly list: (options: {
    readonly owner?: string | undefined
    readonly status?: UploadClaim["status"] | undefined
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<UploadClaim>, SqlError>
}>() {}
