/**
 * The handlers of `CompanionApiGroup`: Companion's S3 routes over
 * `DirectUploads`.
 *
 * An app that adds the group to its own API builds them with
 * `HttpApiBuilder.group(MyApi, "companion", CompanionHandlers.make)`.
 *
 * @since 0.1.0
 */
import type * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { DirectUploads } from "../layers/DirectUploads.js"
import { Uploads } from "../layers/Uploads.js"
import { AccessDenied, InvalidUploadSize } from "../schema/Errors.js"
import type { Principal } from "../schema/Models.js"
import { ObjectStorage } from "../services/ObjectStorage.js"
import { CurrentPrincipal } from "./Authentication.js"
import type { CompanionApiGroup } from "./CompanionApi.js"
import { unavailableOnOutage } from "./StorageHandlers.js"

/**
 * The Companion group's handlers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E, Provides>(
  handlers: HttpApiBuilder.Handlers<
    E | HttpApiGroup.HttpApiGroup.Error<typeof CompanionApiGroup>,
    Provides,
    never,
    HttpApiGroup.HttpApiGroup.Endpoints<typeof CompanionApiGroup>
  >
) =>
  Effect.gen(function*() {
    const direct = yield* DirectUploads
    const uploads = yield* Uploads
    const objects = yield* ObjectStorage

    /** The principal's claim `uploadId`, which must have the object key the client names. */
    const claimOf = (principal: Principal, claimId: string, key: string) =>
      uploads.ownedClaim(principal, claimId).pipe(
        Effect.filterOrFail((claim) => claim.key === key, () => new AccessDenied())
      )

    /** Seconds from now until `at`. */
    const secondsUntil = (at: DateTime.Utc) =>
      Effect.map(DateTime.now, (now) => Math.max(0, Math.round(DateTime.distance(now, at) / 1000)))

    return handlers
      .handle("settings", () =>
        Effect.succeed({
          partSize: Option.match(objects.multipart, { onNone: () => 0, onSome: (m) => m.partSize }),
          formUploads: Option.isSome(objects.presign)
        }))
      .handle("params", ({ urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const size = yield* sizeOf(urlParams["metadata[size]"])
          const { form } = yield* direct.openForm({
            principal,
            filename: urlParams.filename,
            size,
            contentType: urlParams.type
          })
          return {
            method: "POST" as const,
            url: form.url,
            fields: form.fields,
            expires: yield* secondsUntil(form.expiresAt)
          }
        }).pipe(unavailableOnOutage))
      .handle("createMultipart", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const ticket = yield* direct.open({
            principal,
            filename: payload.filename,
            size: yield* sizeOf(payload.metadata?.["size"]),
            contentType: payload.type
          })
          return { uploadId: ticket.claimId, key: ticket.key }
        }).pipe(unavailableOnOutage))
      .handle("signPart", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* claimOf(principal, path.uploadId, urlParams.key)
          const signed = yield* direct.signPart({ principal, claimId: path.uploadId, partNumber: path.partNumber })
          return { url: signed.url, headers: signed.headers, expires: yield* secondsUntil(signed.expiresAt) }
        }).pipe(unavailableOnOutage))
      .handle("listParts", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* claimOf(principal, path.uploadId, urlParams.key)
          const parts = yield* direct.listParts({ principal, claimId: path.uploadId })
          return parts.map((part) => ({ PartNumber: part.partNumber, ETag: `"${part.etag}"`, Size: part.size }))
        }).pipe(unavailableOnOutage))
      .handle("completeMultipart", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* claimOf(principal, path.uploadId, urlParams.key)
          const done = yield* direct.complete({ principal, claimId: path.uploadId })
          return { location: `/storage/files/${done.key.split("/").map(encodeURIComponent).join("/")}`, key: done.key }
        }).pipe(unavailableOnOutage))
      .handle("abortMultipart", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const owned = yield* claimOf(principal, path.uploadId, urlParams.key).pipe(
            Effect.as(true),
            // Already gone (completed and adopted, or aborted): nothing to abort.
            Effect.catchTag("AccessDenied", () => Effect.succeed(false))
          )
          if (owned) yield* uploads.abortUpload({ principal, claimId: path.uploadId })
          return {}
        }).pipe(unavailableOnOutage))
  })

// ---- internal ----

/** The file's size from the metadata the page added (a number, or its decimal text). */
const sizeOf = (value: unknown): Effect.Effect<number, InvalidUploadSize> => {
  const size = typeof value === "number"
    ? value
    : typeof value === "string" && /^\d{1,16}$/.test(value)
    ? Number(value)
    : NaN
  return Number.isSafeInteger(size) && size > 0
    ? Effect.succeed(size)
    : Effect.fail(
      new InvalidUploadSize({ message: "put the file's size in its metadata (metadata.size): the page adds it" })
    )
}
