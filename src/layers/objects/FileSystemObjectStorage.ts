/**
 * An `ObjectStorage` on the local filesystem: the embedded default (root
 * `./data/objects` in the configuration), for a single node or a volume
 * shared by several.
 *
 * Layout under the root:
 * - `<key>`: the object's bytes, at the path its key names.
 * - `.meta/<h>/<sha256 of key>.json` (`<h>` its first two hex digits): a
 *   sidecar `{ key, etag, size, contentType, metadata }`. Named by hash, so
 *   that no key can collide with another's sidecar (`a` and `a.json/b`
 *   would, were sidecars named after keys) and length limits stay the data
 *   file's. Without one (or with one whose size no longer matches the
 *   bytes), the ETag is empty and the content type is guessed from the
 *   key's extension.
 * - `.tmp/`: bodies being written; each lands in place with one `rename`,
 *   so a reader sees the old object or the new one whole, never a part.
 *   Also sessions a completion or abort has taken aside,
 *   `<uploadId>.<uuid>.<owner>.closing`, named after the process holding
 *   them (host, boot, pid, start time, when): a backend built later, or the
 *   next request for that session, puts one back only once that process is
 *   gone.
 * - `.multipart/<uploadId>/`: open sessions: `manifest.json` (key, content
 *   type, metadata, part size), `data` and `<n>.etag` per part. A part of
 *   exactly the part size is written once, straight into `data` at its
 *   final offset; any other part (the last one, usually) goes to its own
 *   `<n>.part`. Completion then appends at most that one short part and
 *   moves `data` into place: the object is not written a second time. A
 *   session of other shapes (parts of other sizes) is assembled by copying.
 *
 * Bodies are streamed to and from disk; no object or part is held whole in
 * memory. `ObjectStorage.make` checks every key (`Naming.keyProblem`), so
 * none can escape the root or reach the internal folders.
 *
 * Within one process, writers, readers and deleters of a key take a short
 * per-key lock around the renames and the open, so an object's bytes and its
 * sidecar always match. Processes sharing a volume still never see partial
 * files (the renames are atomic), but a reader racing another process's
 * writer may pair the new bytes with an empty ETag for a moment.
 *
 * @since 0.1.0
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash, randomUUID } from "node:crypto"
import { createReadStream, type Stats } from "node:fs"
import * as fsp from "node:fs/promises"
import { dirname, join, resolve, sep } from "node:path"
import {
  appendToFile,
  closeQuietly,
  errnoOf,
  fileStream,
  fsCall,
  fsFailure,
  ifExists,
  pathConflictCodes,
  removeQuietly,
  writeNewFile
} from "../../internal/files.js"
import * as KeyedSemaphores from "../../internal/keyedSemaphores.js"
import { bodyStream, compareKeys, multipartETag, resolveRange, unquoteETag } from "../../internal/objectStorage.js"
import {
  currentOwner,
  type Owner,
  ownerGone,
  ownerToken,
  ownerTokenPattern,
  parseOwnerToken
} from "../../internal/owner.js"
import { uuidv7 } from "../../internal/uuidv7.js"
import {
  InvalidObjectKey,
  isStorageBackendError,
  ObjectNotFound,
  PartETagMismatch,
  type StorageBackendError,
  UploadSessionNotFound
} from "../../schema/Errors.js"
import type { ObjectInfo } from "../../schema/Models.js"
import { contentTypeOf, reservedFirstSegments } from "../../schema/Naming.js"
import * as ObjectStorage from "../../services/ObjectStorage.js"
import type {
  CompleteMultipartInput,
  DriverPutObjectInput,
  DriverPutPartInput,
  GetObjectInput,
  MultipartDriver,
  MultipartSession,
  MultipartUploadSummary,
  ObjectStorageDriver,
  ObjectSummary,
  PartRef,
  StoredPart
} from "../../services/ObjectStorage.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface FileSystemObjectStorageOptions {
  /** The folder holding the objects; created when missing. */
  readonly root: string
  /** The multipart part size; 4 MiB when absent, zero or negative. */
  readonly partSize?: number | undefined
  /**
   * How long a session taken aside by a process on another host (a
   * completion or abort under way) is left alone before it counts as
   * abandoned and is put back when a backend is built; `staleClosingAge`
   * (one hour) when absent. Owners on this host are checked directly.
   */
  readonly closingTimeout?: Duration.DurationInput | undefined
}

