/**
 * Direct uploads over HTTP, an `HttpApiGroup` ("direct") that apps add to
 * their API beside `StorageApiGroup`: the client sends the bytes straight
 * to the storage with URLs the server signs, and the server keeps the
 * bookkeeping.
 *
 * | method and path | does |
 * |---|---|
 * | POST /storage/direct/uploads | open a direct upload (a claim with a multipart session) |
 * | GET /storage/direct/uploads/{claimId}/parts/{partNumber} | a URL for the part, signed for its exact size |
 * | POST /storage/direct/uploads/{claimId}/signatures `{partNumbers}` | URLs for up to 100 parts at once |
 * | GET /storage/direct/uploads/{claimId}/parts | the parts the storage holds (to resume) |
 * | POST /storage/direct/uploads/{claimId}/complete | check the stored parts and assemble |
 * | PUT /storage/direct/parts/{claimId}/{partNumber}?size&expires&signature | the embedded backends' signed part endpoint (no bearer token: the signature is the credential) |
 *
 * Abort is `DELETE /storage/uploads/{claimId}`, as for proxied uploads.
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
  InvalidFilename,
  InvalidObjectKey,
  InvalidUploadSignature,
  InvalidUploadSize,
  MultipartNotSupported,
  ObjectNotFound,
  PartETagMismatch,
  PartNumberOutOfRange,
  PartsIncomplete,
  PartTooLarge,
  PartTooSmall,
  PublicUploadsNotAllowed,
  RequestBodyError,
  ServiceUnavailable,
  StorageMisconfigured,
  TooManyParts,
  TooManyPendingUploads,
  Unauthenticated,
  UploadNotStored,
  UploadSessionNotFound,
  UploadSizeMismatch,
  UploadTooLarge,
  UploadUrlExpired
} from "../schema/Errors.js"
import { Authentication } from "./Authentication.js"
import { CompanionApiGroup } from "./CompanionApi.js"
import { SessionApiGroup } from "./Sessions.js"
import { CompletedUploadResponse, InitUploadRequest, StorageApiGroup, UploadTicketResponse } from "./StorageApi.js"

/**
 * A signed part request: `PUT` the part's bytes to `url` with exactly these
 * headers before `expiresAt`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SignedPartResponse = Schema.Struct({
  partNumber: Schema.Number,
  size: Schema.Number,
  method: Schema.Literal("PUT"),
  url: Schema.String,
  headers: Schema.Record({ key: Schema.String, value: Schema.String }),
  expiresAt: Schema.DateTimeUtc
}).annotations({ identifier: "SignedPart" })

/**
 * `POST /storage/direct/uploads/{claimId}/signatures` body: the parts to sign.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SignPartsRequest = Schema.Struct({
  partNumbers: Schema.Array(Schema.Number).pipe(Schema.maxItems(100))
}).annotations({ identifier: "SignPartsRequest" })

/**
 * A part as the storage holds it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const StoredPartResponse = Schema.Struct({
  partNumber: Schema.Number,
  size: Schema.Number,
  etag: Schema.String
}).annotations({ identifier: "StoredPart" })

/**
 * `GET /storage/direct/uploads/{claimId}/parts` answer.
 *
 * @since 0.1.0
 * @category schemas
 */
export const StoredPartsResponse = Schema.Struct({ parts: Schema.Array(StoredPartResponse) }).annotations({
  identifier: "StoredParts"
})

/**
 * The signed part endpoint's query.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SignedPartParams = Schema.Struct({
  size: Schema.NumberFromString,
  expires: Schema.optional(Schema.String),
  signature: Schema.optional(Schema.String)
}).annotations({ identifier: "SignedPartParams" })

const claimId = HttpApiSchema.param("claimId", Schema.String)
const partNumber = HttpApiSchema.param("partNumber", Schema.NumberFromString)

/**
 * The direct-upload endpoints.
 *
 * @since 0.1.0
 * @category api
 */
export class DirectApiGroup extends HttpApiGroup.make("direct")
  .add(
    HttpApiEndpoint.post("openDirect", "/storage/direct/uploads")
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
      .annotate(OpenApi.Summary, "Open a direct upload (the bytes go straight to the storage)")
  )
  .add(
    HttpApiEndpoint.get("signPart")`/storage/direct/uploads/${claimId}/parts/${partNumber}`
      .addSuccess(SignedPartResponse)
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "A short-lived URL for one part, signed for its exact size")
  )
  .add(
    HttpApiEndpoint.post("signParts")`/storage/direct/uploads/${claimId}/signatures`
      .setPayload(SignPartsRequest)
      .addSuccess(Schema.Struct({ parts: Schema.Array(SignedPartResponse) }))
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "URLs for several parts at once (up to 100), each signed for its exact size")
  )
  .add(
    HttpApiEndpoint.get("listStoredParts")`/storage/direct/uploads/${claimId}/parts`
      .addSuccess(StoredPartsResponse)
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(UploadSessionNotFound, { status: 422 })
      .addError(MultipartNotSupported, { status: 422 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "The parts the storage holds (to resume)")
  )
  .add(
    HttpApiEndpoint.post("completeDirect")`/storage/direct/uploads/${claimId}/complete`
      .addSuccess(CompletedUploadResponse)
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(PartsIncomplete, { status: 422 })
      .addError(PartETagMismatch, { status: 422 })
      .addError(PartTooSmall, { status: 422 })
      .addError(PartTooLarge, { status: 422 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(UploadSizeMismatch, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .addError(UploadNotStored, { status: 422 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(ObjectNotFound, { status: 404 })
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Check the parts the storage holds and assemble them (idempotent)")
  )
  .add(
    HttpApiEndpoint.put("putSignedPart")`/storage/direct/parts/${claimId}/${partNumber}`
      .setUrlParams(SignedPartParams)
      .addSuccess(StoredPartResponse)
      .addError(InvalidUploadSignature, { status: 403 })
      .addError(UploadUrlExpired, { status: 403 })
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(PartTooLarge, { status: 413 })
      .addError(PartTooSmall, { status: 422 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(RequestBodyError, { status: 400 })
      .annotate(OpenApi.Summary, "Send a part to a signed URL (the embedded backends' presigned PUT)")
      .annotate(
        OpenApi.Description,
        "The URL comes from GET /storage/direct/uploads/{claimId}/parts/{partNumber}; its signature is the " +
          "credential (no bearer token). The body must be exactly `size` bytes. Answers the part's ETag as a header."
      )
  )
  .addError(AccessDenied, { status: 403 })
  .addError(Unauthenticated, { status: 401 })
  .addError(InvalidObjectKey, { status: 422 })
  .addError(ServiceUnavailable, { status: 503 })
  .addError(StorageMisconfigured, { status: 500 })
  .annotateContext(OpenApi.annotations({
    title: "Direct uploads",
    description: "Signed URLs for sending the bytes straight to the storage; the server keeps the bookkeeping"
  }))
{}

/**
 * An API with the storage group, the direct-upload group, Uppy's Companion
 * S3 routes and browser sessions.
 *
 * @since 0.1.0
 * @category api
 */
export class DirectStorageApi extends HttpApi.make("storage")
  .add(StorageApiGroup)
  .add(DirectApiGroup)
  .add(CompanionApiGroup)
  .add(SessionApiGroup)
  .annotate(OpenApi.Title, "effect-storage")
{}
