/**
 * Every typed error of effect-storage, in one module.
 *
 * Each is a `Schema.TaggedError` whose `_tag` is its name, so it can be
 * yielded directly, matched with `Effect.catchTag`, and sent over HTTP as
 * `{ "_tag": ..., "message": ... }`. Bad input is always one of these, never
 * a defect. Every error has a default message; pass `message` to say more.
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

const message = (fallback: string) =>
  Schema.String.pipe(Schema.propertySignature, Schema.withConstructorDefault(() => fallback))

/**
 * No claim matches: it is missing, someone else's, or not in the state the
 * operation needs. These cases are deliberately indistinguishable.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClaimNotFound extends Schema.TaggedError<ClaimNotFound>()("ClaimNotFound", {
  message: message("no matching upload claim")
}) {}

/**
 * A claim with the same id or object key already exists.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClaimAlreadyExists extends Schema.TaggedError<ClaimAlreadyExists>()("ClaimAlreadyExists", {
  message: message("an upload claim with this id or key already exists")
}) {}

/**
 * The principal may not do this (anonymous, or not the owner). Unknown and
 * foreign claims answer the same, so existence is never revealed.
 *
 * @since 0.1.0
 * @category errors
 */
export class AccessDenied extends Schema.TaggedError<AccessDenied>()("AccessDenied", {
  message: message("access denied")
}) {}

/**
 * The object does not exist in the backend.
 *
 * @since 0.1.0
 * @category errors
 */
export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>()("ObjectNotFound", {
  key: Schema.String,
  message: message("object not found")
}) {}

/**
 * The multipart session is unknown, completed or aborted.
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadSessionNotFound extends Schema.TaggedError<UploadSessionNotFound>()("UploadSessionNotFound", {
  message: message("multipart upload session not found")
}) {}

/**
 * A part's ETag in the completion manifest does not match the stored part.
 *
 * @since 0.1.0
 * @category errors
 */
export class PartETagMismatch extends Schema.TaggedError<PartETagMismatch>()("PartETagMismatch", {
  message: message("a part's ETag does not match the uploaded part")
}) {}

/**
 * A non-final part is smaller than the part size.
 *
 * @since 0.1.0
 * @category errors
 */
export class PartTooSmall extends Schema.TaggedError<PartTooSmall>()("PartTooSmall", {
  message: message("a non-final part is smaller than the part size")
}) {}

/**
 * A part number is outside 1..N, or the parts are not exactly 1..N.
 *
 * @since 0.1.0
 * @category errors
 */
export class PartNumberOutOfRange extends Schema.TaggedError<PartNumberOutOfRange>()("PartNumberOutOfRange", {
  message: message("part numbers must be exactly 1..N")
}) {}

/**
 * The claim is no longer pending (it was completed).
 *
 * @since 0.1.0
 * @category errors
 */
export class ClaimNotPending extends Schema.TaggedError<ClaimNotPending>()("ClaimNotPending", {
  message: message("the upload is no longer pending")
}) {}

/**
 * The pending claim's time to live has passed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClaimExpired extends Schema.TaggedError<ClaimExpired>()("ClaimExpired", {
  message: message("the upload has expired")
}) {}

/**
 * The declared size is above the maximum upload size.
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadTooLarge extends Schema.TaggedError<UploadTooLarge>()("UploadTooLarge", {
  message: message("the upload is larger than the maximum upload size")
}) {}

/**
 * The declared size is not a whole number of bytes of at least 1.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidUploadSize extends Schema.TaggedError<InvalidUploadSize>()("InvalidUploadSize", {
  message: message("the upload size must be a whole number of bytes, at least 1")
}) {}

/**
 * The upload would need more parts than the backend allows.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyParts extends Schema.TaggedError<TooManyParts>()("TooManyParts", {
  message: message("the upload needs more parts than the backend allows")
}) {}

/**
 * The principal already has the maximum number of pending uploads.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyPendingUploads extends Schema.TaggedError<TooManyPendingUploads>()("TooManyPendingUploads", {
  message: message("too many pending uploads")
}) {}

/**
 * A part body is larger than the claim's part size.
 *
 * @since 0.1.0
 * @category errors
 */
export class PartTooLarge extends Schema.TaggedError<PartTooLarge>()("PartTooLarge", {
  message: message("the part is larger than the part size")
}) {}

/**
 * Complete was asked before every part was recorded.
 *
 * @since 0.1.0
 * @category errors
 */
export class PartsIncomplete extends Schema.TaggedError<PartsIncomplete>()("PartsIncomplete", {
  message: message("not every part has been uploaded")
}) {}

