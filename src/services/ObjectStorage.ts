/**
 * The object backend: its service tag, and `make`, which turns a thin
 * driver (S3, the filesystem, memory) into the service. `make` enforces the
 * contract once for every backend: key syntax, declared sizes, part
 * numbers, the 1..N part sequence and the checks of stored parts at
 * completion, default content types, and a span per call. A driver only
 * moves bytes and reports what it stores.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import {
  checkDeclaredSize,
  checkPartNumber,
  checkPartSequence,
  checkStoredPart,
  sizeMismatch,
  withDeclaredSize
} from "../internal/objectStorage.js"
import {
  InvalidObjectKey,
  type ObjectNotFound,
  type ObjectStorageError,
  type PartNumberOutOfRange,
  StorageBackendError,
  type UploadSessionNotFound
} from "../schema/Errors.js"
import type { ObjectInfo } from "../schema/Models.js"
import { checkKey, defaultContentType, keyProblem } from "../schema/Naming.js"

/**
 * Bytes to store: a stream (never held whole in memory by any backend) or a
 * buffer. A stream's own failure `E` is passed through unchanged.
 *
 * @since 0.1.0
 * @category models
 */
export type Body<E = never> = Stream.Stream<Uint8Array, E> | Uint8Array

/**
 * An inclusive byte range, as in an HTTP `Range` header: `end` defaults to
 * the last byte. Callers give `0 <= start` and `start <= end`; a start at or
 * past the end of the object yields an empty body.
 *
 * @since 0.1.0
 * @category models
 */
export interface ByteRange {
  readonly start: number
  readonly end?: number | undefined
}

/**
 * An object being read: its metadata (`size` is the whole object's) and its
 * bytes (the range's when one was asked). Run `body` once; running it
 * releases the backend connection when the stream ends or is interrupted.
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectContent {
  readonly info: ObjectInfo
  readonly body: Stream.Stream<Uint8Array, StorageBackendError>
}

/**
 * One entry of a listing.
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectSummary {
  readonly key: string
  readonly size: number
  readonly eTag: string
  readonly lastModified: DateTime.Utc
}

/**
 * An open multipart session, as listed by the backend.
 *
 * @since 0.1.0
 * @category models
 */
export interface MultipartUploadSummary {
  readonly key: string
  readonly uploadId: string
  readonly initiated: DateTime.Utc
}

/**
 * A stored part.
 *
 * @since 0.1.0
 * @category models
 */
export interface PartInfo {
  readonly partNumber: number
  readonly etag: string
  readonly size: number
}

/**
 * What `putObject` takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface PutObjectInput<E = never> {
  readonly key: string
  readonly body: Body<E>
  readonly size?: number | undefined
  readonly contentType?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
}

/**
 * What `getObject` takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface GetObjectInput {
  readonly key: string
  readonly range?: ByteRange | undefined
}

/**
 * What `initMultipart` takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface InitMultipartInput {
  readonly key: string
  readonly contentType?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
}

/**
 * What `putPart` takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface PutPartInput<E = never> {
  readonly key: string
  readonly uploadId: string
  readonly partNumber: number
  readonly body: Body<E>
  readonly size?: number | undefined
}

/**
 * A part of a completion manifest.
 *
 * @since 0.1.0
 * @category models
 */
export interface PartRef {
  readonly partNumber: number
  readonly etag: string
}

/**
 * What `completeMultipart` takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface CompleteMultipartInput {
  readonly key: string
  readonly uploadId: string
  readonly parts: ReadonlyArray<PartRef>
  /**
   * The session's parts as `listParts` answered them for this completion:
   * the parts are checked against these instead of being listed again.
   */
  readonly listed?: ReadonlyArray<PartInfo> | undefined
}

/**
 * A multipart session: what `abortMultipart` takes and `initMultipart` answers.
 *
 * @since 0.1.0
 * @category models
 */
export interface MultipartSession {
  readonly key: string
  readonly uploadId: string
}