/**
 * The default part size: 4 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPartSize = 4 * 1024 * 1024

/**
 * Builds a backend over `root`, creating its folders.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: FileSystemObjectStorageOptions
): Effect.Effect<ObjectStorage.ObjectStorage["Type"], StorageBackendError> =>
  Effect.gen(function*() {
    const partSize = options.partSize !== undefined && options.partSize > 0 ? options.partSize : defaultPartSize
    const paths = makePaths(resolve(options.root))
    yield* fsCall("init", async () => {
      for (const folder of [paths.tmp, paths.meta, paths.multipart]) await fsp.mkdir(folder, { recursive: true })
    })
    const closingTimeout = options.closingTimeout === undefined
      ? staleClosingAge
      : Duration.toMillis(Duration.decode(options.closingTimeout))
    yield* recoverAfterCrash(paths, Date.now(), closingTimeout)
    return ObjectStorage.make(makeDriver(paths, partSize, closingTimeout))
  })

/**
 * A layer with a filesystem backend over `root`. It needs nothing else: it
 * uses `node:fs` directly.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: FileSystemObjectStorageOptions
): Layer.Layer<ObjectStorage.ObjectStorage, StorageBackendError> =>
  Layer.effect(ObjectStorage.ObjectStorage, make(options))

/**
 * How long a temporary file may go unwritten before it counts as left by a
 * crash. Longer than any pause of a live write, so a volume shared by
 * several instances is safe.
 *
 * @since 0.1.0
 * @category constants
 */
export const staleTemporaryAge = 60 * 60 * 1000

/**
 * How long a session taken aside by a process on another host is left
 * alone (the default of `closingTimeout`): far longer than any completion,
 * which moves one file into place or copies one object.
 *
 * @since 0.1.0
 * @category constants
 */
export const staleClosingAge = 60 * 60 * 1000

// ---- internal ----

/**
 * What a crash leaves in `.tmp`, put right when the backend is built:
 * - a session taken aside by a complete (or an abort) whose owner is gone
 *   goes back to `.multipart`, so the complete can be retried (redone if
 *   it had in fact finished: the object is rewritten with the same bytes;
 *   a repeated abort finds it again). Its name records its owner (see
 *   `takeSessionAside`), so a session a live process of this host or of
 *   another holds is left alone: putting it back under a running completion
 *   would let the completion remove parts that the session still lists, or
 *   a second completion start on it. An owner on another host cannot be
 *   checked: its session waits `closingTimeout`. Names without an owner
 *   were made by versions that recorded none; those are put back at once,
 *   as those versions did;
 * - bodies and staging folders not written for `staleTemporaryAge` are
 *   removed.
 */
const recoverAfterCrash = (paths: Paths, now: number, closingTimeout: number) =>
  fsCall("recover", async () => {
    for (const name of await fsp.readdir(paths.tmp)) {
      const path = join(paths.tmp, name)
      const closing = parseClosingName(name)
      if (closing !== undefined) {
        if (closing.owner !== undefined && !ownerGone(closing.owner, now, closingTimeout)) continue
        const restored = await fsp.rename(path, paths.session(closing.uploadId)).then(() => true, () => false)
        if (restored) continue
        // Its session is open again (a retry opened none; this is a
        // leftover copy): what is taken aside can go.
        await fsp.rm(path, { recursive: true, force: true })
        continue
      }
      const stat = await ifExists(fsp.stat(path))
      if (stat !== undefined && now - stat.mtimeMs > staleTemporaryAge) {
        await fsp.rm(path, { recursive: true, force: true })
      }
    }
  })

const closingPattern = new RegExp(
  `^([0-9a-f-]{36})\\.[0-9a-f-]{36}(?:\\.(${ownerTokenPattern}))?\\.closing$`
)

/** The session and owner a taken-aside name records (no owner: made by an older version). */
const parseClosingName = (name: string): { readonly uploadId: string; readonly owner?: Owner } | undefined => {
  const match = closingPattern.exec(name)
  if (match === null || !uploadIdPattern.test(match[1]!)) return undefined
  if (match[2] === undefined) return { uploadId: match[1]! }
  const owner = parseOwnerToken(match[2])
  return owner === undefined ? undefined : { uploadId: match[1]!, owner }
}

/** The backend's own folders beside the objects: the key syntax reserves their names. */
const internalFolders = reservedFirstSegments

/** Upload ids this backend makes are UUIDs; anything else cannot name a session folder safely. */
const uploadIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface Paths {
  readonly root: string
  readonly tmp: string
  readonly meta: string
  readonly multipart: string
  readonly object: (key: string) => string
  readonly sidecar: (key: string) => string
  readonly temp: () => string
  readonly session: (uploadId: string) => string
}

const makePaths = (root: string): Paths => {
  const tmp = join(root, ".tmp")
  const meta = join(root, ".meta")
  const multipart = join(root, ".multipart")
  return {
    root,
    tmp,
    meta,
    multipart,
    object: (key) => join(root, ...key.split("/")),
    sidecar: (key) => {
      const hash = createHash("sha256").update(key).digest("hex")
      return join(meta, hash.slice(0, 2), `${hash}.json`)
    },
    temp: () => join(tmp, randomUUID()),
    session: (uploadId) => join(multipart, uploadId)
  }
}

