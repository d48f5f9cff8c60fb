/**
 * The upload flow: init, parts, list, complete, abort; and a small file in
 * one call (`uploadFile`).
 *
 * Every step is recorded in SQL and nothing is trusted from the client but
 * bytes: the server picks the key and the part size, records every part's
 * ETag and assembles the object from those records.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { uuidv7 } from "../internal/uuidv7.js"
import {
  AccessDenied,
  ClaimExpired,
  ClaimNotPending,
  InvalidUploadSize,
  MultipartNotSupported,
  PartNumberOutOfRange,
  PartsIncomplete,
  PartTooLarge,
  PartTooSmall,
  PublicUploadsNotAllowed,
  TooManyParts,
  UploadSessionNotFound,
  UploadSizeMismatch,
  UploadTooLarge
} from "../schema/Errors.js"
import type { ObjectInfo, Principal } from "../schema/Models.js"
import { isAnonymous, PendingDelete, UploadClaim, UploadPart } from "../schema/Models.js"
import { generateKey, originalFilenameMetadata, sanitizeContentType, sanitizeFilename } from "../schema/Naming.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { DeleteQueue } from "../services/DeleteQueue.js"
import { FileRegistry } from "../services/FileRegistry.js"
import { type Body, type Multipart, ObjectStorage } from "../services/ObjectStorage.js"
import { UploadPartStore } from "../services/UploadPartStore.js"
import { retriedTransaction } from "./sql/Dialect.js"
import { StorageConfig } from "./StorageConfig.js"
import * as StorageMetrics from "./StorageMetrics.js"

/**
 * What `initUpload` answers: where to send the parts and how many.
 *
 * @since 0.1.0
 * @category models
 */
export interface UploadTicket {
  readonly claimId: string
  readonly key: string
  readonly originalFilename: string
  readonly partSize: number
  readonly partCount: number
  readonly expiresAt: DateTime.Utc
}

/**
 * A completed upload.
 *
 * @since 0.1.0
 * @category models
 */
export interface CompletedUpload extends ObjectInfo {
  readonly originalFilename: string
}

/**
 * The upload flow, for one principal at a time.
 *
 * @since 0.1.0
 * @category services
 */
