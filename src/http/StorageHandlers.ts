/**
 * The handlers of `StorageApiGroup`.
 *
 * @since 0.1.0
 */
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeStream from "@effect/platform-node/NodeStream"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Readable } from "node:stream"
import { isSqlError } from "../internal/transaction.js"
import { Uploads } from "../layers/Uploads.js"
import {
  type ClaimAlreadyExists,
  RequestBodyError,
  ServiceUnavailable,
  type StorageBackendError
} from "../schema/Errors.js"
import { ObjectStorage } from "../services/ObjectStorage.js"
import { CurrentPrincipal, TokenResolver } from "./Authentication.js"
import { download } from "./Download.js"
import { FileAcl } from "./FileAcl.js"
import { StorageApi } from "./StorageApi.js"

/**
 * What the handlers need.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements = Uploads | ObjectStorage | FileAcl | TokenResolver

/**
 * The handlers of the storage group for an API that includes
 * `StorageApiGroup` (e.g. `HttpApi.make("app").add(StorageApiGroup).add(...)`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFor = <ApiId extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, E, R>(
  api: HttpApi.HttpApi<ApiId, Groups, E, R>
): Layer.Layer<HttpApiGroup.ApiGroup<ApiId, "storage">, never, Requirements> =>
  // The group is looked up by name, so the storage group's handlers serve
  // any API that contains it.
  HttpApiBuilder.group(api as unknown as typeof StorageApi, "storage", (handlers) =>
    Effect.gen(function*() {
      const uploads = yield* Uploads
      const context = yield* Effect.context<ObjectStorage | FileAcl | TokenResolver>()
      return handlers
        .handle("initUpload", ({ payload }) =>
          Effect.flatMap(CurrentPrincipal, (principal) => uploads.initUpload({ principal, ...payload })).pipe(
            Effect.map((ticket) => ({ ...ticket })),
            unavailableOnOutage
          ))
        .handleRaw("uploadPart", ({ path, request }) =>
          Effect.gen(function*() {
            const principal = yield* CurrentPrincipal
            const part = yield* uploads.uploadPart({
              principal,
              claimId: path.claimId,
              partNumber: path.partNumber,
              body: requestBody(request),
              size: contentLength(request)
            })
            return HttpServerResponse.unsafeJson(part)
          }).pipe(unavailableOnOutage))
        .handle("listParts", ({ path }) =>
          Effect.flatMap(CurrentPrincipal, (principal) => uploads.listParts({ principal, claimId: path.claimId })).pipe(
            Effect.map((parts) => ({ parts })),
            unavailableOnOutage
          ))
        .handle("completeUpload", ({ path }) =>
          Effect.flatMap(CurrentPrincipal, (principal) => uploads.completeUpload({ principal, claimId: path.claimId }))
            .pipe(
              Effect.map((done) => ({
                key: done.key,
                size: done.size,
                eTag: done.eTag,
                contentType: done.contentType,
                originalFilename: done.originalFilename
              })),
              unavailableOnOutage
            ))
        .handle("abortUpload", ({ path }) =>
          Effect.flatMap(CurrentPrincipal, (principal) => uploads.abortUpload({ principal, claimId: path.claimId })).pipe(
            unavailableOnOutage
          ))
        .handleRaw("download", ({ request }) => download(request).pipe(Effect.provide(context), unavailableOnOutage))
    })) as never

/**
 * The handlers for `StorageApi` (the storage group alone).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<HttpApiGroup.ApiGroup<"storage", "storage">, never, Requirements> = layerFor(
  StorageApi
)

/**
 * Turns infrastructure failures into a clean 503, logged with their cause.
 * That includes a `SqlError` raised as a defect: @effect/sql dies when a
 * transaction's COMMIT or ROLLBACK fails, which is what a connection lost
 * mid-transaction (a database restart) looks like.
 *
 * @since 0.1.0
 * @category errors
 */
export const unavailableOnOutage = <A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, Outage> | ServiceUnavailable, R> =>
  Effect.catchAll(effect, (error): Effect.Effect<never, Exclude<E, Outage> | ServiceUnavailable> => {
    switch (error._tag) {
      case "SqlError":
      case "StorageBackendError":
      case "ClaimAlreadyExists":
        return unavailable(error)
      default:
        return Effect.fail(error as Exclude<E, Outage>)
    }
  }).pipe(
    Effect.catchSomeDefect((defect) =>
      isSqlError(defect) ? Option.some(unavailable(defect)) : Option.none()
    )
  )

type Outage = SqlError | StorageBackendError | ClaimAlreadyExists

// ---- internal ----

const unavailable = (cause: unknown) =>
  Effect.zipRight(
    Effect.logError("storage request failed on an unavailable dependency", cause),
    Effect.fail(new ServiceUnavailable())
  )

/**
 * The request body as a stream. On Node it is read without destroying the
 * request when the stream stops early (a part longer than its size is cut
 * off): destroying the request destroys its socket, and the error answer
 * (413) would never reach the client. The unread rest is left paused, and
 * the server's request timeout closes the connection if the client goes on.
 */
const requestBody = (request: HttpServerRequest.HttpServerRequest): Stream.Stream<Uint8Array, RequestBodyError> =>
  request.source instanceof Readable
    ? NodeStream.fromReadable(() => request.source as Readable, () => new RequestBodyError(), { closeOnDone: false })
    : request.stream.pipe(Stream.mapError(() => new RequestBodyError()))

const contentLength = (request: HttpServerRequest.HttpServerRequest): number | undefined => {
  const header = request.headers["content-length"]
  if (header === undefined || !/^\d+$/.test(header)) return undefined
  return Number(header)
}