const Sidecar = Schema.Struct({
  key: Schema.String,
  etag: Schema.String,
  size: Schema.Number,
  contentType: Schema.String,
  metadata: Schema.Record({ key: Schema.String, value: Schema.String })
})
type Sidecar = typeof Sidecar.Type
const decodeSidecar = Schema.decodeUnknownOption(Schema.parseJson(Sidecar))

const Manifest = Schema.Struct({
  key: Schema.String,
  contentType: Schema.String,
  metadata: Schema.Record({ key: Schema.String, value: Schema.String }),
  initiated: Schema.Number,
  /** The size of the parts written into `data` (absent in sessions made before there was `data`). */
  partSize: Schema.optional(Schema.Number)
})
type Manifest = typeof Manifest.Type
const decodeManifest = Schema.decodeUnknownOption(Schema.parseJson(Manifest))

const makeDriver = (paths: Paths, partSize: number, closingTimeout: number): ObjectStorageDriver => {
  const keyLocks = KeyedSemaphores.make(1)
  const withKeyLock = (key: string) => keyLocks(key, 1)
  // Within this process, part writers share a session and its completion
  // (or abort) has it alone, so no part lands in `data` while it is linked
  // into place.
  const sessionWriters = KeyedSemaphores.make(sessionPermits)

  const readSidecar = (key: string, size: number) =>
    Effect.map(
      fsCall("readSidecar", () => ifExists(fsp.readFile(paths.sidecar(key), "utf8"))),
      (text) =>
        Option.filter(
          text === undefined ? Option.none<Sidecar>() : decodeSidecar(text),
          (sidecar) => sidecar.key === key && sidecar.size === size
        )
    )

  const infoOf = (key: string, stat: Stats, sidecar: Option.Option<Sidecar>): ObjectInfo => ({
    key,
    size: stat.size,
    lastModified: DateTime.unsafeMake(stat.mtime),
    eTag: Option.match(sidecar, { onNone: () => "", onSome: (s) => s.etag }),
    contentType: Option.match(sidecar, { onNone: () => contentTypeOf(key), onSome: (s) => s.contentType }),
    metadata: Option.match(sidecar, { onNone: () => ({}), onSome: (s) => s.metadata })
  })

  const statFile = (operation: string, key: string) =>
    Effect.flatMap(
      fsCall(operation, () => ifExists(fsp.stat(paths.object(key)))),
      (stat) => stat?.isFile() ? Effect.succeed(stat) : Effect.fail(new ObjectNotFound({ key }))
    )

  /**
   * Opens an object for reading with its metadata. The open file keeps
   * the bytes of that moment even if a writer replaces the object next.
   */
  const openObject = (operation: string, key: string) =>
    withKeyLock(key)(
      // Uninterruptible so an opened handle is never dropped unclosed.
      Effect.uninterruptible(Effect.gen(function*() {
        const handle = yield* fsCall(operation, () => ifExists(fsp.open(paths.object(key), "r")))
        if (handle === undefined) return yield* new ObjectNotFound({ key })
        return yield* Effect.gen(function*() {
          const stat = yield* fsCall(operation, () => handle.stat())
          if (!stat.isFile()) return yield* new ObjectNotFound({ key })
          const sidecar = yield* readSidecar(key, stat.size)
          return { handle, info: infoOf(key, stat, sidecar) }
        }).pipe(Effect.onError(() => closeQuietly(handle)))
      }))
    )

  /** A new temp file holding the body; removed after `use` unless `use` moved it into place. */
  const withBodyInTempFile = <E, A, E2>(
    operation: string,
    body: Stream.Stream<Uint8Array, E>,
    use: (file: { readonly path: string; readonly size: number; readonly md5: string }) => Effect.Effect<A, E2>
  ) =>
    Effect.acquireUseRelease(
      Effect.sync(paths.temp),
      (path) => Effect.flatMap(writeNewFile(operation, path, body), (written) => use({ path, ...written })),
      removeQuietly
    )

  const writeSidecarTemp = (sidecar: Sidecar) =>
    Effect.gen(function*() {
      const path = paths.temp()
      yield* fsCall("writeSidecar", () => fsp.writeFile(path, JSON.stringify(sidecar), { flag: "wx" }))
      return path
    })

  /**
   * Moves a written body and its sidecar into place. The old sidecar goes
   * first: a crash in between leaves an object with no sidecar (empty ETag),
   * never one paired with another object's ETag.
   */
  const commitObject = (operation: string, key: string, bodyPath: string, sidecar: Sidecar) =>
    Effect.acquireUseRelease(
      writeSidecarTemp(sidecar),
      (sidecarPath) =>
        withKeyLock(key)(Effect.gen(function*() {
          yield* fsCall(operation, () => ifExists(fsp.unlink(paths.sidecar(key))))
          yield* renameIntoPlace(operation, bodyPath, paths.object(key))
          yield* renameIntoPlace(operation, sidecarPath, paths.sidecar(key))
          const stat = yield* fsCall(operation, () => fsp.stat(paths.object(key)))
          return infoOf(key, stat, Option.some(sidecar))
        })).pipe(Effect.catchIf(isPathConflict, () =>
          Effect.fail(
            new InvalidObjectKey({ key, message: "the key collides with an existing object or folder of keys" })
          ))),
      removeQuietly
    )

  const putObject = <E>(input: DriverPutObjectInput<E>) =>
    withBodyInTempFile("putObject", bodyStream(input.body), (file) =>
      commitObject("putObject", input.key, file.path, {
        key: input.key,
        etag: file.md5,
        size: file.size,
        contentType: input.contentType,
        metadata: { ...input.metadata }
      }))

  const getObject = (input: GetObjectInput) =>
    Effect.gen(function*() {
      const { handle, info } = yield* openObject("getObject", input.key)
      const { end, start } = resolveRange(info.size, input.range)
      if (start >= end) {
        yield* closeQuietly(handle)
        return { info, body: Stream.empty }
      }
      const body = NodeStream.fromReadable<StorageBackendError>(
        // autoClose: the handle is closed when the stream ends or is destroyed.
        () => handle.createReadStream({ start, end: end - 1, autoClose: true }),
        (cause) => fsFailure("getObject", cause)
      )
      return { info, body }
    })

  const statObject = (key: string) =>
    withKeyLock(key)(Effect.gen(function*() {
      const stat = yield* statFile("statObject", key)
      return infoOf(key, stat, yield* readSidecar(key, stat.size))
    }))

  const deleteObject = (key: string) =>
    Effect.zipRight(
      withKeyLock(key)(fsCall("deleteObject", async () => {
        await ifExists(fsp.unlink(paths.sidecar(key)))
        const stat = await ifExists(fsp.lstat(paths.object(key)))
        // A folder of other keys is not an object: leave it alone.
        if (stat?.isFile()) await ifExists(fsp.unlink(paths.object(key)))
      })),
      fsCall("deleteObject", () => removeEmptyParents(dirname(paths.object(key)), paths.root))
    )

  const copyObject = (from: string, to: string) =>
    Effect.gen(function*() {
      const source = yield* openObject("copyObject", from)
      const bytes = NodeStream.fromReadable<StorageBackendError>(
        () => source.handle.createReadStream({ autoClose: true }),
        (cause) => fsFailure("copyObject", cause)
      )
      return yield* withBodyInTempFile("copyObject", bytes, (file) =>
        commitObject("copyObject", to, file.path, {
          key: to,
          etag: file.md5,
          size: file.size,
          contentType: source.info.contentType,
          metadata: source.info.metadata
        })).pipe(Effect.ensuring(closeQuietly(source.handle)))
    })

  const summaryOf = (key: string) =>
    Effect.gen(function*() {
      const stat = yield* fsCall("listObjects", () => ifExists(fsp.stat(paths.object(key))))
      // Deleted since the folder was read, or replaced by a folder: skip it.
      if (!stat?.isFile()) return Option.none<ObjectSummary>()
      const sidecar = yield* readSidecar(key, stat.size)
      const info = infoOf(key, stat, sidecar)
      return Option.some<ObjectSummary>({
        key,
        size: info.size,
        eTag: info.eTag,
        lastModified: info.lastModified
      })
    })

  /** A folder's objects in key order, reading each sub-folder only when the walk reaches it. */
  const walk = (folder: string, folderKey: string, prefix: string): Stream.Stream<ObjectSummary, StorageBackendError> =>
    Stream.unwrap(
      Effect.map(
        readListingEntries(folder, folderKey, prefix, folder === paths.root),
        (entries) =>
          Stream.flatMap(Stream.fromIterable(entries), (entry) =>
            entry.isFolder
              ? walk(join(folder, entry.name), `${entry.key}/`, prefix)
              : Stream.filterMap(Stream.fromEffect(summaryOf(entry.key)), (summary) => summary))
      )
    )

  const listObjects = (prefix = ""): Stream.Stream<ObjectSummary, StorageBackendError> =>
    Stream.suspend(() => walk(paths.root, "", prefix))

  // ---- multipart ----

  const sessionNotFound = (uploadId: string) =>
    new UploadSessionNotFound({ message: `no open multipart upload ${uploadId}` })

  const readManifest = (uploadId: string) =>
    uploadIdPattern.test(uploadId)
      ? Effect.map(
        fsCall("readManifest", () => ifExists(fsp.readFile(join(paths.session(uploadId), "manifest.json"), "utf8"))),
        (text) => text === undefined ? Option.none<Manifest>() : decodeManifest(text)
      )
      : Effect.succeed(Option.none<Manifest>())

  /**
   * The session's manifest; `UploadSessionNotFound` when closed, unknown, or
   * for another key. A session that a dead process had taken aside is put
   * back first (see `restoreAbandoned`).
   */
  const openSession = (uploadId: string, key: string) =>
    Effect.flatMap(
      readOrRestoreManifest("openSession", uploadId, key),
      (manifest) =>
        Option.isSome(manifest) && manifest.value.key === key
          ? Effect.succeed(manifest.value)
          : Effect.fail(sessionNotFound(uploadId))
    )

  /** The open session's manifest; when none is open, after putting back one that a dead process took aside. */
  const readOrRestoreManifest = (operation: string, uploadId: string, key: string) =>
    Effect.flatMap(readManifest(uploadId), (manifest) =>
      Option.isSome(manifest)
        ? Effect.succeed(manifest)
        : Effect.flatMap(
          restoreAbandoned(operation, uploadId, key),
          (restored) => restored ? readManifest(uploadId) : Effect.succeed(manifest)
        ))

  /**
   * Puts back a session of `key` that a completion or abort took aside and
   * whose owner is gone (killed mid-way), as `recoverAfterCrash` does when a
   * backend is built, but at once: the retry of that completion on another
   * instance, or the delete queue's abort, must not wait for a restart
   * (which a server that never comes back never does). Owners on another
   * host count as gone after `closingTimeout`; names without an owner are
   * left to `recoverAfterCrash`. Answers whether a session was put back
   * (by this call; another may have won the rename).
   */
  const restoreAbandoned = (operation: string, uploadId: string, key: string) =>
    fsCall(operation, async () => {
      if (!uploadIdPattern.test(uploadId)) return false
      const now = Date.now()
      for (const name of await fsp.readdir(paths.tmp)) {
        if (!name.startsWith(`${uploadId}.`)) continue
        const closing = parseClosingName(name)
        if (closing?.uploadId !== uploadId || closing.owner === undefined) continue
        if (!ownerGone(closing.owner, now, closingTimeout)) continue
        const from = join(paths.tmp, name)
        const text = await ifExists(fsp.readFile(join(from, "manifest.json"), "utf8"))
        const manifest = text === undefined ? Option.none<Manifest>() : decodeManifest(text)
        if (Option.isNone(manifest) || manifest.value.key !== key) continue
        if (await fsp.rename(from, paths.session(uploadId)).then(() => true, () => false)) return true
      }
      return false
    })

  /**
   * Takes a session folder aside from `.multipart` in one rename, so that
   * exactly one completer or aborter wins, even across processes. The new
   * name, `<uploadId>.<uuid>.<owner>.closing`, records who took it and when,
   * in that same rename. Answers where it went, or `undefined` when someone
   * else took it first.
   */
  const takeSessionAside = (operation: string, uploadId: string) =>
    fsCall(operation, async () => {
      const aside = join(paths.tmp, `${uploadId}.${randomUUID()}.${ownerToken(currentOwner(Date.now()))}.closing`)
      return (await renameIfPresent(paths.session(uploadId), aside)) ? aside : undefined
    })

  const initMultipart: MultipartDriver["initMultipart"] = (input) =>
    Effect.gen(function*() {
      const uploadId = yield* uuidv7
      const manifest: Manifest = {
        key: input.key,
        contentType: input.contentType,
        metadata: { ...input.metadata },
        initiated: Date.now(),
        partSize
      }
      // Built aside and renamed in, so a session folder always has its manifest.
      const staging = paths.temp()
      yield* fsCall("initMultipart", async () => {
        await fsp.mkdir(staging)
        await fsp.writeFile(join(staging, "data"), "")
        await fsp.writeFile(join(staging, "manifest.json"), JSON.stringify(manifest))
        await fsp.rename(staging, paths.session(uploadId))
      }).pipe(Effect.onError(() => removeQuietly(staging)))
      return { key: input.key, uploadId }
    })

  const putPart = <E>(input: DriverPutPartInput<E>) =>
    Effect.flatMap(
      openSession(input.uploadId, input.key),
      (manifest) =>
        manifest.partSize !== undefined && input.size === manifest.partSize
          ? sessionWriters(input.uploadId, 1)(
            withKeyLock(`${input.uploadId}#${input.partNumber}`)(
              writePartInPlace(input, manifest.partSize)
            )
          )
          : withBodyInTempFile("putPart", bodyStream(input.body), (file) =>
            storePart(input.uploadId, input.partNumber, file.path, file.md5).pipe(
              Effect.as({ partNumber: input.partNumber, etag: file.md5, size: file.size })
            ))
    )

  /**
   * Writes a part of exactly the part size into `data` at its offset. The
   * part's record goes first and comes back last, so a write cut short
   * leaves the part missing (to be sent again), never a record over other
   * bytes.
   */
  const writePartInPlace = <E>(input: DriverPutPartInput<E>, size: number) =>
    Effect.gen(function*() {
      const folder = paths.session(input.uploadId)
      const { partNumber } = input
      yield* fsCall("putPart", async () => {
        await ifExists(fsp.unlink(join(folder, `${partNumber}.etag`)))
        await ifExists(fsp.unlink(join(folder, `${partNumber}.part`)))
      })
      const handle = yield* fsCall("putPart", () => ifExists(fsp.open(join(folder, "data"), "r+")))
      if (handle === undefined) return yield* sessionNotFound(input.uploadId)
      const md5 = yield* Effect.gen(function*() {
        const hash = createHash("md5")
        yield* writeAt(
          "putPart",
          handle,
          (partNumber - 1) * size,
          bodyStream(input.body),
          (bytes) => hash.update(bytes)
        )
        yield* fsCall("putPart", () => handle.datasync())
        return hash.digest("hex")
      }).pipe(Effect.ensuring(closeQuietly(handle)))
      yield* recordETag(input.uploadId, partNumber, md5)
      return { partNumber, etag: md5, size }
    })

  /** Puts a part's ETag record in place; `UploadSessionNotFound` when the session was closed meanwhile. */
  const recordETag = (uploadId: string, partNumber: number, etag: string) =>
    Effect.acquireUseRelease(
      Effect.sync(paths.temp),
      (etagPath) =>
        fsCall("putPart", async () => {
          await fsp.writeFile(etagPath, etag, { flag: "wx" })
          return renameIfPresent(etagPath, join(paths.session(uploadId), `${partNumber}.etag`))
        }).pipe(Effect.flatMap((moved) => moved ? Effect.void : Effect.fail(sessionNotFound(uploadId)))),
      removeQuietly
    )

  /**
   * Moves a part written on its own and its ETag into the session folder.
   * Never creates the folder: when it is gone, the session was closed meanwhile.
   */
  const storePart = (uploadId: string, partNumber: number, partPath: string, etag: string) =>
    Effect.acquireUseRelease(
      Effect.sync(paths.temp),
      (etagPath) =>
        withKeyLock(`${uploadId}#${partNumber}`)(fsCall("putPart", async () => {
          const folder = paths.session(uploadId)
          await fsp.writeFile(etagPath, etag, { flag: "wx" })
          return (await renameIfPresent(partPath, join(folder, `${partNumber}.part`))) &&
            (await renameIfPresent(etagPath, join(folder, `${partNumber}.etag`)))
        })).pipe(Effect.flatMap((moved) => moved ? Effect.void : Effect.fail(sessionNotFound(uploadId)))),
      removeQuietly
    )

  /** The stored parts of a session folder: those in `data` (no `.part` file) and those on their own. */
  const readParts = (folder: string, manifest: Manifest) =>
    fsCall("completeMultipart", async () => {
      const parts = new Map<number, StoredPart & { readonly inPlace: boolean }>()
      for (const name of (await ifExists(fsp.readdir(folder))) ?? []) {
        const match = /^(\d+)\.etag$/.exec(name)
        if (match === null) continue
        const partNumber = Number(match[1])
        const etag = await ifExists(fsp.readFile(join(folder, name), "utf8"))
        if (etag === undefined) continue
        const own = await ifExists(fsp.stat(join(folder, `${partNumber}.part`)))
        if (own !== undefined) parts.set(partNumber, { etag, size: own.size, inPlace: false })
        else if (manifest.partSize !== undefined) {
          parts.set(partNumber, { etag, size: manifest.partSize, inPlace: true })
        }
      }
      return parts
    })

  /** Every part stored in an open session, with its size and ETag. */
  const storedParts = (input: MultipartSession) =>
    Effect.flatMap(
      openSession(input.uploadId, input.key),
      (manifest) => readParts(paths.session(input.uploadId), manifest)
    )

  /**
   * Streams the parts, in order, into a new file, checking each part's MD5
   * against its ETag on the way. For sessions whose parts are not laid out
   * in `data`.
   */
  const assembleByCopy = (
    path: string,
    folder: string,
    parts: ReadonlyArray<PartRef>,
    stored: ReadonlyMap<number, { readonly inPlace: boolean; readonly size: number }>,
    manifest: Manifest
  ) =>
    Effect.acquireUseRelease(
      fsCall("completeMultipart", () => fsp.open(path, "wx")),
      (handle) =>
        Effect.gen(function*() {
          for (const { etag, partNumber } of parts) {
            const hash = createHash("md5")
            const part = stored.get(partNumber)!
            const bytes = part.inPlace
              ? fileRange("completeMultipart", join(folder, "data"), (partNumber - 1) * manifest.partSize!, part.size)
              : fileStream("completeMultipart", join(folder, `${partNumber}.part`))
            yield* appendToFile("completeMultipart", handle, bytes, (b) => hash.update(b))
            if (hash.digest("hex") !== unquoteETag(etag)) {
              return yield* new PartETagMismatch({ message: `part ${partNumber} changed during completion` })
            }
          }
          yield* fsCall("completeMultipart", () => handle.datasync())
          return (yield* fsCall("completeMultipart", () => handle.stat())).size
        }),
      closeQuietly
    )

  /**
   * Makes `data` the object's bytes when every part but the last lies in it:
   * the last part is appended when it was written on its own (at most one
   * part copied) and the file cut to its length; it is then moved into
   * place as it is.
   */
  const assembleInPlace = (
    folder: string,
    parts: ReadonlyArray<PartRef>,
    stored: ReadonlyMap<number, { readonly inPlace: boolean; readonly size: number }>,
    manifest: Manifest
  ) =>
    Effect.gen(function*() {
      const last = parts[parts.length - 1]!.partNumber
      const lastPart = stored.get(last)!
      const size = (last - 1) * manifest.partSize! + lastPart.size
      const data = join(folder, "data")
      const handle = yield* fsCall("completeMultipart", () => ifExists(fsp.open(data, "r+")))
      // Moved into place by a completion that a crash cut short before it
      // removed the session: the object is there (the caller checks it), and
      // what is left of the session goes.
      if (handle === undefined) {
        yield* removeQuietly(folder)
        return yield* new UploadSessionNotFound({ message: "the upload was completed already" })
      }
      yield* Effect.gen(function*() {
        if (!lastPart.inPlace) {
          const bytes = fileStream("completeMultipart", join(folder, `${last}.part`))
          yield* writeAt("completeMultipart", handle, (last - 1) * manifest.partSize!, bytes, () => {})
        }
        yield* fsCall("completeMultipart", () => handle.truncate(size))
        yield* fsCall("completeMultipart", () => handle.datasync())
      }).pipe(Effect.ensuring(closeQuietly(handle)))
      return size
    })

  const completeMultipart = (input: CompleteMultipartInput) =>
    sessionWriters(input.uploadId, sessionPermits)(Effect.gen(function*() {
      const manifest = yield* openSession(input.uploadId, input.key)
      // Taken aside first: from here no other completion or abort can have it.
      const aside = yield* takeSessionAside("completeMultipart", input.uploadId)
      if (aside === undefined) return yield* sessionNotFound(input.uploadId)
      return yield* Effect.acquireUseRelease(
        Effect.sync(paths.temp),
        (assembled) =>
          Effect.gen(function*() {
            // Checked again now that no part can change: the records match the manifest given.
            const stored = yield* readParts(aside, manifest)
            for (const { etag, partNumber } of input.parts) {
              if (stored.get(partNumber)?.etag !== unquoteETag(etag)) {
                return yield* new PartETagMismatch({ message: `part ${partNumber} changed before completion` })
              }
            }
            const inPlace = manifest.partSize !== undefined &&
              input.parts.slice(0, -1).every(({ partNumber }) => stored.get(partNumber)!.inPlace)
            const size = inPlace
              ? yield* assembleInPlace(aside, input.parts, stored, manifest)
              : yield* assembleByCopy(assembled, aside, input.parts, stored, manifest)
            const sidecar: Sidecar = {
              key: input.key,
              etag: multipartETag(input.parts.map((part) => unquoteETag(part.etag))),
              size,
              contentType: manifest.contentType,
              metadata: manifest.metadata
            }
            const info = yield* commitObject(
              "completeMultipart",
              input.key,
              inPlace ? join(aside, "data") : assembled,
              sidecar
            )
            yield* removeQuietly(aside)
            return info
          }).pipe(
            // Put the session back so the caller may retry.
            Effect.onError(() => ignoreFailure(fsp.rename(aside, paths.session(input.uploadId))))
          ),
        removeQuietly
      )
    }))

  const abortMultipart = (input: MultipartSession) =>
    sessionWriters(input.uploadId, sessionPermits)(Effect.gen(function*() {
      // A session that a dead completion or abort had taken aside is put back, and aborted.
      const manifest = yield* readOrRestoreManifest("abortMultipart", input.uploadId, input.key)
      // Unknown, closed or someone else's session: nothing to abort.
      if (Option.isNone(manifest) || manifest.value.key !== input.key) return
      const aside = yield* takeSessionAside("abortMultipart", input.uploadId)
      if (aside !== undefined) yield* removeQuietly(aside)
    }))

  const listMultipartUploads = (prefix = ""): Stream.Stream<MultipartUploadSummary, StorageBackendError> =>
    Stream.unwrap(Effect.gen(function*() {
      const ids = yield* fsCall("listMultipartUploads", () => fsp.readdir(paths.multipart))
      const sessions: Array<MultipartUploadSummary> = []
      for (const uploadId of ids) {
        const manifest = yield* readManifest(uploadId)
        if (Option.isSome(manifest) && manifest.value.key.startsWith(prefix)) {
          sessions.push({
            key: manifest.value.key,
            uploadId,
            initiated: DateTime.unsafeMake(manifest.value.initiated)
          })
        }
      }
      sessions.sort((a, b) => compareKeys(a.key, b.key) || compareKeys(a.uploadId, b.uploadId))
      return Stream.fromIterable(sessions)
    }))

  return {
    name: "filesystem",
    putObject,
    getObject,
    statObject,
    deleteObject,
    deleteObjects: (keys) =>
      Effect.map(
        Effect.forEach(keys, (key) => Effect.either(deleteObject(key)), { concurrency: 8 }),
        (outcomes) => {
          const failed = new Map<string, StorageBackendError>()
          outcomes.forEach((outcome, i) => {
            if (outcome._tag === "Left") failed.set(keys[i]!, outcome.left)
          })
          return failed
        }
      ),
    copyObject,
    listObjects,
    multipart: Option.some<MultipartDriver>({
      partSize,
      maxPartCount: 0,
      initMultipart,
      putPart,
      storedParts,
      completeMultipart,
      abortMultipart,
      listMultipartUploads
    })
  }
}

