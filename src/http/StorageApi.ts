/**
 * The storage HTTP API as an @effect/platform `HttpApiGroup` that apps add
 * to their own `HttpApi`:
 *
 * | method and path | does |
 * |---|---|
 * | POST /storage/uploads | open an upload |
 * | PUT /storage/uploads/{claimId}/parts/{partNumber} | send one part (raw body, streamed) |
 * | GET /storage/uploads/{claimId}/parts | parts recorded so far |
 * | POST /storage/uploads/{claimId}/complete | assemble |
 * | DELETE /storage/uploads/{claimId} | abort (idempotent) |
 * | POST /storage/files?filename= | a small file (at most one part) in one request |
 * | GET /storage/files/{key...} | download through the ACL, with ranges |
 *
 * Errors are JSON `{ "_tag", "message" }` with the status of their kind.
 *
 * @since 0.1.0
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import {
  AccessDenied,
  ClaimExpired,
  ClaimNotPending,
  DownloadLinkExpired,
  InvalidDownloadLink,
  InvalidFilename,
  InvalidObjectKey,
  InvalidUploadSize,
  MultipartNotSupported,
  ObjectNotFound,
  PartETagMismatch,
  PartNumberOutOfRange,
  PartsIncomplete,
  PartTooLarge,
  PartTooSmall,
  PublicUploadsNotAllowed,
  RangeNotSatisfiable,
  RequestBodyError,
  ServiceUnavailable,
  StorageMisconfigured,
  TooManyParts,
  TooManyPendingUploads,
  Unauthenticated,
  UploadSessionNotFound,
  UploadSizeMismatch,
  UploadTooLarge
} from "../schema/Errors.js"
import { Authentication } from "./Authentication.js"

/**
 * `POST /storage/uploads` body.
 *
 * @since 0.1.0
 * @category schemas
 */
export const InitUploadRequest = Schema.Struct({
  filename: Schema.String.pipe(Schema.maxLength(1024)),
  size: Schema.Number,
  contentType: Schema.optional(Schema.String.pipe(Schema.maxLength(127))),
  public: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "InitUploadRequest" })

/**
 * `POST /storage/uploads` answer.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UploadTicketResponse = Schema.Struct({
  claimId: Schema.String,
  key: Schema.String,
  originalFilename: Schema.String,
  partSize: Schema.Number,
  partCount: Schema.Number,
  expiresAt: Schema.DateTimeUtc
}).annotations({ identifier: "UploadTicket" })

/**
 * One recorded part.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PartResponse = Schema.Struct({
  partNumber: Schema.Number,
  size: Schema.Number
}).annotations({ identifier: "Part" })

/**
 * `GET /storage/uploads/{claimId}/parts` answer.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PartsResponse = Schema.Struct({ parts: Schema.Array(PartResponse) }).annotations({
  identifier: "Parts"
})

/**
 * `POST /storage/uploads/{claimId}/complete` answer.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CompletedUploadResponse = Schema.Struct({
  key: Schema.String,
  size: Schema.Number,
  eTag: Schema.String,
  contentType: Schema.String,
  originalFilename: Schema.String
}).annotations({ identifier: "CompletedUpload" })

/**
 * `POST /storage/links` request: the key of a file to link to.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CreateLinkRequest = Schema.Struct({
  key: Schema.String.pipe(Schema.maxLength(1024))
}).annotations({ identifier: "CreateLinkRequest" })

/**
 * `POST /storage/links` answer: a download URL (relative to the server) that
 * works without a bearer token until `expiresAt`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DownloadLinkResponse = Schema.Struct({
  key: Schema.String,
  url: Schema.String,
  expiresAt: Schema.DateTimeUtc
}).annotations({ identifier: "DownloadLink" })

/**
 * `POST /storage/files` query: the file's name and whether it is public.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UploadFileParams = Schema.Struct({
  filename: Schema.String.pipe(Schema.maxLength(1024)),
  public: Schema.optional(Schema.BooleanFromString)
}).annotations({ identifier: "UploadFileParams" })

const claimId = HttpApiSchema.param("claimId", Schema.String)
const partNumber = HttpApiSchema.param("partNumber", Schema.NumberFromString)

/**
 * The upload endpoints (bearer authentication) and the download proxy
 * (optional authentication, checked by the handler).
 *
 * @since 0.1.0
 * @category api
 */
