/**
 * The handlers of `StorageApiGroup`.
 *
 * An app that adds the group to its own API builds them with
 * `HttpApiBuilder.group(MyApi, "storage", StorageHandlers.make)`; an app
 * serving the storage API alone uses `StorageHandlers.layer`.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { isSqlError } from "../internal/transaction.js"
import { backendMisconfigured } from "../layers/StorageMetrics.js"
import { Uploads } from "../layers/Uploads.js"
import {
  type ClaimAlreadyExists,
  InvalidUploadSize,
  isMisconfiguration,
  ServiceUnavailable,
  type StorageBackendError,
  StorageMisconfigured
} from "../schema/Errors.js"
import { checkKey } from "../schema/Naming.js"
import type { ClaimStore } from "../services/ClaimStore.js"
import type { ObjectStorage } from "../services/ObjectStorage.js"
import { type Authentication, CurrentPrincipal, type TokenResolver } from "./Authentication.js"
import { download } from "./Download.js"
import { DownloadLinks } from "./DownloadLinks.js"
import { type FileAcl, requireRead } from "./FileAcl.js"
import * as RequestBody from "./RequestBody.js"
import { StorageApi, type StorageApiGroup } from "./StorageApi.js"

/**
 * What the handlers need.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements =
  | Uploads
  | ClaimStore
  | ObjectStorage
  | FileAcl
  | TokenResolver
  | DownloadLinks
  | RequestBody.RequestBody

/**
 * The storage group's handlers, for `HttpApiBuilder.group(api, "storage",
 * make)` on any API that contains `StorageApiGroup`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E, Provides>(
  handlers: HttpApiBuilder.Handlers<
    E | HttpApiGroup.HttpApiGroup.Error<typeof StorageApiGroup>,
    Provides,
    never,
    HttpApiGroup.HttpApiGroup.Endpoints<typeof StorageApiGroup>
  >
) =>
  Effect.gen(function*() {
    const uploads = yield* Uploads
    const body = yield* RequestBody.RequestBody
    const context = yield* Effect.context<ClaimStore | ObjectStorage | FileAcl | TokenResolver | DownloadLinks>()
    const links = yield* DownloadLinks
    return handlers
      .handle("initUpload", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          uploads.initUpload({ principal, ...payload })).pipe(
            unavailableOnOutage
          ))
      .handleRaw("uploadPart", ({ path, request }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const part = yield* uploads.uploadPart({
            principal,
            claimId: path.claimId,
            partNumber: path.partNumber,
            body: body.stream(request),
            size: contentLength(request)
          })
          return part
        }).pipe(unavailableOnOutage))
      .handle("listParts", ({ path }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          uploads.listParts({ principal, claimId: path.claimId })).pipe(
            Effect.map((parts) => ({ parts })),
            unavailableOnOutage
          ))
      .handle("completeUpload", ({ path }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          uploads.completeUpload({ principal, claimId: path.claimId }))
          .pipe(unavailableOnOutage))
      .handle("abortUpload", ({ path }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          uploads.abortUpload({ principal, claimId: path.claimId })).pipe(
            unavailableOnOutage
          ))
      .handle("createLink", ({ payload }) =>
        Effect.gen(function*() {
          yield* checkKey(payload.key)
          yield* requireRead(yield* CurrentPrincipal, payload.key)
          return yield* links.sign(payload.key)
        }).pipe(unavailableOnOutage))
      .handleRaw("uploadFile", ({ request, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const size = contentLength(request)
          if (size === undefined) {
            return yield* new InvalidUploadSize({ message: "send the file's size as Content-Length" })
          }
          return yield* uploads.uploadFile({
            principal,
            filename: urlParams.filename,
            public: urlParams.public,
            contentType: givenContentType(request),
            size,
            body: body.stream(request)
          })
        }).pipe(unavailableOnOutage))
      .handleRaw("download", ({ request }) =>
        download(request).pipe(Effect.provide(context), unavailableOnOutage))
  })

/**
 * The handlers for `StorageApi` (the storage group alone), reading bodies
 * with `RequestBody.layerNode`. Provide `Authentication.layer` beside it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  HttpApiGroup.ApiGroup<"storage", "storage">,
  never,
  Exclude<Requirements, RequestBody.RequestBody> | Authentication
> = HttpApiBuilder.group(StorageApi, "storage", make).pipe(Layer.provide(RequestBody.layerNode))

/**
 * Turns infrastructure failures into a clean 503, logged with their cause.
 * That includes a `SqlError` raised as a defect: @effect/sql dies when a
 * transaction's COMMIT or ROLLBACK fails, which is what a connection lost
 * mid-transaction (a database restart) looks like. A backend that refuses
 * the credentials or has no bucket is no outage (retrying later will not
 * help): it answers `StorageMisconfigured` (500), with a log line for the
 * operator and `storage_backend_misconfigured_total`.
 *
 * @since 0.1.0
 * @category errors
 */
export const unavailableOnOutage = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, Outage> | ServiceUnavailable | StorageMisconfigured, R> =>
  Effect.catchIf(
    effect,
    isOutage<E>,
    (error): Effect.Effect<never, ServiceUnavailable | StorageMisconfigured> =>
      isMisconfiguration(error) ? misconfigured(error) : unavailable(error)
  ).pipe(
    Effect.catchSomeDefect((defect) => isSqlError(defect) ? Option.some(unavailable(defect)) : Option.none())
  )

/**
 * The failures that mean a dependency is unavailable.
 *
 * @since 0.1.0
 * @category errors
 */
export type Outage = SqlError | StorageBackendError | ClaimAlreadyExists

// ---- internal ----

const outageTags: ReadonlySet<string> = new Set(["SqlError", "StorageBackendError", "ClaimAlreadyExists"])

const isOutage = <E>(error: E | Outage): error is Outage =>
  typeof error === "object" && error !== null && "_tag" in error && outageTags.has(String(error._tag))

const unavailable = (cause: unknown) =>
  Effect.zipRight(
    Effect.logError("storage request failed on an unavailable dependency", cause),
    Effect.fail(new ServiceUnavailable())
  )

/** What an operator should check, by reason. */
const misconfigurationHints = {
  access_denied: "the backend refuses this server's credentials or denies it access: check the access key and " +
    "secret (S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY), the bucket's policy, or the storage folder's permissions",
  bucket_not_found: "the bucket does not exist: check S3_BUCKET and S3_ENDPOINT, or create it " +
    "(S3_CREATE_BUCKET=true)"
} as const

const misconfigured = (error: StorageBackendError & { readonly reason: "access_denied" | "bucket_not_found" }) =>
  Effect.logError(`storage backend misconfigured: ${misconfigurationHints[error.reason]} (${error.message})`).pipe(
    Effect.annotateLogs({ operation: error.operation, reason: error.reason }),
    Effect.zipRight(
      Metric.increment(
        Metric.tagged(Metric.tagged(backendMisconfigured, "reason", error.reason), "operation", error.operation)
      )
    ),
    Effect.zipRight(Effect.fail(new StorageMisconfigured({ reason: error.reason })))
  )

/** The request's content type, unless it is the generic one (then the filename decides). */
const givenContentType = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const header = request.headers["content-type"]
  return header === undefined || /^application\/octet-stream\b/i.test(header) ? undefined : header
}

const contentLength = (request: HttpServerRequest.HttpServerRequest): number | undefined => {
  const header = request.headers["content-length"]
  if (header === undefined || !/^\d+$/.test(header)) return undefined
  return Number(header)
}