interface ListingEntry {
  readonly name: string
  readonly key: string
  readonly isFolder: boolean
}

/**
 * A folder's entries that can hold keys under `prefix`, sorted so that the
 * walk yields keys in order: a folder sorts as its name plus `/`, which is
 * how every key inside it begins.
 */
const readListingEntries = (folder: string, folderKey: string, prefix: string, isRoot: boolean) =>
  Effect.map(
    fsCall("listObjects", () => ifExists(fsp.readdir(folder, { withFileTypes: true }))),
    (dirents) => {
      const entries: Array<ListingEntry & { readonly sortKey: string }> = []
      for (const dirent of dirents ?? []) {
        if (isRoot && internalFolders.includes(dirent.name)) continue
        const key = `${folderKey}${dirent.name}`
        if (dirent.isDirectory()) {
          const inside = `${key}/`
          if (inside.startsWith(prefix) || prefix.startsWith(inside)) {
            entries.push({ name: dirent.name, key, isFolder: true, sortKey: inside })
          }
        } else if (dirent.isFile() && key.startsWith(prefix)) {
          entries.push({ name: dirent.name, key, isFolder: false, sortKey: key })
        }
      }
      return entries.sort((a, b) => compareKeys(a.sortKey, b.sortKey))
    }
  )

/**
 * Renames into a folder made on the way. A concurrent delete may remove
 * that folder (it prunes empty parents) between the mkdir and the rename,
 * or even within a recursive mkdir (which finds the folder, then fails to
 * stat it), so a missing folder is retried a few times.
 */
