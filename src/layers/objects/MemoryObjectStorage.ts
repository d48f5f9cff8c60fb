/**
 * An `ObjectStorage` held in process memory, for tests and demos.
 *
 * By its nature this backend keeps every object's bytes in memory (a stream
 * body is collected before it is stored). Everything else follows the
 * contract of `ObjectStorage` exactly, multipart included, so code tested
 * against it behaves the same on the filesystem and S3 backends.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { compareKeys, concatChunks, md5Hex, multipartETag, resolveRange } from "../../internal/objectStorage.js"
import { uuidv7 } from "../../internal/uuidv7.js"
import { ObjectNotFound, type StorageBackendError, UploadSessionNotFound } from "../../schema/Errors.js"
import type { ObjectInfo } from "../../schema/Models.js"
import * as ObjectStorage from "../../services/ObjectStorage.js"
import type {
  CompleteMultipartInput,
  DriverBody,
  DriverPutObjectInput,
  DriverPutPartInput,
  GetObjectInput,
  MultipartDriver,
  MultipartSession,
  MultipartUploadSummary,
  ObjectStorageDriver,
  ObjectSummary
} from "../../services/ObjectStorage.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface MemoryObjectStorageOptions {
  /** The multipart part size; 64 KiB when absent, zero or negative. */
  readonly partSize?: number | undefined
}

/**
 * The default part size: 64 KiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPartSize = 64 * 1024

/**
 * Builds an empty in-memory backend.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MemoryObjectStorageOptions = {}): Effect.Effect<ObjectStorage.ObjectStorage["Type"]> =>
  Effect.sync(() =>
    ObjectStorage.make(
      makeDriver(options.partSize !== undefined && options.partSize > 0 ? options.partSize : defaultPartSize)
    )
  )

/**
 * A layer with a fresh, empty in-memory backend.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: MemoryObjectStorageOptions): Layer.Layer<ObjectStorage.ObjectStorage> =>
  Layer.effect(ObjectStorage.ObjectStorage, make(options))

// ---- internal ----

interface StoredObject {
  readonly bytes: Uint8Array
  readonly info: ObjectInfo
}

interface StoredPart {
  readonly bytes: Uint8Array
  readonly etag: string
}

interface Session {
  readonly key: string
  readonly contentType: string
  readonly metadata: Readonly<Record<string, string>>
  readonly initiated: DateTime.Utc
  readonly parts: Map<number, StoredPart>
}

const noFailures: ReadonlyMap<string, StorageBackendError> = new Map()

/** Bytes handed out in chunks of this size, as a real backend would stream them. */
const readChunkSize = 64 * 1024