/**
 * The multipart capability of a backend.
 *
 * Contract (enforced by `make` and the drivers together, the same on every
 * backend; S3 itself accepts gaps and repeated completions):
 * 1. Distinct part numbers may upload concurrently; re-uploading a part
 *    number replaces it (last writer wins, new ETag).
 * 2. Every non-final part is at least `partSize` bytes (`PartTooSmall`).
 * 3. Complete checks every (partNumber, etag) pair (`PartETagMismatch`).
 * 4. The parts given to complete are exactly 1..N in order, no gaps, no
 *    duplicates, not empty (`PartNumberOutOfRange`).
 * 5. After complete or abort, `putPart` and `completeMultipart` on that
 *    session fail with `UploadSessionNotFound`; abort of an unknown or
 *    closed session succeeds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Multipart {
  /** The part size of new sessions, constant per instance. */
  readonly partSize: number
  /** The most parts one object may have; 0 means unlimited. */
  readonly maxPartCount: number

  /** Opens a session; the returned `uploadId` is opaque. */
  readonly initMultipart: (
    input: InitMultipartInput
  ) => Effect.Effect<MultipartSession, InvalidObjectKey | StorageBackendError>

  /**
   * Stores one part. When `size` is given, a body of another length fails
   * (`StorageBackendError` with reason `invalid`) and stores nothing.
   */
  readonly putPart: <E = never>(
    input: PutPartInput<E>
  ) => Effect.Effect<
    PartInfo,
    UploadSessionNotFound | PartNumberOutOfRange | InvalidObjectKey | StorageBackendError | E
  >

  /**
   * Assembles the object from the parts, which must be exactly 1..N.
   * Answers the assembled object's real size.
   */
  readonly completeMultipart: (input: CompleteMultipartInput) => Effect.Effect<ObjectInfo, CompleteError>

  /** Abandons a session and its parts. An unknown session is success. */
  readonly abortMultipart: (input: MultipartSession) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>

  /** The open sessions, optionally under a key prefix, page by page. */
  readonly listMultipartUploads: (prefix?: string) => Stream.Stream<MultipartUploadSummary, StorageBackendError>

  /**
   * The parts stored in an open session, as the backend reports them (not
   * as any client claims), in ascending part number;
   * `UploadSessionNotFound` when the session is not open.
   */
  readonly listParts: (
    session: MultipartSession
  ) => Effect.Effect<ReadonlyArray<PartInfo>, UploadSessionNotFound | InvalidObjectKey | StorageBackendError>
}

/**
 * A request signed by the backend for a client to send itself, straight to
 * the storage: its URL (with the signature in the query) and the headers the
 * client must send exactly as given (they are part of the signature).
 *
 * @since 0.1.0
 * @category models
 */
export interface PresignedRequest {
  readonly method: "PUT" | "GET"
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly expiresAt: DateTime.Utc
}

/**
 * A signed browser form upload (S3 POST policy): post `fields`, then the
 * file as the last field `file`, as `multipart/form-data` to `url`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PresignedPost {
  readonly url: string
  readonly fields: Readonly<Record<string, string>>
  readonly expiresAt: DateTime.Utc
}

/**
 * Signing requests that clients send to the storage themselves, so the
 * bytes never pass through the app server. Every signature pins what it
 * allows: one part of one session at one exact size, one object key at one
 * exact size and content type, or one read.
 *
 * @since 0.1.0
 * @category models
 */
export interface Presigner {
  /** A `PUT` of part `partNumber` of a session, whose `Content-Length` must be exactly `size`. */
  readonly uploadPart: (input: {
    readonly key: string
    readonly uploadId: string
    readonly partNumber: number
    readonly size: number
    readonly expiresIn: Duration.Duration
  }) => Effect.Effect<PresignedRequest, InvalidObjectKey | StorageBackendError>

