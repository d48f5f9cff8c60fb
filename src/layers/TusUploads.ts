/**
 * Resumable uploads in arbitrary pieces (the flow behind the tus endpoint):
 * one upload is one claim of the upload flow, whose bytes may arrive cut
 * anywhere.
 *
 * The bytes of each request are cut into the claim's parts as they stream
 * through: every whole part goes to the backend as a part, and what is left
 * past the last whole part (the *tail*) is stored as an object of its own
 * under `tus-tails/`, to be read back in front of the next request's bytes.
 * The acknowledged offset is only ever derived from durable state: the part
 * rows plus the tail recorded in `sys_storage_upload_tail`, both written in
 * one transaction after the backend holds the bytes. So a server killed at
 * any moment loses no acknowledged byte, and a request that fails (or whose
 * checksum does not match) leaves nothing of itself recorded.
 *
 * Every tail object is queued for deletion (at the claim's expiry) before
 * it is written, so the delete worker, the sweeper's schedule and the
 * reconciler always know it; a tail that a later request replaced is queued
 * for deletion at once, in the transaction that replaces it.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Stream from "effect/Stream"
import * as ByteReader from "../internal/byteReader.js"
import { type ChecksumAlgorithm, digest as makeDigest } from "../internal/checksum.js"
import { concatChunks } from "../internal/objectStorage.js"
import { uuidv7 } from "../internal/uuidv7.js"
import {
  AccessDenied,
  ChecksumMismatch,
  ClaimExpired,
  ClaimNotPending,
  InvalidUploadRequest,
  MultipartNotSupported,
  RequestBodyError,
  UploadLocked,
  UploadNotFound,
  UploadOffsetMismatch,
  UploadTooLarge
} from "../schema/Errors.js"
import { isAnonymous, PendingDelete, type Principal, type UploadClaim, UploadPart } from "../schema/Models.js"
import { originalFilenameMetadata, resumableTailPrefix } from "../schema/Naming.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { DeleteQueue } from "../services/DeleteQueue.js"
import { type Multipart, ObjectStorage, type PartInfo } from "../services/ObjectStorage.js"
import { UploadPartStore } from "../services/UploadPartStore.js"
import { type UploadTail, UploadTailStore } from "../services/UploadTailStore.js"
import { retriedTransaction } from "./sql/Dialect.js"
import { StorageConfig } from "./StorageConfig.js"
import * as StorageMetrics from "./StorageMetrics.js"
import { expectedPartSize, Uploads } from "./Uploads.js"

/**
 * Where a resumable upload stands.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResumableUpload {
  readonly id: string
  /** The object key the upload is stored at (the key a business record adopts). */
  readonly key: string
  /** The declared size (`Upload-Length`). */
  readonly size: number
  /** Bytes acknowledged. */
  readonly offset: number
  readonly status: "pending" | "uploaded"
  readonly expiresAt: DateTime.Utc
  readonly originalFilename: string
  readonly contentType: string
}

/**
 * One request's bytes for a resumable upload.
 *
 * @since 0.1.0
 * @category models
 */
export interface AppendInput<E> {
  readonly principal: Principal
  readonly id: string
  /** Where the client says these bytes start (`Upload-Offset`). */
  readonly offset: number
  readonly body: Stream.Stream<Uint8Array, E>
  /** The body's length when declared (`Content-Length`). */
  readonly length?: number | undefined
  readonly checksum?: RequestChecksum | undefined
  /** The client says this body ends the upload (`Upload-Complete: ?1`). */
  readonly last?: boolean | undefined
}

/**
 * A request's checksum (`Upload-Checksum`): the algorithm and the base64 digest.
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestChecksum {
  readonly algorithm: ChecksumAlgorithm
  readonly digest: string
}

/**
 * Resumable uploads for one principal at a time.
 *
 * @since 0.1.0
 * @category services
 */
