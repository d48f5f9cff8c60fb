/**
 * Uppy's Companion S3 routes, so that `@uppy/aws-s3` (6.x) in its
 * `companionEndpoint` mode uploads straight to the storage, unchanged, with
 * the server keeping the bookkeeping. Point the plugin at
 * `companionEndpoint: "<origin>/storage/companion"`; the routes are:
 *
 * | method and path | does |
 * |---|---|
 * | GET /storage/companion/s3/params?filename&type&metadata[size] | a form upload (S3 POST policy) for a small file: `{ method, url, fields }` |
 * | POST /storage/companion/s3/multipart `{ filename, type, metadata }` | open a direct upload: `{ uploadId, key }` |
 * | GET /storage/companion/s3/multipart/{uploadId}/{partNumber}?key | a signed part URL: `{ url }` |
 * | GET /storage/companion/s3/multipart/{uploadId}?key | the stored parts: `[{ PartNumber, ETag, Size }]` |
 * | POST /storage/companion/s3/multipart/{uploadId}/complete?key | check and assemble: `{ location, key }` |
 * | DELETE /storage/companion/s3/multipart/{uploadId}?key | abort |
 * | GET /storage/companion/settings | `{ partSize, formUploads }`: what the page configures the plugin with |
 *
 * The `uploadId` the plugin sees is the claim id, never the storage's own.
 * The plugin sends no custom headers, so these routes take the session
 * cookie as well as a bearer token (`SessionAuthentication`). Its create
 * call carries no size: the page puts the file's size in its metadata
 * (`metadata.size`), and the signed part sizes and the checks at complete
 * keep it honest. The page sets the plugin's chunk size to `partSize`
 * (which must be at least the plugin's 5 MiB minimum).
 *
 * @since 0.1.0
 */
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
  InvalidUploadSize,
  MultipartNotSupported,
  ObjectNotFound,
  PartETagMismatch,
  PartNumberOutOfRange,
  PartsIncomplete,
  PartTooLarge,
  PartTooSmall,
  PublicUploadsNotAllowed,
  ServiceUnavailable,
  StorageMisconfigured,
  TooManyParts,
  TooManyPendingUploads,
  Unauthenticated,
  UploadNotStored,
  UploadSessionNotFound,
  UploadSizeMismatch,
  UploadTooLarge
} from "../schema/Errors.js"
import { SessionAuthentication } from "./Sessions.js"

const uploadId = HttpApiSchema.param("uploadId", Schema.String)
const partNumber = HttpApiSchema.param("partNumber", Schema.NumberFromString)

/**
 * The `?key=` every multipart route carries: the claim's key.
 *
 * @since 0.1.0
 * @category schemas
 */
export const KeyParams = Schema.Struct({ key: Schema.String })

/**
 * `GET /s3/params` query: the name, the type and the metadata fields
 * (`metadata[size]` is the file's size).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ParamsQuery = Schema.Struct({
  filename: Schema.String.pipe(Schema.maxLength(1024)),
  type: Schema.optional(Schema.String.pipe(Schema.maxLength(127))),
  "metadata[size]": Schema.optional(Schema.String)
})

/**
 * `POST /s3/multipart` body.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CreateMultipartRequest = Schema.Struct({
  filename: Schema.String.pipe(Schema.maxLength(1024)),
  type: Schema.optional(Schema.String.pipe(Schema.maxLength(127))),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})

/**
 * The Companion S3 routes.
 *
 * @since 0.1.0
 * @category api
 */