  /**
   * A form upload (POST policy) of exactly `size` bytes to `key`, with this
   * content type and metadata, for a file sent in one request.
   */
  readonly postObject: (input: {
    readonly key: string
    readonly size: number
    readonly contentType: string
    readonly metadata: Readonly<Record<string, string>>
    readonly expiresIn: Duration.Duration
  }) => Effect.Effect<PresignedPost, InvalidObjectKey | StorageBackendError>

  /** A `GET` of an object, answered with this content type and disposition. */
  readonly getObject: (input: {
    readonly key: string
    readonly expiresIn: Duration.Duration
    readonly responseContentType?: string | undefined
    readonly responseContentDisposition?: string | undefined
  }) => Effect.Effect<PresignedRequest, InvalidObjectKey | StorageBackendError>
}

/**
 * Every way a completion can fail.
 *
 * @since 0.1.0
 * @category models
 */
export type CompleteError = Exclude<ObjectStorageError, ObjectNotFound>

/**
 * A provider-neutral object backend: S3, the local filesystem, or memory.
 * Build one with `make` over a driver.
 *
 * @since 0.1.0
 * @category tags
 */
export class ObjectStorage extends Context.Tag("effect-storage/ObjectStorage")<ObjectStorage, {
  /** A short name of the backend, for logs and metrics (`s3`, `filesystem`, `memory`). */
  readonly name: string

  /**
   * Stores an object, replacing any object of that key. When `size` is
   * given, a body of another length fails (`StorageBackendError` with reason
   * `invalid`) and stores nothing.
   */
  readonly putObject: <E = never>(
    input: PutObjectInput<E>
  ) => Effect.Effect<ObjectInfo, InvalidObjectKey | StorageBackendError | E>

  /** Reads an object or a byte range of it; `ObjectNotFound` at once when missing. */
  readonly getObject: (
    input: GetObjectInput
  ) => Effect.Effect<ObjectContent, ObjectNotFound | InvalidObjectKey | StorageBackendError>

  /** Reads an object's metadata; `ObjectNotFound` when missing. */
  readonly statObject: (
    key: string
  ) => Effect.Effect<ObjectInfo, ObjectNotFound | InvalidObjectKey | StorageBackendError>

  /** Deletes an object. A missing key is success. */
  readonly deleteObject: (key: string) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>

  /**
   * Deletes objects (in batches where the backend has a batch call). Missing
   * keys are success; when any key fails, the call fails with one error
   * naming them.
   */
  readonly deleteObjects: (keys: Iterable<string>) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>

  /**
   * Deletes objects in as few backend calls as it allows (S3: 1,000 keys per
   * `DeleteObjects`) and answers each key that could not be deleted, with
   * why; the others are gone (a missing key is success). Never fails as a
   * whole: a failed call fails each of its keys.
   */
  readonly deleteEach: (
    keys: Iterable<string>
  ) => Effect.Effect<ReadonlyMap<string, InvalidObjectKey | StorageBackendError>>

  /** Copies an object; answers the copy's metadata. */
  readonly copyObject: (
    from: string,
    to: string
  ) => Effect.Effect<ObjectInfo, ObjectNotFound | InvalidObjectKey | StorageBackendError>

  /** The objects, optionally under a key prefix, in key order, page by page. */
  readonly listObjects: (prefix?: string) => Stream.Stream<ObjectSummary, StorageBackendError>

  /** The multipart capability, when the backend has one. */
  readonly multipart: Option.Option<Multipart>

  /**
   * Presigned requests, when the backend can check a signature itself (S3);
   * the embedded backends have none (the app server takes the bytes).
   */
  readonly presign: Option.Option<Presigner>
}>() {}

/**
 * Every error a backend call can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type { ObjectStorageError }

// ---- drivers ----

/**
 * A body as a driver receives it: bytes whose length is the declared size,
 * or a stream that fails as soon as it runs past the declared size (or, at
 * its end, when it fell short).
 *
 * @since 0.1.0
 * @category drivers
 */
export type DriverBody<E> = Stream.Stream<Uint8Array, E | StorageBackendError> | Uint8Array