/**
 * The assembled object's size differs from the declared size. The object
 * was deleted.
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadSizeMismatch extends Schema.TaggedError<UploadSizeMismatch>()("UploadSizeMismatch", {
  message: message("the assembled object's size differs from the declared size")
}) {}

/**
 * The filename is empty, `.`/`..`, or contains control characters.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidFilename extends Schema.TaggedError<InvalidFilename>()("InvalidFilename", {
  message: message("invalid filename")
}) {}

/**
 * A public upload was asked while public uploads are disabled.
 *
 * @since 0.1.0
 * @category errors
 */
export class PublicUploadsNotAllowed extends Schema.TaggedError<PublicUploadsNotAllowed>()(
  "PublicUploadsNotAllowed",
  { message: message("public uploads are not allowed") }
) {}

/**
 * The object backend has no multipart capability.
 *
 * @since 0.1.0
 * @category errors
 */
export class MultipartNotSupported extends Schema.TaggedError<MultipartNotSupported>()("MultipartNotSupported", {
  message: message("the storage backend does not support multipart uploads")
}) {}

/**
 * The object key is empty, absolute, or would escape its root.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidObjectKey extends Schema.TaggedError<InvalidObjectKey>()("InvalidObjectKey", {
  key: Schema.String,
  message: message("invalid object key")
}) {}

/**
 * Why a backend call failed, as far as it matters to a caller: retrying
 * helps only for `transient`.
 *
 * @since 0.1.0
 * @category errors
 */
export const BackendFailureReason = Schema.Literal("access_denied", "bucket_not_found", "invalid", "transient")

/**
 * @since 0.1.0
 * @category errors
 */
export type BackendFailureReason = typeof BackendFailureReason.Type

/**
 * The object backend failed (network, permissions, missing bucket, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class StorageBackendError extends Schema.TaggedError<StorageBackendError>()("StorageBackendError", {
  operation: Schema.String,
  reason: BackendFailureReason,
  message: message("the storage backend failed"),
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * The object backend is set up wrongly, not down: it refuses this server's
 * credentials or access (`access_denied`: an unknown key, a wrong secret,
 * a policy that denies; on the filesystem, a folder the process may not
 * write), or its bucket does not exist (`bucket_not_found`). Retrying does
 * not help; an operator must fix the configuration. The HTTP API answers it
 * with 500, and the details (which operation, the backend's own words) go
 * to the server's log only.
 *
 * @since 0.1.0
 * @category errors
 */
export class StorageMisconfigured extends Schema.TaggedError<StorageMisconfigured>()("StorageMisconfigured", {
  reason: Schema.Literal("access_denied", "bucket_not_found"),
  message: message("the storage backend is misconfigured; the server's operator has to fix it")
}) {}

/**
 * Whether a backend failure means a misconfiguration (see
 * `StorageMisconfigured`) rather than an outage.
 *
 * @since 0.1.0
 * @category errors
 */
export const isMisconfiguration = (
  u: unknown
): u is StorageBackendError & { readonly reason: "access_denied" | "bucket_not_found" } =>
  isStorageBackendError(u) && (u.reason === "access_denied" || u.reason === "bucket_not_found")

/**
 * A signed download link that does not hold: its signature is missing,
 * malformed, tampered with, or made for another key or expiry (HTTP 403).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidDownloadLink extends Schema.TaggedError<InvalidDownloadLink>()("InvalidDownloadLink", {
  message: message("the download link is not valid for this file")
}) {}

/**
 * A signed download link whose time is up (HTTP 410): ask for a new one.
 *
 * @since 0.1.0
 * @category errors
 */
export class DownloadLinkExpired extends Schema.TaggedError<DownloadLinkExpired>()("DownloadLinkExpired", {
  message: message("the download link has expired; ask for a new one")
}) {}

/**
 * A signed upload URL of the app server (direct uploads on the embedded
 * backends) was not signed for this claim, part and size, or was tampered
 * with.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidUploadSignature extends Schema.TaggedError<InvalidUploadSignature>()("InvalidUploadSignature", {
  message: message("the upload URL's signature does not match this upload, part and size")
}) {}

/**
 * A signed upload URL is past its expiry: ask for a new one.
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadUrlExpired extends Schema.TaggedError<UploadUrlExpired>()("UploadUrlExpired", {
  message: message("the upload URL has expired; ask for a new one")
}) {}

/**
 * A direct upload's object, as the storage holds it, is missing or not what
 * the claim declared (a form upload that never arrived, or arrived with
 * another size). Nothing was recorded.
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadNotStored extends Schema.TaggedError<UploadNotStored>()("UploadNotStored", {
  message: message("the storage holds no object of the declared size for this upload")
}) {}

/**
 * The request carries no valid credentials.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", {
  message: message("a valid bearer token is required")
}) {}

/**
 * A dependency (the database or the object backend) is unavailable; retry
 * later. Nothing was lost.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  message: message("the storage service is temporarily unavailable; retry later")
}) {}

/**
 * The request body ended early or could not be read.
 *
 * @since 0.1.0
 * @category errors
 */
