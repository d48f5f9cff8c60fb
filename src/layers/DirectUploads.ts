/**
 * Direct uploads: the client sends the bytes straight to the storage, and
 * the app server keeps the bookkeeping (claims, owners, caps, adoption,
 * deletion) and signs.
 *
 * Nothing is trusted from the client but bytes, as in the proxied flow:
 * - each part URL is signed for one part of one claim at its exact size (on
 *   S3 the `Content-Length` is part of the signature, so the storage itself
 *   refuses any other size; on the embedded backends the URL is the app
 *   server's own part endpoint with an HMAC signature, see
 *   `DirectUploadSigner`);
 * - listing and completion read the parts from the storage, never from the
 *   client or the SQL part rows: complete checks parts 1..N, every size, and
 *   assembles with the ETags the storage reports, then records exactly as
 *   the proxied complete does;
 * - a form upload (one request, S3 POST policy) pins the key, the content
 *   type and the exact size; it has no complete call of its own, so the
 *   claim is checked against the storage (`settle`) before anything adopts
 *   it.
 *
 * Abort, the sweeper, reconciliation and the metrics are the proxied flow's.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import {
  AccessDenied,
  ClaimExpired,
  ClaimNotPending,
  type InvalidObjectKey,
  MultipartNotSupported,
  type ObjectNotFound,
  PartNumberOutOfRange,
  PartsIncomplete,
  PartTooLarge,
  PartTooSmall,
  type StorageBackendError,
  UploadNotStored,
  UploadSessionNotFound
} from "../schema/Errors.js"
import type { Principal, UploadClaim } from "../schema/Models.js"
import { originalFilenameMetadata } from "../schema/Naming.js"
import { ClaimStore } from "../services/ClaimStore.js"
import {
  type Body,
  type Multipart,
  ObjectStorage,
  type PartInfo,
  type PresignedPost,
  type PresignedRequest
} from "../services/ObjectStorage.js"
import { DirectUploadSigner } from "./DirectUploadSigner.js"
import * as StorageMetrics from "./StorageMetrics.js"
import { type CompletedUpload, expectedPartSize, Uploads, type UploadTicket } from "./Uploads.js"

/**
 * A signed part: where to `PUT` it, with which headers, until when.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignedPartRequest extends PresignedRequest {
  readonly partNumber: number
  readonly size: number
}

/**
 * A form upload's ticket: the claim and the signed form.
 *
 * @since 0.1.0
 * @category models
 */
export interface FormUploadTicket {
  readonly ticket: UploadTicket
  readonly form: PresignedPost
}

/**
 * The most part URLs one `signParts` call signs.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxSignedPerRequest = 100

/**
 * The direct-upload flow.
 *
 * @since 0.1.0
 * @category services
 */