const renameIntoPlace = (operation: string, from: string, to: string) =>
  fsCall(operation, async () => {
    for (let attempt = 1;; attempt++) {
      try {
        await fsp.mkdir(dirname(to), { recursive: true })
        return await fsp.rename(from, to)
      } catch (error) {
        if (errnoOf(error) !== "ENOENT" || attempt >= 5) throw error
      }
    }
  })

/** Removes `folder` and its parents while they are empty, stopping at `stop`. */
const removeEmptyParents = async (folder: string, stop: string) => {
  let current = folder
  while (current.startsWith(`${stop}${sep}`)) {
    try {
      await fsp.rmdir(current)
    } catch {
      // Not empty (or already gone, or in use): the walk ends here.
      return
    }
    current = dirname(current)
  }
}

/** Renames without making folders; `false` when the source or the target's folder is missing. */
const renameIfPresent = async (from: string, to: string): Promise<boolean> => {
  try {
    await fsp.rename(from, to)
    return true
  } catch (error) {
    const code = errnoOf(error)
    if (code === "ENOENT" || code === "ENOTDIR") return false
    throw error
  }
}

const isPathConflict = (error: unknown): boolean =>
  isStorageBackendError(error) && pathConflictCodes.includes(errnoOf(error.cause) ?? "")