export class RequestBodyError extends Schema.TaggedError<RequestBodyError>()("RequestBodyError", {
  message: message("the request body could not be read to its end")
}) {}

/**
 * The requested byte range lies outside the object.
 *
 * @since 0.1.0
 * @category errors
 */
export class RangeNotSatisfiable extends Schema.TaggedError<RangeNotSatisfiable>()("RangeNotSatisfiable", {
  size: Schema.Number,
  message: message("the requested range is outside the object")
}) {}

/**
 * A resumable (tus) upload that does not exist: never created, removed
 * after adoption or abort, or swept after expiry.
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadNotFound extends Schema.TaggedError<UploadNotFound>()("UploadNotFound", {
  message: message("no such upload")
}) {}

/**
 * A resumable upload's request names another offset than the one the
 * server acknowledged (`Upload-Offset`).
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadOffsetMismatch extends Schema.TaggedError<UploadOffsetMismatch>()("UploadOffsetMismatch", {
  offset: Schema.Number,
  message: message("the offset does not match the upload's")
}) {}

/**
 * Another request is writing to the same resumable upload on this server;
 * try again when it is done.
 *
 * @since 0.1.0
 * @category errors
 */
export class UploadLocked extends Schema.TaggedError<UploadLocked>()("UploadLocked", {
  message: message("another request is writing to this upload; try again")
}) {}

/**
 * A request's checksum (`Upload-Checksum`) does not match its body; nothing
 * of that request was kept.
 *
 * @since 0.1.0
 * @category errors
 */
export class ChecksumMismatch extends Schema.TaggedError<ChecksumMismatch>()("ChecksumMismatch", {
  message: message("the checksum does not match the request body; nothing of it was kept")
}) {}

/**
 * A resumable-upload request the protocol does not allow: a missing or
 * malformed header, malformed `Upload-Metadata`, an unsupported checksum
 * algorithm or extension.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidUploadRequest extends Schema.TaggedError<InvalidUploadRequest>()("InvalidUploadRequest", {
  message: message("the request is not a valid resumable-upload request")
}) {}

/**
 * The request speaks no protocol version the server supports
 * (`Tus-Resumable`, `Upload-Draft-Interop-Version`).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedProtocolVersion extends Schema.TaggedError<UnsupportedProtocolVersion>()(
  "UnsupportedProtocolVersion",
  { message: message("unsupported resumable-upload protocol version") }
) {}

/**
 * The request body's content type is not the one the protocol requires.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  message: message("unsupported content type")
}) {}

/**
 * `DATABASE_URL` (or the URL given to `Database.layerFromUrl`) is not a
 * `sqlite:`, `postgres://` or `mysql://` URL.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidDatabaseUrl extends Schema.TaggedError<InvalidDatabaseUrl>()("InvalidDatabaseUrl", {
  message: message("DATABASE_URL must start with sqlite:, postgres:// or mysql://")
}) {}

/**
 * A driver the configuration asks for is not installed: the database
 * clients and the S3 SDK are optional peer dependencies, so an app installs
 * only those it uses. The message names the package to install.
 *
 * @since 0.1.0
 * @category errors
 */
export class DriverNotInstalled extends Schema.TaggedError<DriverNotInstalled>()("DriverNotInstalled", {
  packageName: Schema.String,
  message: Schema.String
}) {}

/**
 * The errors of the object backends.
 *
 * @since 0.1.0
 * @category errors
 */
export type ObjectStorageError =
  | ObjectNotFound
  | UploadSessionNotFound
  | PartETagMismatch
  | PartTooSmall
  | PartNumberOutOfRange
  | InvalidObjectKey
  | StorageBackendError

/**
 * Whether a value is a `StorageBackendError`.
 *
 * @since 0.1.0
 * @category errors
 */
export const isStorageBackendError = (u: unknown): u is StorageBackendError =>
  Predicate.isTagged(u, "StorageBackendError")