export class DirectUploads extends Effect.Service<DirectUploads>()("effect-storage/DirectUploads", {
  effect: Effect.gen(function*() {
    const uploads = yield* Uploads
    const objects = yield* ObjectStorage
    const claims = yield* ClaimStore
    const signer = yield* DirectUploadSigner

    const requireMultipart: Effect.Effect<Multipart, MultipartNotSupported> = Option.match(objects.multipart, {
      onNone: () => Effect.fail(new MultipartNotSupported()),
      onSome: Effect.succeed
    })

    /** A claim with an open session of its own (opened by `open`). */
    const requireSession = (claim: UploadClaim) =>
      claim.isMultipart
        ? Effect.void
        : Effect.fail(new UploadSessionNotFound({ message: "this upload has no multipart session (a form upload)" }))

    /**
     * Opens a direct upload: a claim with a multipart session, even for one
     * part, so every part goes straight to the storage.
     */
    const open = Effect.fn("DirectUploads.open")(function*(input: {
      readonly principal: Principal
      readonly filename: string
      readonly size: number
      readonly contentType?: string | undefined
      readonly public?: boolean | undefined
    }) {
      return yield* uploads.initUpload({ ...input, layout: "multipart" })
    })

    /** Signs part `partNumber` of an active claim of the caller's. */
    const signFor = (claim: UploadClaim, partNumber: number) =>
      Effect.gen(function*() {
        if (!Number.isSafeInteger(partNumber) || partNumber < 1 || partNumber > claim.partCount) {
          return yield* new PartNumberOutOfRange({
            message: `part numbers of this upload are 1..${claim.partCount}, got ${partNumber}`
          })
        }
        const size = expectedPartSize(claim, partNumber)
        const request = yield* Option.match(objects.presign, {
          onSome: (presigner) =>
            presigner.uploadPart({
              key: claim.key,
              uploadId: claim.uploadId,
              partNumber,
              size,
              expiresIn: signer.ttl
            }),
          onNone: () =>
            Effect.map(
              signer.sign({ claimId: claim.id, partNumber, size }),
              ({ expiresAt, url }): PresignedRequest => ({
                method: "PUT",
                url,
                headers: { "content-length": String(size) },
                expiresAt
              })
            )
        })
        return { ...request, partNumber, size } satisfies SignedPartRequest
      })

    /** A URL for part `partNumber`, signed for its exact size. */
    const signPart = Effect.fn("DirectUploads.signPart")(function*(input: {
      readonly principal: Principal
      readonly claimId: string
      readonly partNumber: number
    }) {
      const claim = yield* uploads.activeClaim(input.principal, input.claimId)
      yield* requireSession(claim)
      return yield* signFor(claim, input.partNumber)
    })

    /**
     * URLs for several parts at once (each signed for its own part and
     * size), so a client sending many parts asks once per batch instead of
     * once per part. At most `maxSignedPerRequest`.
     */
    const signParts = Effect.fn("DirectUploads.signParts")(function*(input: {
      readonly principal: Principal
      readonly claimId: string
      readonly partNumbers: ReadonlyArray<number>
    }) {
      if (input.partNumbers.length === 0 || input.partNumbers.length > maxSignedPerRequest) {
        return yield* new PartNumberOutOfRange({
          message: `ask for 1 to ${maxSignedPerRequest} parts at once, not ${input.partNumbers.length}`
        })
      }
      const claim = yield* uploads.activeClaim(input.principal, input.claimId)
      yield* requireSession(claim)
      return yield* Effect.forEach(new Set(input.partNumbers), (partNumber) => signFor(claim, partNumber))
    })

    /** The parts the storage holds for the claim's session (to resume). */
    const listParts = Effect.fn("DirectUploads.listParts")(function*(input: {
      readonly principal: Principal
      readonly claimId: string
    }) {
      const claim = yield* uploads.activeClaim(input.principal, input.claimId)
      yield* requireSession(claim)
      const multipart = yield* requireMultipart
      return yield* multipart.listParts({ key: claim.key, uploadId: claim.uploadId })
    })

    /**
     * Assembles the parts the storage holds, after checking them against the
     * claim, and records the upload. Idempotent: a retry after success
     * answers the same object.
     */
    const complete = Effect.fn("DirectUploads.complete")(function*(input: {
      readonly principal: Principal
      readonly claimId: string
    }) {
      const claim = yield* uploads.ownedClaim(input.principal, input.claimId)
      if (claim.isUploaded) return yield* completedObject(claim)
      if (DateTime.lessThan(claim.expiresAt, yield* DateTime.now)) return yield* new ClaimExpired()
      if (claim.isSingleRequest) return yield* settleClaim(claim)
      yield* requireSession(claim)
      const multipart = yield* requireMultipart
      const session = { key: claim.key, uploadId: claim.uploadId }
      // No session: a concurrent complete may have recorded the upload already.
      const listed = yield* multipart.listParts(session).pipe(
        Effect.map(Either.right),
        Effect.catchTag(
          "UploadSessionNotFound",
          (error) => Effect.map(alreadyCompleted(input.principal, claim, error), Either.left)
        )
      )
      if (Either.isLeft(listed)) return listed.left
      const stored = listed.right
      yield* checkStoredParts(claim, stored)
      return yield* multipart.completeMultipart({
        ...session,
        parts: stored.map(({ etag, partNumber }) => ({ partNumber, etag })),
        listed: stored
      }).pipe(
        // A concurrent complete closed the session: the object is there if it succeeded.
        Effect.catchTag(
          "UploadSessionNotFound",
          (error) => objects.statObject(claim.key).pipe(Effect.catchTag("ObjectNotFound", () => Effect.fail(error)))
        ),
        Effect.flatMap((info) => uploads.recordStored(claim, info)),
        Effect.uninterruptible
      )
    })

    /** The session is gone: fine if a concurrent complete recorded the upload. */
    const alreadyCompleted = (principal: Principal, claim: UploadClaim, error: UploadSessionNotFound) =>
      Effect.flatMap(uploads.ownedClaim(principal, claim.id), (current) =>
        current.isUploaded
          ? completedObject(current)
          : Effect.fail<UploadSessionNotFound | ObjectNotFound | InvalidObjectKey | StorageBackendError>(error))

    const completedObject = (claim: UploadClaim) =>
      Effect.map(
        objects.statObject(claim.key),
        (info): CompletedUpload => ({ ...info, originalFilename: claim.originalFilename })
      )

    /**
     * A claim whose object was stored whole by the client (a form upload):
     * recorded once the storage holds it at the declared size.
     */
    const settleClaim = (claim: UploadClaim) =>
      objects.statObject(claim.key).pipe(
        Effect.catchTag("ObjectNotFound", () =>
          Effect.fail(new UploadNotStored({ message: "the storage holds no object for this upload yet" }))),
        Effect.flatMap((info) =>
          uploads.recordStored(claim, info)
        )
      )

    /**
     * A form upload: a claim of one part, and a signed form for exactly its
     * key, size and content type. The backend must sign forms itself (S3).
     */
    const openForm = Effect.fn("DirectUploads.openForm")(function*(input: {
      readonly principal: Principal
      readonly filename: string
      readonly size: number
      readonly contentType?: string | undefined
      readonly public?: boolean | undefined
    }) {
      const presigner = yield* Option.match(objects.presign, {
        onNone: () =>
          Effect.fail(new MultipartNotSupported({ message: "this backend takes no form uploads; upload in parts" })),
        onSome: Effect.succeed
      })
      const ticket = yield* uploads.initUpload({ ...input, layout: "single" })
      const claim = yield* claims.get(ticket.claimId).pipe(
        Effect.catchTag("ClaimNotFound", () => Effect.fail(new AccessDenied()))
      )
      const form = yield* presigner.postObject({
        key: claim.key,
        size: claim.size,
        contentType: claim.contentType,
        metadata: { [originalFilenameMetadata]: encodeURIComponent(claim.originalFilename) },
        expiresIn: signer.ttl
      }).pipe(
        Effect.tapError(() => Effect.ignore(uploads.abortUpload({ principal: input.principal, claimId: claim.id })))
      )
      return { ticket, form } satisfies FormUploadTicket
    })

    /**
     * Records the principal's pending form uploads among `keys` whose object
     * the storage holds at the declared size, so that they can be adopted.
     * Keys of other uploads, or of no upload, are left alone (adoption then
     * decides). Run it before `Files.onCreate` and friends.
     */
    const settle = Effect.fn("DirectUploads.settle")(function*(principal: Principal, keys: Iterable<string>) {
      yield* Effect.forEach(new Set(keys), (key) =>
        claims.getByKey(key).pipe(
          Effect.option,
          Effect.flatMap((found) => {
            const claim = Option.getOrUndefined(found)
            if (
              claim === undefined || claim.status !== "pending" || !claim.isSingleRequest ||
              claim.createdBy !== principal.id
            ) return Effect.void
            // Not stored (yet), or stored at another size (then deleted): it stays unadoptable.
            return settleClaim(claim).pipe(
              Effect.asVoid,
              Effect.catchTags({
                UploadNotStored: () => Effect.void,
                UploadSizeMismatch: () => Effect.void,
                // Lost a race to the owner's abort or the sweeper: adoption will find nothing.
                ClaimNotPending: () => Effect.void,
                AccessDenied: () => Effect.void,
                InvalidObjectKey: () => Effect.void
              })
            )
          })
        ), { discard: true, concurrency: 4 })
    })

    /**
     * Stores a part sent to the app server's own signed URL (the embedded
     * backends): the signature must name this claim, part and size, and the
     * body must be exactly that size.
     */
    const putSignedPart = Effect.fn("DirectUploads.putSignedPart")(function*<E>(input: {
      readonly claimId: string
      readonly partNumber: number
      readonly size: number
      readonly expires: string | undefined
      readonly signature: string | undefined
      readonly contentLength: number | undefined
      readonly body: Body<E>
    }) {
      yield* signer.verify(
        { claimId: input.claimId, partNumber: input.partNumber, size: input.size },
        { expires: input.expires, signature: input.signature }
      )
      if (input.contentLength === undefined || input.contentLength < input.size) {
        return yield* new PartTooSmall({
          message: `this URL takes exactly ${input.size} bytes, with that Content-Length; got ${
            input.contentLength ?? "none"
          }`
        })
      }
      if (input.contentLength > input.size) {
        return yield* new PartTooLarge({ message: `this URL takes exactly ${input.size} bytes` })
      }
      const claim = yield* claims.get(input.claimId).pipe(
        Effect.catchTag("ClaimNotFound", () => Effect.fail(new AccessDenied()))
      )
      if (claim.status !== "pending") return yield* new ClaimNotPending()
      if (DateTime.lessThan(claim.expiresAt, yield* DateTime.now)) return yield* new ClaimExpired()
      yield* requireSession(claim)
      const multipart = yield* requireMultipart
      const part = yield* multipart.putPart({
        key: claim.key,
        uploadId: claim.uploadId,
        partNumber: input.partNumber,
        body: input.body,
        size: input.size
      })
      yield* Metric.increment(StorageMetrics.partsUploaded)
      yield* Metric.incrementBy(StorageMetrics.bytesUploaded, part.size)
      return part
    })

    return { open, signPart, signParts, listParts, complete, openForm, settle, putSignedPart } as const
  })
}) {}

