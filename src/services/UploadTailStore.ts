/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"

/**
 * Where a resumable upload stands: the acknowledged offset, and the tail
 * (the bytes past the last whole part, kept as an object of their own until
 * they fill a part).
 *
 * @since 0.1.0
 * @category models
 */
export interface UploadTail {
  readonly claimId: string
  /** Bytes acknowledged: the recorded parts plus the tail. */
  readonly offset: number
  /** The tail object's key; empty when there is no tail. */
  readonly tailKey: string
  readonly tailSize: number
}

/**
 * The progress records of resumable uploads (`sys_storage_upload_tail`),
 * one per claim opened over the resumable protocol. Rows go with their
 * claim (foreign key with cascade). Every method joins the caller's
 * transaction.
 *
 * @since 0.1.0
 * @category tags
 */
export class UploadTailStore extends Context.Tag("effect-storage/UploadTailStore")<UploadTailStore, {
  /** Records a new resumable upload at offset 0 with no tail. */
  readonly create: (claimId: string) => Effect.Effect<void, SqlError>

  /** The progress of a claim, if it was opened as a resumable upload. */
  readonly get: (claimId: string) => Effect.Effect<Option.Option<UploadTail>, SqlError>

  /**
   * Moves a claim's progress from `fromOffset` to `next`, only if it still
   * stands at `fromOffset` (so two concurrent appends cannot both win):
   * answers whether it moved.
   */
  readonly advance: (fromOffset: number, next: UploadTail) => Effect.Effect<boolean, SqlError>
}>() {}