export class CompanionApiGroup extends HttpApiGroup.make("companion")
  .add(
    HttpApiEndpoint.get("settings", "/storage/companion/settings")
      .addSuccess(Schema.Struct({ partSize: Schema.Number, formUploads: Schema.Boolean }))
      .annotate(OpenApi.Summary, "What a page configures @uppy/aws-s3 with: the part size, whether form uploads work")
  )
  .add(
    HttpApiEndpoint.get("params", "/storage/companion/s3/params")
      .setUrlParams(ParamsQuery)
      .addSuccess(Schema.Struct({
        method: Schema.Literal("POST"),
        url: Schema.String,
        fields: Schema.Record({ key: Schema.String, value: Schema.String }),
        expires: Schema.Number
      }))
      .addError(InvalidUploadSize, { status: 422 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(PublicUploadsNotAllowed, { status: 422 })
      .addError(TooManyParts, { status: 422 })
      .addError(InvalidFilename, { status: 422 })
      .addError(TooManyPendingUploads, { status: 429 })
      .annotate(OpenApi.Summary, "Companion: a signed form upload (POST policy) of exactly the file's size")
  )
  .add(
    HttpApiEndpoint.post("createMultipart", "/storage/companion/s3/multipart")
      .setPayload(CreateMultipartRequest)
      .addSuccess(Schema.Struct({ uploadId: Schema.String, key: Schema.String }))
      .addError(InvalidUploadSize, { status: 422 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(MultipartNotSupported, { status: 422 })
      .addError(PublicUploadsNotAllowed, { status: 422 })
      .addError(TooManyParts, { status: 422 })
      .addError(InvalidFilename, { status: 422 })
      .addError(TooManyPendingUploads, { status: 429 })
      .annotate(OpenApi.Summary, "Companion: open a direct multipart upload (the size comes in metadata.size)")
  )
  .add(
    HttpApiEndpoint.get("signPart")`/storage/companion/s3/multipart/${uploadId}/${partNumber}`
      .setUrlParams(KeyParams)
      .addSuccess(Schema.Struct({
        url: Schema.String,
        headers: Schema.Record({ key: Schema.String, value: Schema.String }),
        expires: Schema.Number
      }))
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(PartNumberOutOfRange, { status: 422 })
      .addError(UploadSessionNotFound, { status: 422 })
      .annotate(OpenApi.Summary, "Companion: a part URL signed for the part's exact size")
  )
  .add(
    HttpApiEndpoint.get("listParts")`/storage/companion/s3/multipart/${uploadId}`
      .setUrlParams(KeyParams)
      .addSuccess(Schema.Array(Schema.Struct({ PartNumber: Schema.Number, ETag: Schema.String, Size: Schema.Number })))
      .addError(ClaimNotPending, { status: 409 })
      .addError(ClaimExpired, { status: 410 })
      .addError(UploadTooLarge, { status: 413 })
      .addError(UploadSessionNotFound, { status: 422 })
      .addError(MultipartNotSupported, { status: 422 })
      .annotate(OpenApi.Summary, "Companion: the parts the storage holds")
  )
  .add(
    HttpApiEndpoint.post("completeMultipart")`/storage/companion/s3/multipart/${uploadId}/complete`
      .setUrlParams(KeyParams)
      .setPayload(Schema.Struct({ parts: Schema.optional(Schema.Array(Schema.Unknown)) }))
      .addSuccess(Schema.Struct({ location: Schema.String, key: Schema.String }))
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
      .annotate(
        OpenApi.Summary,
        "Companion: check the stored parts and assemble (the client's part list is ignored: ETags come from the storage)"
      )
  )
  .add(
    HttpApiEndpoint.del("abortMultipart")`/storage/companion/s3/multipart/${uploadId}`
      .setUrlParams(KeyParams)
      .addSuccess(Schema.Struct({}))
      .annotate(OpenApi.Summary, "Companion: abort (idempotent)")
  )
  .middleware(SessionAuthentication)
  .addError(AccessDenied, { status: 403 })
  .addError(Unauthenticated, { status: 401 })
  .addError(InvalidObjectKey, { status: 422 })
  .addError(ServiceUnavailable, { status: 503 })
  .addError(StorageMisconfigured, { status: 500 })
  .annotateContext(OpenApi.annotations({
    title: "Companion S3 routes",
    description: "Uppy's @uppy/aws-s3 plugin (companionEndpoint mode) uploading straight to the storage"
  }))
{}