export class TusUploads extends Effect.Service<TusUploads>()("effect-storage/TusUploads", {
  effect: Effect.gen(function*() {
    const config = yield* StorageConfig
    const uploads = yield* Uploads
    const claims = yield* ClaimStore
    const parts = yield* UploadPartStore
    const tails = yield* UploadTailStore
    const queue = yield* DeleteQueue
    const objects = yield* ObjectStorage
    const transaction = retriedTransaction(yield* SqlClient.SqlClient)

    const requireMultipart: Effect.Effect<Multipart, MultipartNotSupported> = Option.match(objects.multipart, {
      onNone: () => Effect.fail(new MultipartNotSupported()),
      onSome: Effect.succeed
    })

    /**
     * Bodies gathered in memory before they are stored share one budget
     * (`maxBufferedBytes`, at least one part), in bytes: a request that
     * would go over it waits, its bytes left unread, so requests without
     * `Content-Length` cannot hold more memory than that between them.
     */
    const budget = Math.max(
      config.maxBufferedBytes,
      Option.match(objects.multipart, { onNone: () => 0, onSome: (multipart) => multipart.partSize })
    )
    const memory = yield* Effect.makeSemaphore(budget)
    const buffered = (bytes: number) => memory.withPermits(Math.min(bytes, budget))

    /** The claim and progress of an upload the principal owns: unknown 404, foreign 403. */
    const ownedUpload = (principal: Principal, id: string) =>
      Effect.gen(function*() {
        const claim = yield* claims.get(id).pipe(Effect.catchTag("ClaimNotFound", () => new UploadNotFound()))
        if (isAnonymous(principal) || claim.createdBy !== principal.id) return yield* new AccessDenied()
        const tail = yield* tails.get(id)
        // A claim opened through the parts API is no resumable upload.
        if (Option.isNone(tail)) return yield* new UploadNotFound()
        return { claim, tail: tail.value }
      })

    const view = (claim: UploadClaim, offset: number): ResumableUpload => ({
      id: claim.id,
      key: claim.key,
      size: claim.size,
      offset: claim.isUploaded ? claim.size : offset,
      status: claim.status,
      expiresAt: claim.expiresAt,
      originalFilename: claim.originalFilename,
      contentType: claim.contentType
    })

    /** Assembles an upload whose every byte is acknowledged (as `complete` does). */
    const finish = (principal: Principal, claim: UploadClaim) =>
      Effect.as(uploads.completeUpload({ principal, claimId: claim.id }), view(claim, claim.size)).pipe(
        Effect.map((upload): ResumableUpload => ({ ...upload, status: "uploaded" }))
      )

    /** A pending upload that may still take bytes. */
    const checkActive = (claim: UploadClaim) =>
      Effect.gen(function*() {
        if (claim.status !== "pending") return yield* new ClaimNotPending()
        if (DateTime.lessThan(claim.expiresAt, yield* DateTime.now)) return yield* new ClaimExpired()
        if (claim.size > config.maxUploadSize) {
          return yield* new UploadTooLarge({
            message: `uploads may be at most ${config.maxUploadSize} bytes; this one is ${claim.size}`
          })
        }
      })

    const create = Effect.fn("TusUploads.create")(function*(input: {
      readonly principal: Principal
      readonly size: number
      readonly filename: string
      readonly contentType?: string | undefined
      readonly public?: boolean | undefined
    }) {
      const ticket = yield* uploads.initUpload(input)
      yield* tails.create(ticket.claimId).pipe(
        Effect.tapError(() =>
          Effect.ignore(uploads.abortUpload({ principal: input.principal, claimId: ticket.claimId }))
        )
      )
      const claim = yield* claims.get(ticket.claimId).pipe(Effect.orDie)
      return view(claim, 0)
    })

    const status = Effect.fn("TusUploads.status")(function*(input: {
      readonly principal: Principal
      readonly id: string
    }) {
      const { claim, tail } = yield* ownedUpload(input.principal, input.id)
      if (claim.isUploaded) return view(claim, claim.size)
      if (DateTime.lessThan(claim.expiresAt, yield* DateTime.now)) return yield* new ClaimExpired()
      // Every byte acknowledged but not yet assembled (the server stopped in between).
      if (tail.offset === claim.size) return yield* finish(input.principal, claim)
      return view(claim, tail.offset)
    })

    /**
     * The uploads a request of this process is writing to. Two requests
     * on one upload would both store the same part numbers; the second is
     * refused at once (423) instead. Across servers the offset's
     * compare-and-set still lets only one of them be acknowledged.
     */
    const writing = new Set<string>()
    const exclusively = <A, E, R>(id: string, effect: Effect.Effect<A, E, R>) =>
      Effect.suspend((): Effect.Effect<A, E | UploadLocked, R> => {
        if (writing.has(id)) return Effect.fail(new UploadLocked())
        writing.add(id)
        return Effect.ensuring(effect, Effect.sync(() => writing.delete(id)))
      })

    const append = <E>(input: AppendInput<E>) => exclusively(input.id, appendUnlocked(input))

    const appendUnlocked = Effect.fn("TusUploads.append")(function*<E>(input: AppendInput<E>) {
      const { claim, tail } = yield* ownedUpload(input.principal, input.id)
      if (claim.isUploaded && input.offset === claim.size && input.length === 0) return view(claim, claim.size)
      yield* checkActive(claim)
      if (input.offset !== tail.offset) {
        return yield* new UploadOffsetMismatch({
          offset: tail.offset,
          message: `the upload stands at offset ${tail.offset}, not ${input.offset}`
        })
      }
      const room = claim.size - tail.offset
      if (input.length !== undefined && input.length > room) {
        return yield* new UploadTooLarge({
          message: `the upload takes ${room} more bytes (Upload-Length ${claim.size}); this request has ${input.length}`
        })
      }
      if (input.last === true && input.length !== undefined && input.length !== room) {
        return yield* new InvalidUploadRequest({
          message: `the upload is ${claim.size} bytes: a last request at offset ${tail.offset} carries ${room}`
        })
      }
      // Nothing to store: only a finished upload may still need assembling.
      if (input.length === 0) {
        return tail.offset === claim.size ? yield* finish(input.principal, claim) : view(claim, tail.offset)
      }
      const multipart = yield* requireMultipart
      const checksum = input.checksum === undefined ? undefined : makeDigest(input.checksum.algorithm)
      let received = 0
      const body = input.body.pipe(
        Stream.mapEffect((bytes) => {
          received += bytes.byteLength
          if (received > room) {
            return Effect.fail(
              new UploadTooLarge({ message: `the upload takes ${room} more bytes (Upload-Length ${claim.size})` })
            )
          }
          checksum?.update(bytes)
          return Effect.succeed(bytes)
        })
      )
      // Parts land here as they are stored, so that a request cut short can keep them.
      const landed: Array<PartInfo> = []
      const write = <E2>(source: Stream.Stream<Uint8Array, E2>, length: number | undefined) =>
        Effect.scoped(writeBytes(multipart, claim, tail, source, length, landed)).pipe(
          Effect.onExit((exit) =>
            Exit.isFailure(exit) && input.checksum === undefined && landed.length > 0 && clientWentAway(exit.cause)
              ? keepWholeParts(claim, tail, landed)
              : Effect.void
          )
        )
      // A one-part upload is written at its final key, where the sweeper
      // would take an object of the declared size for a finished upload: with
      // a checksum, its bytes (one part at most) are checked before that put.
      const written = claim.isSingleRequest && checksum !== undefined
        ? yield* buffered(room)(Effect.gen(function*() {
          const bytes = concatChunks(yield* Stream.runCollect(body))
          if (input.length !== undefined && bytes.byteLength !== input.length) {
            return yield* new RequestBodyError({
              message: `the body ended after ${bytes.byteLength} of ${input.length} bytes`
            })
          }
          if (checksum.base64() !== input.checksum!.digest) return yield* new ChecksumMismatch()
          return yield* write(Stream.succeed(bytes), bytes.byteLength)
        }))
        : yield* write(body, input.length)
      const newTail = written.tail
      // Past this point the bytes are stored but not yet acknowledged: a
      // failure leaves them unrecorded (parts are overwritten by the next
      // request, a tail object is deleted now or by its queued deletion).
      const discardTail = newTail === undefined ? Effect.void : Effect.ignore(objects.deleteObject(newTail.key))
      if (input.length !== undefined && received !== input.length) {
        yield* discardTail
        return yield* new RequestBodyError({ message: `the body ended after ${received} of ${input.length} bytes` })
      }
      if (checksum !== undefined && checksum.base64() !== input.checksum!.digest) {
        yield* discardTail
        return yield* new ChecksumMismatch()
      }
      const offset = tail.offset + received
      if (input.last === true && offset !== claim.size) {
        yield* discardTail
        return yield* new InvalidUploadRequest({
          message: `the upload is ${claim.size} bytes; it ended at ${offset}`
        })
      }
      if (received === 0) {
        yield* discardTail
        return offset === claim.size ? yield* finish(input.principal, claim) : view(claim, offset)
      }
      const moved = yield* recordProgress(claim, tail, written.parts, {
        claimId: claim.id,
        offset,
        tailKey: newTail?.key ?? "",
        tailSize: newTail?.size ?? 0
      })
      if (!moved) {
        yield* discardTail
        const current = yield* ownedUpload(input.principal, input.id)
        return yield* new UploadOffsetMismatch({
          offset: current.tail.offset,
          message: "another request moved the upload meanwhile"
        })
      }
      yield* Metric.incrementBy(StorageMetrics.partsUploaded, written.parts.length)
      yield* Metric.incrementBy(StorageMetrics.bytesUploaded, received)
      return offset === claim.size ? yield* finish(input.principal, claim) : view(claim, offset)
    })

    /**
     * Records a request's stored parts and the new tail in one transaction,
     * only if the upload still stands where the request found it; the
     * replaced tail is queued for deletion in the same transaction.
     */
    const recordProgress = (
      claim: UploadClaim,
      tail: UploadTail,
      stored: ReadonlyArray<PartInfo>,
      next: UploadTail
    ) =>
      transaction(Effect.gen(function*() {
        const now = yield* DateTime.now
        if (!(yield* tails.advance(tail.offset, next))) return false
        for (const part of stored) {
          yield* parts.upsert(
            new UploadPart({
              id: yield* uuidv7,
              claimId: claim.id,
              partNumber: part.partNumber,
              etag: part.etag,
              size: part.size,
              createdAt: now
            })
          )
        }
        if (tail.tailKey !== "") yield* queue.enqueue([yield* tailDeletion(tail.tailKey, "replaced", now, now)])
        return true
      })).pipe(Effect.catchTag("ClaimNotFound", () => Effect.succeed(false)))

    /**
     * A request cut short (the client went away) keeps the whole parts it
     * stored, as tus asks of a server, so the client resumes after them; the
     * bytes past the last whole part are lost (the client sends them again).
     * Never with a checksum: then nothing of an unverified request is kept.
     */
    const keepWholeParts = (claim: UploadClaim, tail: UploadTail, stored: ReadonlyArray<PartInfo>) =>
      Effect.gen(function*() {
        const offset = tail.offset - tail.tailSize + stored.reduce((sum, part) => sum + part.size, 0)
        if (yield* recordProgress(claim, tail, stored, { claimId: claim.id, offset, tailKey: "", tailSize: 0 })) {
          yield* Metric.incrementBy(StorageMetrics.partsUploaded, stored.length)
          yield* Metric.incrementBy(StorageMetrics.bytesUploaded, offset - tail.offset)
        }
      }).pipe(
        Effect.uninterruptible,
        Effect.catchAllCause((cause) => Effect.logWarning("could not keep the parts of an interrupted request", cause))
      )

    /**
     * Cuts the tail (if any) and then the body into the claim's parts, and
     * stores what is left past the last whole part as the new tail. With
     * the body's length known every piece streams through; without it, each
     * part is gathered first (at most one part in memory), since only its
     * end tells whether it is whole.
     */
    const writeBytes = <E>(
      multipart: Multipart,
      claim: UploadClaim,
      tail: UploadTail,
      body: Stream.Stream<Uint8Array, E | UploadTooLarge>,
      length: number | undefined,
      stored: Array<PartInfo>
    ) =>
      Effect.gen(function*() {
        const previous = tail.tailKey === ""
          ? Stream.empty
          : Stream.unwrap(Effect.map(objects.getObject({ key: tail.tailKey }), (object) => object.body))
        const reader = yield* ByteReader.make(Stream.concat(previous, body))
        let partNumber = (tail.offset - tail.tailSize) / claim.partSize + 1
        let newTail: { key: string; size: number } | undefined
        if (length !== undefined) {
          let available = tail.tailSize + length
          while (partNumber <= claim.partCount && available >= expectedPartSize(claim, partNumber)) {
            const size = expectedPartSize(claim, partNumber)
            stored.push(yield* storePart(multipart, claim, partNumber, reader.take(size), size))
            available -= size
            partNumber++
          }
          if (available > 0) newTail = yield* storeTail(claim, reader.take(available), available)
        } else {
          let whole = true
          while (whole && partNumber <= claim.partCount) {
            const size = expectedPartSize(claim, partNumber)
            whole = yield* buffered(size)(Effect.gen(function*() {
              const bytes = yield* reader.readUpTo(size)
              if (bytes.byteLength < size) {
                if (bytes.byteLength > 0) newTail = yield* storeTail(claim, bytes, bytes.byteLength)
                return false
              }
              stored.push(yield* storePart(multipart, claim, partNumber, bytes, size))
              return true
            }))
            if (whole) partNumber++
          }
        }
        // Anything further runs into the size check of `body`.
        yield* reader.drain.pipe(
          Effect.tapError(() => newTail === undefined ? Effect.void : Effect.ignore(objects.deleteObject(newTail.key)))
        )
        return { parts: stored, tail: newTail }
      })

    /** One whole part; an upload of one part is stored with one put, as the upload flow does. */
    const storePart = <E>(
      multipart: Multipart,
      claim: UploadClaim,
      partNumber: number,
      body: Stream.Stream<Uint8Array, E> | Uint8Array,
      size: number
    ) =>
      claim.isSingleRequest
        ? Effect.map(
          objects.putObject({
            key: claim.key,
            body,
            size,
            contentType: claim.contentType,
            metadata: { [originalFilenameMetadata]: encodeURIComponent(claim.originalFilename) }
          }),
          (info) => ({ partNumber, etag: info.eTag, size: info.size })
        )
        : multipart.putPart({ key: claim.key, uploadId: claim.uploadId, partNumber, body, size })

    /** A new tail object, queued for deletion at the claim's expiry before it is written. */
    const storeTail = <E>(claim: UploadClaim, body: Stream.Stream<Uint8Array, E> | Uint8Array, size: number) =>
      Effect.gen(function*() {
        const key = `${resumableTailPrefix}${claim.id}/${yield* uuidv7}`
        yield* queue.enqueue([yield* tailDeletion(key, "claim_expired", claim.expiresAt, yield* DateTime.now)])
        yield* objects.putObject({ key, body, size, contentType: "application/octet-stream" })
        return { key, size }
      })

    const terminate = Effect.fn("TusUploads.terminate")(function*(input: {
      readonly principal: Principal
      readonly id: string
    }) {
      const { claim, tail } = yield* ownedUpload(input.principal, input.id)
      if (claim.isUploaded) {
        return yield* new ClaimNotPending({ message: "the upload is complete; nothing was deleted" })
      }
      yield* uploads.abortUpload({ principal: input.principal, claimId: claim.id })
      if (tail.tailKey !== "") {
        const now = yield* DateTime.now
        yield* queue.enqueue([yield* tailDeletion(tail.tailKey, "aborted", now, now)])
      }
    })

    return { create, status, append, terminate } as const
  })
}) {}

// ---- internal ----

/** Whether a request failed because its client went away (interrupted, or its body cut short). */
const clientWentAway = (cause: Cause.Cause<unknown>): boolean =>
  Cause.isInterruptedOnly(cause) ||
  Option.exists(Cause.failureOption(cause), (error) => Predicate.isTagged(error, "RequestBodyError"))

/** A tail object's deletion, due at `at`. */
const tailDeletion = (
  key: string,
  reason: "replaced" | "aborted" | "claim_expired",
  at: DateTime.Utc,
  now: DateTime.Utc
) =>
  Effect.map(uuidv7, (id) =>
    new PendingDelete({
      id,
      key,
      uploadId: "",
      reason,
      attempts: 0,
      nextAttemptAt: at,
      createdAt: now
    }))