/**
 * What a driver's `putObject` takes: a checked key, a checked size, and a
 * content type always set.
 *
 * @since 0.1.0
 * @category drivers
 */
export interface DriverPutObjectInput<E> {
  readonly key: string
  readonly body: DriverBody<E>
  readonly size: number | undefined
  readonly contentType: string
  readonly metadata: Readonly<Record<string, string>>
}

/**
 * What a driver's `putPart` takes: a checked key, part number and size.
 *
 * @since 0.1.0
 * @category drivers
 */
export interface DriverPutPartInput<E> {
  readonly key: string
  readonly uploadId: string
  readonly partNumber: number
  readonly body: DriverBody<E>
  readonly size: number | undefined
}

/**
 * A part as stored by the backend, for the completion checks.
 *
 * @since 0.1.0
 * @category drivers
 */
export interface StoredPart {
  readonly etag: string
  readonly size: number
}

/**
 * The multipart half of a driver. `make` has checked every key, part
 * number, size and part sequence before a call reaches it, and the stored
 * parts (from `storedParts`) before `completeMultipart`.
 *
 * @since 0.1.0
 * @category drivers
 */
export interface MultipartDriver {
  readonly partSize: number
  readonly maxPartCount: number
  readonly initMultipart: (input: {
    readonly key: string
    readonly contentType: string
    readonly metadata: Readonly<Record<string, string>>
  }) => Effect.Effect<MultipartSession, InvalidObjectKey | StorageBackendError>
  readonly putPart: <E>(
    input: DriverPutPartInput<E>
  ) => Effect.Effect<PartInfo, UploadSessionNotFound | InvalidObjectKey | StorageBackendError | E>
  /** The parts stored in an open session, by part number; `UploadSessionNotFound` when it is not open. */
  readonly storedParts: (
    session: MultipartSession
  ) => Effect.Effect<ReadonlyMap<number, StoredPart>, UploadSessionNotFound | StorageBackendError>
  /** Assembles the parts, already checked against `storedParts`. */
  readonly completeMultipart: (input: CompleteMultipartInput) => Effect.Effect<ObjectInfo, CompleteError>
  readonly abortMultipart: (input: MultipartSession) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>
  readonly listMultipartUploads: (prefix?: string) => Stream.Stream<MultipartUploadSummary, StorageBackendError>
}

/**
 * A backend's own code: what only it knows how to do. Keys, sizes and part
 * numbers reaching it are valid; a driver never checks them again.
 *
 * @since 0.1.0
 * @category drivers
 */
export interface ObjectStorageDriver {
  readonly name: string
  readonly putObject: <E>(
    input: DriverPutObjectInput<E>
  ) => Effect.Effect<ObjectInfo, InvalidObjectKey | StorageBackendError | E>
  readonly getObject: (
    input: GetObjectInput
  ) => Effect.Effect<ObjectContent, ObjectNotFound | InvalidObjectKey | StorageBackendError>
  readonly statObject: (
    key: string
  ) => Effect.Effect<ObjectInfo, ObjectNotFound | InvalidObjectKey | StorageBackendError>
  readonly deleteObject: (key: string) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>
  /** Deletes valid keys; answers the keys that failed, with why (a failed call fails each of its keys). */
  readonly deleteObjects: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, StorageBackendError>>
  readonly copyObject: (
    from: string,
    to: string
  ) => Effect.Effect<ObjectInfo, ObjectNotFound | InvalidObjectKey | StorageBackendError>
  readonly listObjects: (prefix?: string) => Stream.Stream<ObjectSummary, StorageBackendError>
  readonly multipart: Option.Option<MultipartDriver>
  /** Presigned requests, when the backend checks signatures itself. */
  readonly presign?: Presigner | undefined
}

