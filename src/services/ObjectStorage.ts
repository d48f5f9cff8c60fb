/**
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import type {
  InvalidObjectKey,
  ObjectNotFound,
  ObjectStorageError,
  PartETagMismatch,
  PartNumberOutOfRange,
  PartTooSmall,
  StorageBackendError,
  UploadSessionNotFound
} from "../schema/Errors.js"
import type { ObjectInfo } from "../schema/Models.js"

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
 * Contract, checked by every backend itself (S3 accepts gaps, so the S3
 * backend checks before it asks):
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
  readonly initMultipart: (input: InitMultipartInput) => Effect.Effect<MultipartSession, InvalidObjectKey | StorageBackendError>

  /**
   * Stores one part. When `size` is given, a body of another length fails
   * (`StorageBackendError` with reason `invalid`) and stores nothing.
   */
  readonly putPart: <E = never>(input: PutPartInput<E>) => Effect.Effect<PartInfo, UploadSessionNotFound | PartNumberOutOfRange | InvalidObjectKey | StorageBackendError | E>

  /**
   * Assembles the object from the parts, which must be exactly 1..N.
   * Answers the assembled object's real size.
   */
  readonly completeMultipart: (input: CompleteMultipartInput) => Effect.Effect<
    ObjectInfo,
    | UploadSessionNotFound
    | PartETagMismatch
    | PartTooSmall
    | PartNumberOutOfRange
    | InvalidObjectKey
    | StorageBackendError
  >

  /** Abandons a session and its parts. An unknown session is success. */
  readonly abortMultipart: (input: MultipartSession) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>

  /** The open sessions, optionally under a key prefix, page by page. */
  readonly listMultipartUploads: (prefix?: string) => Stream.Stream<MultipartUploadSummary, StorageBackendError>
}

/**
 * A provider-neutral object backend: S3, the local filesystem, or memory.
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
  readonly putObject: <E = never>(input: PutObjectInput<E>) => Effect.Effect<ObjectInfo, InvalidObjectKey | StorageBackendError | E>

  /** Reads an object or a byte range of it; `ObjectNotFound` at once when missing. */
  readonly getObject: (input: GetObjectInput) => Effect.Effect<ObjectContent, ObjectNotFound | InvalidObjectKey | StorageBackendError>

  /** Reads an object's metadata; `ObjectNotFound` when missing. */
  readonly statObject: (key: string) => Effect.Effect<ObjectInfo, ObjectNotFound | InvalidObjectKey | StorageBackendError>

  /** Deletes an object. A missing key is success. */
  readonly deleteObject: (key: string) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>

  /** Deletes objects (in batches where the backend has a batch call). Missing keys are success. */
  readonly deleteObjects: (keys: Iterable<string>) => Effect.Effect<void, InvalidObjectKey | StorageBackendError>

  /** Copies an object; answers the copy's metadata. */
  readonly copyObject: (
    from: string,
    to: string
  ) => Effect.Effect<ObjectInfo, ObjectNotFound | InvalidObjectKey | StorageBackendError>

  /** The objects, optionally under a key prefix, in key order, page by page. */
  readonly listObjects: (prefix?: string) => Stream.Stream<ObjectSummary, StorageBackendError>

  /** The multipart capability, when the backend has one. */
  readonly multipart: Option.Option<Multipart>
}>() {}

/**
 * Every error a backend call can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type { ObjectStorageError }