const makeDriver = (partSize: number): ObjectStorageDriver => {
  // Plain maps are safe here: JavaScript runs one fiber step at a time, and
  // every read-modify-write below happens inside a single `Effect.sync`, so
  // no other fiber can observe or interleave with a half-done update.
  const objects = new Map<string, StoredObject>()
  const sessions = new Map<string, Session>()

  const findObject = (key: string) =>
    Effect.suspend(() => {
      const found = objects.get(key)
      return found === undefined ? Effect.fail(new ObjectNotFound({ key })) : Effect.succeed(found)
    })

  const store = (
    key: string,
    bytes: Uint8Array,
    eTag: string,
    contentType: string,
    metadata: Readonly<Record<string, string>>
  ) =>
    Effect.map(DateTime.now, (lastModified) => {
      const info: ObjectInfo = {
        key,
        size: bytes.byteLength,
        eTag,
        contentType,
        lastModified,
        metadata: { ...metadata }
      }
      objects.set(key, { bytes, info })
      return info
    })

  const putObject = <E>(input: DriverPutObjectInput<E>) =>
    Effect.flatMap(
      collectBody(input.body),
      (bytes) => store(input.key, bytes, md5Hex(bytes), input.contentType, input.metadata)
    )

  const getObject = (input: GetObjectInput) =>
    Effect.map(findObject(input.key), (found) => {
      const { end, start } = resolveRange(found.bytes.byteLength, input.range)
      return { info: found.info, body: chunked(found.bytes, start, end) }
    })

  const deleteObject = (key: string) => Effect.sync(() => void objects.delete(key))

  const listObjects = (prefix = ""): Stream.Stream<ObjectSummary> =>
    Stream.suspend(() =>
      Stream.fromIterable(
        [...objects.values()]
          .filter((o) => o.info.key.startsWith(prefix))
          .sort((a, b) => compareKeys(a.info.key, b.info.key))
          .map(({ info }): ObjectSummary => ({
            key: info.key,
            size: info.size,
            eTag: info.eTag,
            lastModified: info.lastModified
          }))
      )
    )

  const openSession = (uploadId: string, key: string) =>
    Effect.suspend(() => {
      const session = sessions.get(uploadId)
      return session === undefined || session.key !== key
        ? Effect.fail(new UploadSessionNotFound({ message: `no open multipart upload ${uploadId} for ${key}` }))
        : Effect.succeed(session)
    })

  const multipart: MultipartDriver = {
    partSize,
    maxPartCount: 0,
    initMultipart: (input) =>
      Effect.gen(function*() {
        const uploadId = yield* uuidv7
        const initiated = yield* DateTime.now
        sessions.set(uploadId, {
          key: input.key,
          contentType: input.contentType,
          metadata: { ...input.metadata },
          initiated,
          parts: new Map()
        })
        return { key: input.key, uploadId }
      }),
    putPart: <E>(input: DriverPutPartInput<E>) =>
      Effect.gen(function*() {
        yield* openSession(input.uploadId, input.key)
        const bytes = yield* collectBody(input.body)
        // Looked up again: the session may have closed while the body arrived.
        const session = yield* openSession(input.uploadId, input.key)
        const etag = md5Hex(bytes)
        session.parts.set(input.partNumber, { bytes, etag })
        return { partNumber: input.partNumber, etag, size: bytes.byteLength }
      }),
    storedParts: (input) =>
      Effect.map(
        openSession(input.uploadId, input.key),
        (session) =>
          new Map([...session.parts].map(([n, part]) => [n, { etag: part.etag, size: part.bytes.byteLength }]))
      ),
    completeMultipart: (input: CompleteMultipartInput) =>
      Effect.gen(function*() {
        const session = yield* openSession(input.uploadId, input.key)
        const stored = input.parts.map(({ partNumber }) => session.parts.get(partNumber)!)
        sessions.delete(input.uploadId)
        const bytes = concatChunks(Chunk.unsafeFromArray(stored.map((part) => part.bytes)))
        return yield* store(
          input.key,
          bytes,
          multipartETag(stored.map((part) => part.etag)),
          session.contentType,
          session.metadata
        )
      }),
    abortMultipart: (input: MultipartSession) =>
      Effect.sync(() => {
        if (sessions.get(input.uploadId)?.key === input.key) sessions.delete(input.uploadId)
      }),
    listMultipartUploads: (prefix = ""): Stream.Stream<MultipartUploadSummary> =>
      Stream.suspend(() =>
        Stream.fromIterable(
          [...sessions.entries()]
            .filter(([, session]) => session.key.startsWith(prefix))
            .map(([uploadId, session]): MultipartUploadSummary => ({
              key: session.key,
              uploadId,
              initiated: session.initiated
            }))
            .sort((a, b) => compareKeys(a.key, b.key) || compareKeys(a.uploadId, b.uploadId))
        )
      )
  }

  return {
    name: "memory",
    putObject,
    getObject,
    statObject: (key) => Effect.map(findObject(key), (found) => found.info),
    deleteObject,
    deleteObjects: (keys) =>
      Effect.sync(() => {
        for (const key of keys) objects.delete(key)
        return noFailures
      }),
    copyObject: (from, to) =>
      Effect.flatMap(findObject(from), (source) =>
        // A copy is a new single-part object: its ETag is its MD5, as on S3.
        store(to, source.bytes, md5Hex(source.bytes), source.info.contentType, source.info.metadata)),
    listObjects,
    multipart: Option.some(multipart)
  }
}

/** The whole body in one buffer of its own (a single given buffer is copied, so the caller may reuse it). */
const collectBody = <E>(body: DriverBody<E>): Effect.Effect<Uint8Array, E | StorageBackendError> =>
  body instanceof Uint8Array
    ? Effect.sync(() => Uint8Array.from(body))
    : Effect.map(
      Stream.runCollect(body),
      (chunks) => chunks.length === 1 ? Uint8Array.from(Chunk.unsafeHead(chunks)) : concatChunks(chunks)
    )

/** A stream of copies of `bytes[start, end)`, in read-sized chunks, copied only as they are pulled. */
const chunked = (bytes: Uint8Array, start: number, end: number): Stream.Stream<Uint8Array> =>
  Stream.unfold(start, (at) =>
    at >= end
      ? Option.none()
      : Option.some([bytes.slice(at, Math.min(end, at + readChunkSize)), at + readChunkSize] as const))
