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
import {
  bodyStream,
  checkDeclaredSize,
  checkKeyNotEmpty,
  checkPartNumber,
  checkPartSequence,
  checkStoredPart,
  compareKeys,
  concatChunks,
  defaultContentType,
  md5Hex,
  multipartETag,
  resolveRange,
  withDeclaredSize
} from "../../internal/objectStorage.js"
import { uuidv7 } from "../../internal/uuidv7.js"
import { ObjectNotFound, UploadSessionNotFound } from "../../schema/Errors.js"
import type { ObjectInfo } from "../../schema/Models.js"
import { ObjectStorage } from "../../services/ObjectStorage.js"
import type {
  Body,
  CompleteMultipartInput,
  InitMultipartInput,
  Multipart,
  MultipartSession,
  MultipartUploadSummary,
  ObjectSummary,
  PutObjectInput,
  PutPartInput
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
export const make = (options: MemoryObjectStorageOptions = {}): Effect.Effect<ObjectStorage["Type"]> =>
  Effect.sync(() =>
    makeStore(options.partSize !== undefined && options.partSize > 0 ? options.partSize : defaultPartSize)
  )

/**
 * A layer with a fresh, empty in-memory backend.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: MemoryObjectStorageOptions): Layer.Layer<ObjectStorage> =>
  Layer.effect(ObjectStorage, make(options))

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

/** Bytes handed out in chunks of this size, as a real backend would stream them. */
const readChunkSize = 64 * 1024

const makeStore = (partSize: number): ObjectStorage["Type"] => {
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

  const putObject = <E = never>(input: PutObjectInput<E>) =>
    Effect.gen(function*() {
      yield* checkKeyNotEmpty(input.key)
      const bytes = yield* collectBody(input.body, input.size, "putObject")
      return yield* store(
        input.key,
        bytes,
        md5Hex(bytes),
        input.contentType ?? defaultContentType,
        input.metadata ?? {}
      )
    }).pipe(
      // A generic method cannot go through `Effect.fn` without losing `E`.
      Effect.withSpan("MemoryObjectStorage.putObject", { attributes: { key: input.key } })
    )

  const getObject = Effect.fn("MemoryObjectStorage.getObject")(function*(input: {
    readonly key: string
    readonly range?: { readonly start: number; readonly end?: number | undefined } | undefined
  }) {
    yield* checkKeyNotEmpty(input.key)
    const found = yield* findObject(input.key)
    const { start, end } = resolveRange(found.bytes.byteLength, input.range)
    return { info: found.info, body: chunked(found.bytes, start, end) }
  })

  const statObject = Effect.fn("MemoryObjectStorage.statObject")(function*(key: string) {
    yield* checkKeyNotEmpty(key)
    return (yield* findObject(key)).info
  })

  const deleteObject = Effect.fn("MemoryObjectStorage.deleteObject")(function*(key: string) {
    yield* checkKeyNotEmpty(key)
    objects.delete(key)
  })

  const deleteObjects = Effect.fn("MemoryObjectStorage.deleteObjects")(function*(keys: Iterable<string>) {
    for (const key of keys) yield* deleteObject(key)
  })

  const copyObject = Effect.fn("MemoryObjectStorage.copyObject")(function*(from: string, to: string) {
    yield* checkKeyNotEmpty(from)
    yield* checkKeyNotEmpty(to)
    const source = yield* findObject(from)
    // A copy is a new single-part object: its ETag is its MD5, as on S3.
    return yield* store(to, source.bytes, md5Hex(source.bytes), source.info.contentType, source.info.metadata)
  })

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

  const initMultipart = Effect.fn("MemoryObjectStorage.initMultipart")(function*(input: InitMultipartInput) {
    yield* checkKeyNotEmpty(input.key)
    const uploadId = yield* uuidv7
    const initiated = yield* DateTime.now
    sessions.set(uploadId, {
      key: input.key,
      contentType: input.contentType ?? defaultContentType,
      metadata: { ...input.metadata },
      initiated,
      parts: new Map()
    })
    return { key: input.key, uploadId }
  })

  const putPart = <E = never>(input: PutPartInput<E>) =>
    Effect.gen(function*() {
      yield* checkKeyNotEmpty(input.key)
      yield* checkPartNumber(input.partNumber, 0)
      yield* openSession(input.uploadId, input.key)
      const bytes = yield* collectBody(input.body, input.size, "putPart")
      // Looked up again: the session may have closed while the body arrived.
      const session = yield* openSession(input.uploadId, input.key)
      const etag = md5Hex(bytes)
      session.parts.set(input.partNumber, { bytes, etag })
      return { partNumber: input.partNumber, etag, size: bytes.byteLength }
    }).pipe(
      Effect.withSpan("MemoryObjectStorage.putPart", {
        attributes: { key: input.key, uploadId: input.uploadId, partNumber: input.partNumber }
      })
    )

  const completeMultipart = Effect.fn("MemoryObjectStorage.completeMultipart")(function*(input: CompleteMultipartInput) {
    yield* checkKeyNotEmpty(input.key)
    const session = yield* openSession(input.uploadId, input.key)
    yield* checkPartSequence(input.parts)
    const stored = yield* checkStoredParts(session, input.parts, partSize)
    sessions.delete(input.uploadId)
    const bytes = concatChunks(Chunk.unsafeFromArray(stored.map((part) => part.bytes)))
    return yield* store(
      input.key,
      bytes,
      multipartETag(stored.map((part) => part.etag)),
      session.contentType,
      session.metadata
    )
  })

  const abortMultipart = Effect.fn("MemoryObjectStorage.abortMultipart")(function*(input: MultipartSession) {
    yield* checkKeyNotEmpty(input.key)
    if (sessions.get(input.uploadId)?.key === input.key) sessions.delete(input.uploadId)
  })

  const listMultipartUploads = (prefix = ""): Stream.Stream<MultipartUploadSummary> =>
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

  const multipart: Multipart = {
    partSize,
    maxPartCount: 0,
    initMultipart,
    putPart,
    completeMultipart,
    abortMultipart,
    listMultipartUploads
  }

  return {
    name: "memory",
    putObject,
    getObject,
    statObject,
    deleteObject,
    deleteObjects,
    copyObject,
    listObjects,
    multipart: Option.some(multipart)
  }
}

/** The whole body in one buffer of its own (a given buffer is copied, so the caller may reuse it). */
const collectBody = <E>(body: Body<E>, size: number | undefined, operation: string) =>
  Effect.gen(function*() {
    yield* checkDeclaredSize(operation, size)
    const chunks = yield* Stream.runCollect(withDeclaredSize(bodyStream(body), size, operation))
    const bytes = concatChunks(chunks)
    return bytes === body ? Uint8Array.from(bytes) : bytes
  })

/** The stored parts named by a manifest, after the size and ETag checks of the contract. */
const checkStoredParts = (
  session: Session,
  parts: ReadonlyArray<{ readonly partNumber: number; readonly etag: string }>,
  partSize: number
) =>
  Effect.gen(function*() {
    const stored: Array<StoredPart> = []
    for (const [index, { etag, partNumber }] of parts.entries()) {
      const part = session.parts.get(partNumber)
      yield* checkStoredPart(
        { partNumber, etag, isLast: index === parts.length - 1 },
        part === undefined ? undefined : { size: part.bytes.byteLength, etag: part.etag },
        partSize
      )
      stored.push(part!)
    }
    return stored
  })

/** A stream of copies of `bytes[start, end)`, in read-sized chunks, copied only as they are pulled. */
const chunked = (bytes: Uint8Array, start: number, end: number): Stream.Stream<Uint8Array> =>
  Stream.unfold(start, (at) =>
    at >= end
      ? Option.none()
      : Option.some([bytes.slice(at, Math.min(end, at + readChunkSize)), at + readChunkSize] as const))