export class Uploads extends Effect.Service<Uploads>()("effect-storage/Uploads", {
  effect: Effect.gen(function*() {
    const config = yield* StorageConfig
    const claims = yield* ClaimStore
    const parts = yield* UploadPartStore
    const queue = yield* DeleteQueue
    const registry = yield* FileRegistry
    const objects = yield* ObjectStorage
    const sql = yield* SqlClient.SqlClient
    const transaction = retriedTransaction(sql)

    const requireMultipart: Effect.Effect<Multipart, MultipartNotSupported> = Option.match(objects.multipart, {
      onNone: () => Effect.fail(new MultipartNotSupported()),
      onSome: Effect.succeed
    })

    const checkSizeCap = (size: number) =>
      size > config.maxUploadSize
        ? Effect.fail(
          new UploadTooLarge({ message: `uploads may be at most ${config.maxUploadSize} bytes; this one is ${size}` })
        )
        : Effect.void

    /** The claim, if the principal owns it. Unknown and foreign claims look the same. */
    const ownedClaim = (principal: Principal, claimId: string) =>
      claims.get(claimId).pipe(
        Effect.catchTag("ClaimNotFound", () => Effect.fail(new AccessDenied())),
        Effect.filterOrFail(
          (claim) => !isAnonymous(principal) && claim.createdBy === principal.id,
          () => new AccessDenied()
        )
      )

    /** A pending, unexpired claim of the principal's, whose size is still allowed. */
    const activeClaim = (principal: Principal, claimId: string) =>
      Effect.gen(function*() {
        const claim = yield* ownedClaim(principal, claimId)
        if (claim.status !== "pending") return yield* new ClaimNotPending()
        if (DateTime.lessThan(claim.expiresAt, yield* DateTime.now)) return yield* new ClaimExpired()
        yield* checkSizeCap(claim.size)
        if (!claim.isMultipart && !claim.isSingleRequest) {
          return yield* new UploadSessionNotFound({ message: "the upload was never started; open a new one" })
        }
        return claim
      })

    /** The metadata every stored upload carries: the download proxy names the file with it (backends keep ASCII). */
    const metadataOf = (originalFilename: string) => ({
      [originalFilenameMetadata]: encodeURIComponent(originalFilename)
    })

    const initUpload = Effect.fn("Uploads.initUpload")(function*(input: {
      readonly principal: Principal
      readonly filename: string
      readonly size: number
      readonly contentType?: string | undefined
      readonly public?: boolean | undefined
      /**
       * How the bytes will arrive: `auto` (the default) stores a file of one
       * part with one put and opens a multipart session otherwise;
       * `multipart` always opens a session (direct uploads of parts);
       * `single` makes the whole file one part, sent in one request (a
       * direct form upload).
       */
      readonly layout?: "auto" | "multipart" | "single" | undefined
    }) {
      if (!Number.isSafeInteger(input.size) || input.size < 1) return yield* new InvalidUploadSize()
      yield* checkSizeCap(input.size)
      const multipart = yield* requireMultipart
      const isPublic = input.public === true
      if (isPublic && !config.allowPublicUploads) return yield* new PublicUploadsNotAllowed()
      const layout = input.layout ?? "auto"
      const partSize = layout === "single" ? input.size : multipart.partSize
      const partCount = Math.ceil(input.size / partSize)
      if (multipart.maxPartCount > 0 && partCount > multipart.maxPartCount) {
        return yield* new TooManyParts({
          message:
            `${input.size} bytes need ${partCount} parts of ${partSize}; the backend allows ${multipart.maxPartCount}`
        })
      }
      const originalFilename = yield* sanitizeFilename(input.filename)
      const contentType = sanitizeContentType(input.contentType, originalFilename)
      if (isAnonymous(input.principal)) return yield* new AccessDenied({ message: "sign in to upload" })

      const now = yield* DateTime.now
      const claim = new UploadClaim({
        id: yield* uuidv7,
        createdAt: now,
        createdBy: input.principal.id,
        key: yield* generateKey(originalFilename, isPublic),
        uploadId: "",
        size: input.size,
        contentType,
        originalFilename,
        status: "pending",
        public: isPublic,
        partSize,
        partCount,
        expiresAt: DateTime.addDuration(now, config.claimTtl)
      })

      // The claim row is written before the backend session exists, so a
      // crash leaves a row the sweeper finds; each later failure undoes the
      // earlier steps in reverse. A client that goes away mid-way does not
      // cut this short.
      yield* Effect.uninterruptible(Effect.gen(function*() {
        yield* claims.createWithinCap(claim, config.maxPendingClaims)
        // An upload that fits in one part is stored with one put: no session to open.
        if (claim.isSingleRequest && layout !== "multipart") return
        const session = yield* multipart.initMultipart({
          key: claim.key,
          contentType,
          metadata: metadataOf(originalFilename)
        }).pipe(
          Effect.tapError(() => compensate("delete the claim", claims.deleteIfPending(claim.id)))
        )
        yield* claims.updateUploadId(claim.id, session.uploadId).pipe(
          Effect.tapError(() =>
            Effect.zipRight(
              compensate("abort the session", multipart.abortMultipart({ key: claim.key, uploadId: session.uploadId })),
              compensate("delete the claim", claims.deleteIfPending(claim.id))
            )
          ),
          Effect.catchTag("ClaimNotFound", () => Effect.fail(new AccessDenied()))
        )
      }))
      yield* Metric.increment(StorageMetrics.uploadsStarted)
      return {
        claimId: claim.id,
        key: claim.key,
        originalFilename,
        partSize,
        partCount,
        expiresAt: claim.expiresAt
      } satisfies UploadTicket
    })

    const uploadPart = Effect.fn("Uploads.uploadPart")(function*<E>(input: {
      readonly principal: Principal
      readonly claimId: string
      readonly partNumber: number
      readonly body: Body<E>
      readonly size?: number | undefined
    }) {
      const multipart = yield* requireMultipart
      const claim = yield* activeClaim(input.principal, input.claimId)
      if (!Number.isSafeInteger(input.partNumber) || input.partNumber < 1 || input.partNumber > claim.partCount) {
        return yield* new PartNumberOutOfRange({
          message: `part numbers of this upload are 1..${claim.partCount}, got ${input.partNumber}`
        })
      }
      const expected = expectedPartSize(claim, input.partNumber)
      if (input.size !== undefined) yield* checkPartSize(claim, input.partNumber, input.size, expected)
      const body = exactly(input.body, expected, (seen) => checkPartSize(claim, input.partNumber, seen, expected))
      const stored = claim.isSingleRequest
        ? yield* Effect.map(
          objects.putObject({
            key: claim.key,
            body,
            size: expected,
            contentType: claim.contentType,
            metadata: metadataOf(claim.originalFilename)
          }),
          (info) => ({ etag: info.eTag, size: info.size })
        )
        : yield* multipart.putPart({
          key: claim.key,
          uploadId: claim.uploadId,
          partNumber: input.partNumber,
          body,
          size: expected
        })
      yield* parts.upsert(
        new UploadPart({
          id: yield* uuidv7,
          claimId: claim.id,
          partNumber: input.partNumber,
          etag: stored.etag,
          size: stored.size,
          createdAt: yield* DateTime.now
        })
      ).pipe(Effect.catchTag("ClaimNotFound", () => Effect.fail(new AccessDenied())))
      yield* Metric.increment(StorageMetrics.partsUploaded)
      yield* Metric.incrementBy(StorageMetrics.bytesUploaded, stored.size)
      return { partNumber: input.partNumber, size: stored.size }
    })

    const listParts = Effect.fn("Uploads.listParts")(function*(input: {
      readonly principal: Principal
      readonly claimId: string
    }) {
      const claim = yield* activeClaim(input.principal, input.claimId)
      const recorded = yield* parts.listByClaim(claim.id)
      return recorded.map((part) => ({ partNumber: part.partNumber, size: part.size }))
    })

    const completeUpload = Effect.fn("Uploads.completeUpload")(function*(input: {
      readonly principal: Principal
      readonly claimId: string
    }) {
      const claim = yield* ownedClaim(input.principal, input.claimId)
      // Idempotent: a retry after success answers the same object.
      if (claim.isUploaded) return yield* completedObject(claim)
      if (DateTime.lessThan(claim.expiresAt, yield* DateTime.now)) return yield* new ClaimExpired()
      yield* checkSizeCap(claim.size)
      const multipart = yield* requireMultipart
      if (!claim.isMultipart && !claim.isSingleRequest) {
        return yield* new UploadSessionNotFound({ message: "the upload was never started; open a new one" })
      }
      const recorded = yield* parts.listByClaim(claim.id)
      // Part numbers are unique and within 1..partCount, so the count proves 1..N.
      if (recorded.length !== claim.partCount) {
        // A concurrent complete may have just committed (and removed the part rows).
        const current = yield* ownedClaim(input.principal, input.claimId)
        if (current.isUploaded) return yield* completedObject(current)
        return yield* new PartsIncomplete({ message: `${recorded.length} of ${claim.partCount} parts uploaded` })
      }
      return yield* Effect.uninterruptible(
        claim.isSingleRequest ? record(claim, storedSingle(claim, recorded[0]!)) : assemble(multipart, claim, recorded)
      )
    })

    /**
     * A single-request upload is stored already, whole and of the exact size
     * (`putObject` checked it): its part row says what was stored.
     */
    const storedSingle = (claim: UploadClaim, part: UploadPart): ObjectInfo => ({
      key: claim.key,
      size: part.size,
      eTag: part.etag,
      contentType: claim.contentType,
      lastModified: part.createdAt,
      metadata: metadataOf(claim.originalFilename)
    })

    const assemble = (multipart: Multipart, claim: UploadClaim, recorded: ReadonlyArray<UploadPart>) =>
      Effect.flatMap(
        multipart.completeMultipart({
          key: claim.key,
          uploadId: claim.uploadId,
          parts: recorded.map((part) => ({ partNumber: part.partNumber, etag: part.etag }))
        }).pipe(
          // A concurrent or earlier complete closed the session: the object
          // is there if that complete succeeded.
          Effect.catchTag("UploadSessionNotFound", (error) =>
            objects.statObject(claim.key).pipe(
              Effect.catchTag("ObjectNotFound", () => Effect.fail(error))
            ))
        ),
        (info) => record(claim, info)
      )

    /**
     * Marks an assembled upload uploaded, in one transaction with its part
     * rows' removal and its registry record; the object must have the
     * declared size.
     */
    const record = (claim: UploadClaim, info: ObjectInfo) =>
      Effect.gen(function*() {
        if (info.size !== claim.size) {
          yield* compensate("delete the mis-sized object", objects.deleteObject(claim.key))
          return yield* new UploadSizeMismatch({
            message: `declared ${claim.size} bytes, assembled ${info.size}; the object was deleted`
          })
        }
        const marked = yield* transaction(Effect.gen(function*() {
          yield* claims.markUploaded(claim.id)
          yield* parts.deleteByClaim(claim.id)
          yield* registry.recordUploaded(claim, yield* DateTime.now)
        })).pipe(
          Effect.as(true),
          // Lost the race to another complete (fine) or to an abort or the sweeper.
          Effect.catchTag("ClaimNotFound", () => Effect.succeed(false))
        )
        if (!marked) {
          const now = yield* claims.get(claim.id).pipe(
            Effect.catchTag("ClaimNotFound", () => Effect.fail(new AccessDenied()))
          )
          if (!now.isUploaded) return yield* new ClaimNotPending()
        } else {
          yield* Metric.increment(StorageMetrics.uploadsCompleted)
        }
        return { ...info, originalFilename: claim.originalFilename } satisfies CompletedUpload
      })

    const completedObject = (claim: UploadClaim) =>
      Effect.map(
        objects.statObject(claim.key),
        (info): CompletedUpload => ({ ...info, originalFilename: claim.originalFilename })
      )

    const abortUpload = Effect.fn("Uploads.abortUpload")(function*(input: {
      readonly principal: Principal
      readonly claimId: string
    }) {
      const claim = yield* claims.get(input.claimId).pipe(Effect.option)
      if (Option.isNone(claim)) return
      if (isAnonymous(input.principal) || claim.value.createdBy !== input.principal.id) {
        return yield* new AccessDenied()
      }
      // Never touches the backend: the claim goes (only while still pending,
      // so a completed upload survives) and the worker aborts the session
      // and deletes any object, in the same transaction.
      const aborted = yield* transaction(Effect.gen(function*() {
        if (!(yield* claims.deleteIfPending(claim.value.id))) return false
        const now = yield* DateTime.now
        yield* queue.enqueue([
          new PendingDelete({
            id: yield* uuidv7,
            key: claim.value.key,
            uploadId: claim.value.uploadId,
            reason: "aborted",
            attempts: 0,
            nextAttemptAt: now,
            createdAt: now
          })
        ])
        return true
      }))
      if (aborted) yield* Metric.increment(StorageMetrics.uploadsAborted)
    })

    /**
     * A whole file in one call, for files that fit in one part (avatars,
     * attachments): the claim is opened, the body stored with one put and
     * the upload completed, with every check of the three steps. When any
     * step fails (or the client goes away) the claim is aborted, so nothing
     * stays pending and the per-owner cap is not held.
     */
    const uploadFile = Effect.fn("Uploads.uploadFile")(function*<E>(input: {
      readonly principal: Principal
      readonly filename: string
      readonly size: number
      readonly contentType?: string | undefined
      readonly public?: boolean | undefined
      readonly body: Body<E>
    }) {
      const multipart = yield* requireMultipart
      if (Number.isSafeInteger(input.size) && input.size > multipart.partSize) {
        return yield* new UploadTooLarge({
          message: `one request carries at most ${multipart.partSize} bytes; ` +
            `open an upload (POST /storage/uploads) and send ${input.size} bytes in parts`
        })
      }
      const ticket = yield* initUpload(input)
      const principal = input.principal
      const claimId = ticket.claimId
      return yield* uploadPart({ principal, claimId, partNumber: 1, body: input.body, size: input.size }).pipe(
        Effect.zipRight(completeUpload({ principal, claimId })),
        Effect.onError(() => Effect.ignore(abortUpload({ principal, claimId })))
      )
    })

    return {
      initUpload,
      uploadPart,
      listParts,
      completeUpload,
      abortUpload,
      uploadFile,
      /** The claim, if the principal owns it (`AccessDenied` otherwise, unknown or foreign alike). */
      ownedClaim,
      /** A pending, unexpired claim of the principal's with a session or a single part. */
      activeClaim,
      /**
       * Records a stored upload (assembled, or stored whole) as uploaded, as
       * complete does: the object must have the declared size, or it is
       * deleted and `UploadSizeMismatch` answered.
       */
      recordStored: (claim: UploadClaim, info: ObjectInfo) => Effect.uninterruptible(record(claim, info))
    } as const
  })
}) {}