const ignoreFailure = (promise: Promise<unknown>) =>
  Effect.promise(() => promise.then(() => undefined, () => undefined))

/** The permits of a session's semaphore: a part writer takes one, completion and abort take all. */
const sessionPermits = 64

/** Writes a stream into an open file from `position` on, showing each written buffer to `onBytes`. */
const writeAt = <E>(
  operation: string,
  handle: fsp.FileHandle,
  position: number,
  body: Stream.Stream<Uint8Array, E>,
  onBytes: (bytes: Uint8Array) => void
): Effect.Effect<void, E | StorageBackendError> =>
  Effect.suspend(() => {
    let at = position
    return Stream.runForEachChunk(body, (chunk) => {
      const arrays = [...chunk]
      const bytes = arrays.length === 1 ? arrays[0]! : Buffer.concat(arrays)
      onBytes(bytes)
      const offset = at
      at += bytes.byteLength
      return fsCall(operation, async () => {
        let written = 0
        while (written < bytes.byteLength) {
          written += (await handle.write(bytes, written, bytes.byteLength - written, offset + written)).bytesWritten
        }
      })
    })
  })

/** `length` bytes of a file from `start`, as a stream. */
const fileRange = (operation: string, path: string, start: number, length: number) =>
  NodeStream.fromReadable<StorageBackendError>(
    () => createReadStream(path, { start, end: start + length - 1 }),
    (cause) => fsFailure(operation, cause)
  )
