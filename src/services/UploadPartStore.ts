/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { ClaimNotFound } from "../schema/Errors.js"
import type { UploadPart } from "../schema/Models.js"

/**
 * The per-part ETag records of in-flight multipart uploads
 * (`sys_storage_upload_part`). Rows go with their claim (foreign key with
 * cascade). Every method joins the caller's transaction.
 *
 * @since 0.1.0
 * @category tags
 */
export class UploadPartStore extends Context.Tag("effect-storage/UploadPartStore")<UploadPartStore, {
  /**
   * Records a part, replacing the row of the same claim and part number
   * (last writer wins). `ClaimNotFound` when the claim row is gone.
   */
  readonly upsert: (part: UploadPart) => Effect.Effect<void, ClaimNotFound | SqlError>

  /** The parts of a claim, by ascending part number. */
  readonly listByClaim: (claimId: string) => Effect.Effect<ReadonlyArray<UploadPart>, SqlError>

  /** Deletes every part row of a claim. */
  readonly deleteByClaim: (claimId: string) => Effect.Effect<void, SqlError>
}>() {}
