/**
 * The records effect-storage keeps in SQL, as Effect Schema models.
 *
 * Every timestamp is a `DateTime.Utc` and is stored in UTC on every dialect.
 * Ids are plain strings: the library generates UUIDv7s, callers may pass any
 * unique string.
 *
 * @since 0.1.0
 */
import type * as DateTime from "effect/DateTime"
import * as Schema from "effect/Schema"

/**
 * The life of an upload claim: `pending` from init until the object is
 * assembled, `uploaded` after, until a business record adopts it.
 *
 * @since 0.1.0
 * @category models
 */
export const ClaimStatus = Schema.Literal("pending", "uploaded")

/**
 * @since 0.1.0
 * @category models
 */
export type ClaimStatus = typeof ClaimStatus.Type

/**
 * Why an object was queued for deletion. The worker treats every reason the
 * same; the reason is carried into the row and the events.
 *
 * @since 0.1.0
 * @category models
 */
export const DeleteReason = Schema.Literal("replaced", "deleted", "claim_expired", "aborted", "orphaned")

/**
 * @since 0.1.0
 * @category models
 */
export type DeleteReason = typeof DeleteReason.Type

const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())

/**
 * One upload session: a short-lived row owned by the uploading principal.
 * `uploadId` is the backend's multipart session id, or `""` before the
 * session exists.
 *
 * @since 0.1.0
 * @category models
 */
export class UploadClaim extends Schema.Class<UploadClaim>("UploadClaim")({
  id: Schema.String,
  createdAt: Schema.DateTimeUtcFromSelf,
  createdBy: Schema.String,
  key: Schema.String,
  uploadId: Schema.String,
  size: NonNegativeInt,
  contentType: Schema.String,
  originalFilename: Schema.String,
  status: ClaimStatus,
  public: Schema.Boolean,
  partSize: NonNegativeInt,
  partCount: NonNegativeInt,
  expiresAt: Schema.DateTimeUtcFromSelf
}) {
  /** Whether the backend multipart session was opened. */
  get isMultipart(): boolean {
    return this.uploadId !== ""
  }

  /**
   * Whether the upload is stored with one plain put and no multipart
   * session: it fits in one part.
   */
  get isSingleRequest(): boolean {
    return this.partCount === 1 && this.uploadId === ""
  }

  /** Whether the object was assembled and the claim awaits adoption. */
  get isUploaded(): boolean {
    return this.status === "uploaded"
  }
}

/**
 * The record of one part of an in-flight multipart upload. The server builds
 * the "complete" manifest from these rows; clients never see ETags.
 *
 * @since 0.1.0
 * @category models
 */
export class UploadPart extends Schema.Class<UploadPart>("UploadPart")({
  id: Schema.String,
  claimId: Schema.String,
  partNumber: Schema.Int.pipe(Schema.positive()),
  etag: Schema.String,
  size: NonNegativeInt,
  createdAt: Schema.DateTimeUtcFromSelf
}) {}

/**
 * A durable "delete object `key` (and abort multipart session `uploadId`)"
 * job. `leaseToken` is set on rows handed out by a lease; `deadAt` marks a
 * dead-lettered row, kept out of the lease set until requeued.
 *
 * @since 0.1.0
 * @category models
 */
export class PendingDelete extends Schema.Class<PendingDelete>("PendingDelete")({
  id: Schema.String,
  key: Schema.String,
  uploadId: Schema.String,
  reason: DeleteReason,
  attempts: NonNegativeInt,
  nextAttemptAt: Schema.DateTimeUtcFromSelf,
  createdAt: Schema.DateTimeUtcFromSelf,
  lastError: Schema.optional(Schema.String),
  leaseToken: Schema.optional(Schema.String),
  deadAt: Schema.optional(Schema.DateTimeUtcFromSelf)
}) {
  /** Whether the job also aborts a multipart session. */
  get isMultipart(): boolean {
    return this.uploadId !== ""
  }

  /** Whether the job was dead-lettered. */
  get isDead(): boolean {
    return this.deadAt !== undefined
  }
}

/**
 * The life of a completed upload in the file registry: `uploaded` until a
 * record adopts it, `adopted` after, `deleted` once the worker removed the
 * object.
 *
 * @since 0.1.0
 * @category models
 */
export const FileStatus = Schema.Literal("uploaded", "adopted", "deleted")

/**
 * @since 0.1.0
 * @category models
 */
export type FileStatus = typeof FileStatus.Type

/**
 * One completed upload, as the file registry keeps it: who uploaded it,
 * its original name and type, and what became of it. Outlives the claim, so
 * apps can show metadata on download pages and operators can audit.
 *
 * @since 0.1.0
 * @category models
 */
export class FileRecord extends Schema.Class<FileRecord>("FileRecord")({
  /** The upload's claim id. */
  id: Schema.String,
  key: Schema.String,
  createdBy: Schema.String,
  originalFilename: Schema.String,
  contentType: Schema.String,
  size: NonNegativeInt,
  public: Schema.Boolean,
  status: FileStatus,
  /** When the upload was opened. */
  startedAt: Schema.DateTimeUtcFromSelf,
  /** When the object was assembled. */
  uploadedAt: Schema.DateTimeUtcFromSelf,
  /** When a business record adopted it. */
  adoptedAt: Schema.optional(Schema.DateTimeUtcFromSelf),
  deletedAt: Schema.optional(Schema.DateTimeUtcFromSelf),
  deleteReason: Schema.optional(DeleteReason)
}) {}

/**
 * Who is acting. An empty id or `"anonymous"` is anonymous.
 *
 * @since 0.1.0
 * @category models
 */
export const Principal = Schema.Struct({ id: Schema.String })

/**
 * @since 0.1.0
 * @category models
 */
export type Principal = typeof Principal.Type

/**
 * Whether a principal is anonymous (absent, empty id, or `"anonymous"`).
 *
 * @since 0.1.0
 * @category models
 */
export const isAnonymous = (principal: Principal | null | undefined): boolean =>
  principal == null || principal.id === "" || principal.id === "anonymous"

/**
 * Metadata of a stored object.
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectInfo {
  readonly key: string
  readonly size: number
  readonly eTag: string
  readonly contentType: string
  readonly lastModified: DateTime.Utc
  readonly metadata: Readonly<Record<string, string>>
}