/**
 * The service over a driver, with the contract enforced in one place (see
 * the module documentation).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (driver: ObjectStorageDriver): ObjectStorage["Type"] => {
  const span = (operation: string, attributes: Record<string, unknown>) =>
    Effect.withSpan(`ObjectStorage.${operation}`, { attributes: { backend: driver.name, ...attributes } })

  const putObject = <E = never>(input: PutObjectInput<E>) =>
    Effect.gen(function*() {
      yield* checkKey(input.key)
      const { body, size } = yield* checkBody("putObject", input.body, input.size)
      return yield* driver.putObject<E>({
        key: input.key,
        body,
        size,
        contentType: input.contentType ?? defaultContentType,
        metadata: input.metadata ?? {}
      })
    }).pipe(span("putObject", { key: input.key }))

  const getObject = (input: GetObjectInput) =>
    Effect.zipRight(checkKey(input.key), driver.getObject(input)).pipe(span("getObject", { key: input.key }))

  const statObject = (key: string) =>
    Effect.zipRight(checkKey(key), driver.statObject(key)).pipe(span("statObject", { key }))

  const deleteObject = (key: string) =>
    Effect.zipRight(checkKey(key), driver.deleteObject(key)).pipe(span("deleteObject", { key }))

  const deleteEach = (keys: Iterable<string>) =>
    Effect.suspend(() => {
      const failed = new Map<string, InvalidObjectKey | StorageBackendError>()
      const valid: Array<string> = []
      for (const key of new Set(keys)) {
        const problem = keyProblem(key)
        if (problem === undefined) valid.push(key)
        else failed.set(key, new InvalidObjectKey({ key, message: problem }))
      }
      if (valid.length === 0) return Effect.succeed(failed)
      return Effect.map(driver.deleteObjects(valid), (driverFailures) => {
        for (const [key, error] of driverFailures) failed.set(key, error)
        return failed as ReadonlyMap<string, InvalidObjectKey | StorageBackendError>
      })
    }).pipe(span("deleteEach", {}))

  const deleteObjects = (keys: Iterable<string>) =>
    Effect.suspend(() => {
      const all = Array.from(keys)
      return Effect.zipRight(
        Effect.forEach(all, checkKey, { discard: true }),
        Effect.flatMap(driver.deleteObjects(all), (failed) =>
          failed.size === 0 ? Effect.void : Effect.fail(joinFailures(failed, all.length)))
      ).pipe(span("deleteObjects", { count: all.length }))
    })

  const copyObject = (from: string, to: string) =>
    Effect.zipRight(Effect.zipRight(checkKey(from), checkKey(to)), driver.copyObject(from, to)).pipe(
      span("copyObject", { from, to })
    )

  return {
    name: driver.name,
    putObject,
    getObject,
    statObject,
    deleteObject,
    deleteObjects,
    deleteEach,
    copyObject,
    listObjects: driver.listObjects,
    multipart: Option.map(driver.multipart, (multipart) => makeMultipart(multipart, span)),
    presign: Option.map(Option.fromNullable(driver.presign), (presigner) => makePresigner(presigner, span))
  }
}

// ---- internal ----

/** One error for the keys a batch delete could not delete: access denied if any was, else the first key's reason. */
const joinFailures = (failed: ReadonlyMap<string, StorageBackendError>, total: number): StorageBackendError => {
  const entries = [...failed]
  const shown = entries.slice(0, 5).map(([key, error]) => `${key} (${error.reason})`).join(", ")
  const reasons = entries.map(([, error]) => error.reason)
  return new StorageBackendError({
    operation: "deleteObjects",
    reason: reasons.includes("access_denied") ? "access_denied" : reasons[0]!,
    message: `deleteObjects: ${entries.length} of ${total} keys were not deleted: ${shown}${
      entries.length > 5 ? ", ..." : ""
    }`,
    cause: entries
  })
}

/**
 * A body checked against its declared size: bytes of another length fail
 * at once, a stream fails as soon as it is wrong. Bytes always have a size.
 */
