/**
 * The handlers of `DirectApiGroup`.
 *
 * An app that adds the group to its own API builds them with
 * `HttpApiBuilder.group(MyApi, "direct", DirectHandlers.make)`.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DirectUploads } from "../layers/DirectUploads.js"
import type { Authentication } from "./Authentication.js"
import { CurrentPrincipal } from "./Authentication.js"
import { type DirectApiGroup, DirectStorageApi } from "./DirectApi.js"
import * as RequestBody from "./RequestBody.js"
import * as StorageHandlers from "./StorageHandlers.js"

/**
 * The direct group's handlers, for `HttpApiBuilder.group(api, "direct",
 * make)` on any API that contains `DirectApiGroup`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E, Provides>(
  handlers: HttpApiBuilder.Handlers<
    E | HttpApiGroup.HttpApiGroup.Error<typeof DirectApiGroup>,
    Provides,
    never,
    HttpApiGroup.HttpApiGroup.Endpoints<typeof DirectApiGroup>
  >
) =>
  Effect.gen(function*() {
    const direct = yield* DirectUploads
    const body = yield* RequestBody.RequestBody
    const unavailableOnOutage = StorageHandlers.unavailableOnOutage
    return handlers
      .handle("openDirect", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          direct.open({ principal, ...payload })).pipe(
            unavailableOnOutage
          ))
      .handle("signPart", ({ path }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          direct.signPart({ principal, claimId: path.claimId, partNumber: path.partNumber })).pipe(
            Effect.map((signed) => ({ ...signed, method: "PUT" as const })),
            unavailableOnOutage
          ))
      .handle("signParts", ({ path, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          direct.signParts({ principal, claimId: path.claimId, partNumbers: payload.partNumbers })).pipe(
            Effect.map((parts) => ({ parts: parts.map((signed) => ({ ...signed, method: "PUT" as const })) })),
            unavailableOnOutage
          ))
      .handle("listStoredParts", ({ path }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          direct.listParts({ principal, claimId: path.claimId })).pipe(
            Effect.map((parts) => ({ parts })),
            unavailableOnOutage
          ))
      .handle("completeDirect", ({ path }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          direct.complete({ principal, claimId: path.claimId })).pipe(
            unavailableOnOutage
          ))
      .handleRaw("putSignedPart", ({ path, request, urlParams }) =>
        direct.putSignedPart({
          claimId: path.claimId,
          partNumber: path.partNumber,
          size: urlParams.size,
          expires: urlParams.expires,
          signature: urlParams.signature,
          contentLength: contentLength(request),
          body: body.stream(request)
        }).pipe(
          // The part's ETag as a header too, as S3 answers it (clients read it there).
          Effect.flatMap((part) =>
            HttpServerResponse.json(part).pipe(
              Effect.orDie,
              Effect.map(HttpServerResponse.setHeader("etag", `"${part.etag}"`))
            )
          ),
          unavailableOnOutage
        ))
  })

/**
 * The handlers of `DirectStorageApi`'s direct group, reading bodies with
 * `RequestBody.layerNode`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  HttpApiGroup.ApiGroup<"storage", "direct">,
  never,
  DirectUploads | Authentication
> = HttpApiBuilder.group(DirectStorageApi, "direct", make).pipe(Layer.provide(RequestBody.layerNode))

// ---- internal ----

const contentLength = (request: HttpServerRequest.HttpServerRequest): number | undefined => {
  const header = request.headers["content-length"]
  if (header === undefined || !/^\d+$/.test(header)) return undefined
  return Number(header)
}