export class StorageApiGroup extends HttpApiGroup.make("storage")
  .add(
    HttpApiEndpoint.post("initUpload", "/storage/uploads")
      .setPayload(InitUploadRequest)
      .addSuccess(UploadTicketResponse, { status: 201 })
      .addError(InvalidUploadSize, { status: 422 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(PublicUploadsNotAllowed, { status: 422 })
      .addError(TooManyParts, { status: 422 })
      .addError(InvalidFilename, { status: 422 })
      .addError(TooManyPendingUploads, { status: 429 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Open an upload")
  )
  .add(
    HttpApiEndpoint.put("uploadPart")`/storage/uploads/${claimId}/parts/${partNumber}`
      .addSuccess(PartResponse)
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(PartTooLarge, { status: 413 })
      .addError(PartTooSmall, { status: 422 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(RequestBodyError, { status: 400 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Send one part")
      .annotate(
        OpenApi.Description,
        "The raw bytes of the part as the request body (application/octet-stream), streamed to the backend. " +
          "Every part but the last is exactly partSize bytes; the last is what remains. Re-sending a part replaces it."
      )
  )
  .add(
    HttpApiEndpoint.get("listParts")`/storage/uploads/${claimId}/parts`
      .addSuccess(PartsResponse)
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(UploadSessionNotFound, { status: 422 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "List the parts recorded so far (to resume)")
  )
  .add(
    HttpApiEndpoint.post("completeUpload")`/storage/uploads/${claimId}/complete`
      .addSuccess(CompletedUploadResponse)
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(PartsIncomplete, { status: 422 })
      .addError(PartETagMismatch, { status: 422 })
      .addError(PartTooSmall, { status: 422 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(UploadSizeMismatch, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(ObjectNotFound, { status: 404 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Assemble the uploaded parts (idempotent)")
  )
  .add(
    HttpApiEndpoint.del("abortUpload")`/storage/uploads/${claimId}`
      .addSuccess(HttpApiSchema.NoContent)
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Abort a pending upload (idempotent)")
  )
  .add(
    HttpApiEndpoint.post("createLink", "/storage/links")
      .setPayload(CreateLinkRequest)
      .addSuccess(DownloadLinkResponse)
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "A short-lived signed download link to a file the caller may read")
  )
  .add(
    HttpApiEndpoint.post("uploadFile", "/storage/files")
      .setUrlParams(UploadFileParams)
      .addSuccess(CompletedUploadResponse, { status: 201 })
      .addError(InvalidUploadSize, { status: 422 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(PartTooLarge, { status: 413 })
      .addError(PartTooSmall, { status: 422 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(PublicUploadsNotAllowed, { status: 422 })
      .addError(InvalidFilename, { status: 422 })
      .addError(TooManyParts, { status: 422 })
      .addError(TooManyPendingUploads, { status: 429 })
      .addError(RequestBodyError, { status: 400 })
      // The steps' own errors, should the claim change under the request.
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(PartsIncomplete, { status: 422 })
      .addError(PartETagMismatch, { status: 422 })
      .addError(UploadSizeMismatch, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .addError(ObjectNotFound, { status: 404 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Upload a small file in one request")
      .annotate(
        OpenApi.Description,
        "The raw bytes of the file as the body, with its size as Content-Length and its type as Content-Type " +
          "(application/octet-stream or none: guessed from the filename). At most partSize bytes (see " +
          "POST /storage/uploads for larger files). Answers like complete; nothing stays pending when it fails."
      )
  )
  .add(
    HttpApiEndpoint.get("download", "/storage/files/*")
      .addSuccess(HttpApiSchema.Uint8Array({ contentType: "application/octet-stream" }))
      .addError(ObjectNotFound, { status: 404 })
      .addError(RangeNotSatisfiable, { status: 416 })
      .addError(InvalidDownloadLink, { status: 403 })
      .addError(DownloadLinkExpired, { status: 410 })
      .annotate(OpenApi.Summary, "Download a file")
      .annotate(
        OpenApi.Description,
        "pub/ keys are readable by anyone; other keys need a bearer token of a principal the ACL allows, " +
          "or a signed link from POST /storage/links (?expires=...&signature=..., no token). " +
          "Supports Range and If-None-Match."
      )
  )
  .addError(AccessDenied, { status: 403 })
  .addError(Unauthenticated, { status: 401 })
  .addError(InvalidObjectKey, { status: 422 })
  .addError(ServiceUnavailable, { status: 503 })
  .addError(StorageMisconfigured, { status: 500 })
  .annotateContext(OpenApi.annotations({
    title: "Storage",
    description: "Chunked uploads recorded in SQL, assembled by the server, and downloads through an ACL"
  }))
{}

/**
 * A whole API with only the storage group, for apps that serve nothing
 * else (and for tests).
 *
 * @since 0.1.0
 * @category api
 */
export class StorageApi
  extends HttpApi.make("storage").add(StorageApiGroup).annotate(OpenApi.Title, "effect-storage")
{}