const checkBody = <E>(
  operation: string,
  body: Body<E>,
  size: number | undefined
): Effect.Effect<CheckedBody<E>, StorageBackendError> =>
  Effect.zipRight(
    checkDeclaredSize(operation, size),
    body instanceof Uint8Array
      ? size !== undefined && size !== body.byteLength
        ? Effect.fail(sizeMismatch(operation, size, String(body.byteLength)))
        : Effect.succeed<CheckedBody<E>>({ body, size: body.byteLength })
      : Effect.succeed<CheckedBody<E>>({ body: withDeclaredSize(body, size, operation), size })
  )

interface CheckedBody<E> {
  readonly body: DriverBody<E>
  readonly size: number | undefined
}

const makeMultipart = (
  driver: MultipartDriver,
  span: (operation: string, attributes: Record<string, unknown>) => <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
): Multipart => {
  const initMultipart = (input: InitMultipartInput) =>
    Effect.zipRight(
      checkKey(input.key),
      driver.initMultipart({
        key: input.key,
        contentType: input.contentType ?? defaultContentType,
        metadata: input.metadata ?? {}
      })
    ).pipe(span("initMultipart", { key: input.key }))

  const putPart = <E = never>(input: PutPartInput<E>) =>
    Effect.gen(function*() {
      yield* checkKey(input.key)
      yield* checkPartNumber(input.partNumber, driver.maxPartCount)
      const { body, size } = yield* checkBody("putPart", input.body, input.size)
      return yield* driver.putPart<E>({
        key: input.key,
        uploadId: input.uploadId,
        partNumber: input.partNumber,
        body,
        size
      })
    }).pipe(span("putPart", { key: input.key, uploadId: input.uploadId, partNumber: input.partNumber }))

  const completeMultipart = (input: CompleteMultipartInput) =>
    Effect.gen(function*() {
      yield* checkKey(input.key)
      const stored = input.listed === undefined
        ? yield* driver.storedParts({ key: input.key, uploadId: input.uploadId })
        : new Map(input.listed.map((part) => [part.partNumber, { etag: part.etag, size: part.size }]))
      yield* checkPartSequence(input.parts)
      for (const [index, { etag, partNumber }] of input.parts.entries()) {
        yield* checkStoredPart(
          { partNumber, etag, isLast: index === input.parts.length - 1 },
          stored.get(partNumber),
          driver.partSize
        )
      }
      return yield* driver.completeMultipart(input)
    }).pipe(span("completeMultipart", { key: input.key, uploadId: input.uploadId, parts: input.parts.length }))

  const abortMultipart = (input: MultipartSession) =>
    Effect.zipRight(checkKey(input.key), driver.abortMultipart(input)).pipe(
      span("abortMultipart", { key: input.key, uploadId: input.uploadId })
    )

  const listParts = (session: MultipartSession) =>
    Effect.zipRight(
      checkKey(session.key),
      Effect.map(driver.storedParts(session), (stored) =>
        Array.from(stored, ([partNumber, part]): PartInfo => ({ partNumber, etag: part.etag, size: part.size }))
          .sort((a, b) =>
            a.partNumber - b.partNumber
          ))
    ).pipe(span("listParts", { key: session.key, uploadId: session.uploadId }))

  return {
    partSize: driver.partSize,
    maxPartCount: driver.maxPartCount,
    listParts,
    initMultipart,
    putPart,
    completeMultipart,
    abortMultipart,
    listMultipartUploads: driver.listMultipartUploads
  }
}

/** The presigner with the key checked and a span per call. */
const makePresigner = (
  driver: Presigner,
  span: (operation: string, attributes: Record<string, unknown>) => <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
): Presigner => ({
  uploadPart: (input) =>
    Effect.zipRight(checkKey(input.key), driver.uploadPart(input)).pipe(
      span("presignUploadPart", { key: input.key, uploadId: input.uploadId, partNumber: input.partNumber })
    ),
  postObject: (input) =>
    Effect.zipRight(checkKey(input.key), driver.postObject(input)).pipe(span("presignPostObject", { key: input.key })),
  getObject: (input) =>
    Effect.zipRight(checkKey(input.key), driver.getObject(input)).pipe(span("presignGetObject", { key: input.key }))
})