// ---- internal ----

/**
 * The stored parts must be exactly 1..partCount, each of its exact size
 * (so the total is the declared size).
 */
const checkStoredParts = (claim: UploadClaim, stored: ReadonlyArray<PartInfo>) =>
  Effect.gen(function*() {
    const byNumber = new Map(stored.map((part) => [part.partNumber, part]))
    const extra = stored.filter((part) => part.partNumber < 1 || part.partNumber > claim.partCount)
    if (extra.length > 0) {
      return yield* new PartNumberOutOfRange({
        message: `the storage holds part ${extra[0]!.partNumber}; this upload has parts 1..${claim.partCount}`
      })
    }
    const missing: Array<number> = []
    for (let n = 1; n <= claim.partCount; n++) if (!byNumber.has(n)) missing.push(n)
    if (missing.length > 0) {
      const shown = missing.slice(0, 10).join(", ") + (missing.length > 10 ? ", ..." : "")
      return yield* new PartsIncomplete({
        message: `${claim.partCount - missing.length} of ${claim.partCount} parts uploaded; missing: ${shown}`
      })
    }
    for (const part of stored) {
      const expected = expectedPartSize(claim, part.partNumber)
      if (part.size < expected) {
        return yield* new PartTooSmall({
          message:
            `part ${part.partNumber} of ${claim.partCount} must be ${expected} bytes; the storage holds ${part.size}`
        })
      }
      if (part.size > expected) {
        return yield* new PartTooLarge({
          message:
            `part ${part.partNumber} of ${claim.partCount} must be ${expected} bytes; the storage holds ${part.size}`
        })
      }
    }
  })