/**
 * The errors of the upload flow that come from bad input or state (every
 * other failure is a `SqlError` or a backend failure).
 *
 * @since 0.1.0
 * @category models
 */
export type UploadError =
  | Effect.Effect.Error<ReturnType<Uploads["initUpload"]>>
  | Effect.Effect.Error<ReturnType<Uploads["uploadPart"]>>
  | Effect.Effect.Error<ReturnType<Uploads["completeUpload"]>>

/**
 * The byte length part `partNumber` of the claim must have: the part size,
 * or what is left for the last part.
 *
 * @since 0.1.0
 * @category models
 */
export const expectedPartSize = (claim: UploadClaim, partNumber: number): number =>
  partNumber < claim.partCount ? claim.partSize : claim.size - claim.partSize * (claim.partCount - 1)

// ---- internal ----

const checkPartSize = (
  claim: UploadClaim,
  partNumber: number,
  size: number,
  expected: number
): Effect.Effect<void, PartTooLarge | PartTooSmall> =>
  size > expected
    ? Effect.fail(
      new PartTooLarge({
        message: `part ${partNumber} of ${claim.partCount} must be ${expected} bytes; it is more`
      })
    )
    : size < expected
    ? Effect.fail(
      new PartTooSmall({
        message: `part ${partNumber} of ${claim.partCount} must be ${expected} bytes; got ${size}`
      })
    )
    : Effect.void

/**
 * The body, failing as soon as it goes past `expected` bytes (so an
 * oversized part is cut off, never buffered) and at its end when it is
 * short.
 */
const exactly = <E, E2>(
  body: Body<E>,
  expected: number,
  check: (seen: number) => Effect.Effect<void, E2>
): Stream.Stream<Uint8Array, E | E2> =>
  Stream.suspend(() => {
    let seen = 0
    const stream = body instanceof Uint8Array ? Stream.make(body) : body
    return stream.pipe(
      Stream.tap((chunk) => {
        seen += chunk.length
        return seen > expected ? check(seen) : Effect.void
      }),
      Stream.concat(Stream.execute(Effect.suspend(() => check(seen))))
    )
  })

/** Runs a best-effort undo step; its failure is logged, never returned. */
const compensate = <E, R>(what: string, effect: Effect.Effect<unknown, E, R>) =>
  effect.pipe(
    Effect.asVoid,
    Effect.catchAllCause((cause) => Effect.logWarning(`upload compensation failed: ${what}`, cause))
  )
