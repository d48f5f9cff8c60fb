/**
 * Small `node:fs` helpers for the filesystem backend and the S3 backend's
 * spooling: calls mapped to `StorageBackendError`, streaming a body into a
 * new file, and quiet clean-up.
 *
 * @internal
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fsp from "node:fs/promises"
import { StorageBackendError } from "../schema/Errors.js"

/** The `code` of a Node.js system error (`ENOENT`, ...). @internal */
export const errnoOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

/** Errors that mean a path is taken by something of the other kind (file vs folder). @internal */
export const pathConflictCodes: ReadonlyArray<string> = ["ENOTDIR", "EEXIST", "EISDIR", "ENOTEMPTY"]

/** A filesystem failure as a `StorageBackendError`, keeping the original as `cause`. @internal */
export const fsFailure = (operation: string, cause: unknown): StorageBackendError => {
  const code = errnoOf(cause)
  const reason = code === "EACCES" || code === "EPERM" || code === "EROFS"
    ? "access_denied"
    : code !== undefined && (pathConflictCodes.includes(code) || code === "ENAMETOOLONG")
    ? "invalid"
    : "transient"
  const message = cause instanceof Error ? cause.message : String(cause)
  return new StorageBackendError({ operation, reason, message: `${operation}: ${message}`, cause })
}

/** Runs a `node:fs` call, failing with `fsFailure`. @internal */
export const fsCall = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StorageBackendError> =>
  Effect.tryPromise({ try: run, catch: (cause) => fsFailure(operation, cause) })

/** The promise's value, or `undefined` when the path (or one of its folders) does not exist. @internal */
export const ifExists = async <A>(promise: Promise<A>): Promise<A | undefined> => {
  try {
    return await promise
  } catch (error) {
    const code = errnoOf(error)
    if (code === "ENOENT" || code === "ENOTDIR") return undefined
    throw error
  }
}

/** Removes a file or folder; never fails (clean-up must not hide the real outcome). @internal */
export const removeQuietly = (path: string): Effect.Effect<void> =>
  Effect.promise(() => fsp.rm(path, { recursive: true, force: true }).catch(() => undefined))

/** Closes a file handle; never fails. @internal */
export const closeQuietly = (handle: fsp.FileHandle): Effect.Effect<void> =>
  Effect.promise(() => handle.close().catch(() => undefined))

/** A file's bytes as a stream; the file is closed when the stream ends or is interrupted. @internal */
export const fileStream = (operation: string, path: string): Stream.Stream<Uint8Array, StorageBackendError> =>
  NodeStream.fromReadable<StorageBackendError>(() => createReadStream(path), (cause) => fsFailure(operation, cause))

/**
 * Writes a stream into a file that must not exist yet, flushed to disk
 * before it returns (so a rename that follows cannot leave an empty file
 * after a crash). Answers the size and MD5 of what was written.
 *
 * @internal
 */
export const writeNewFile = <E>(
  operation: string,
  path: string,
  body: Stream.Stream<Uint8Array, E>
): Effect.Effect<{ readonly size: number; readonly md5: string }, E | StorageBackendError> =>
  Effect.acquireUseRelease(
    fsCall(operation, () => fsp.open(path, "wx")),
    (handle) =>
      Effect.gen(function*() {
        const hash = createHash("md5")
        let size = 0
        yield* appendToFile(operation, handle, body, (bytes) => {
          hash.update(bytes)
          size += bytes.byteLength
        })
        yield* fsCall(operation, () => handle.datasync())
        return { size, md5: hash.digest("hex") }
      }),
    closeQuietly
  )

/** Appends a stream to an open file, chunk by chunk, showing each written buffer to `onBytes`. @internal */
export const appendToFile = <E>(
  operation: string,
  handle: fsp.FileHandle,
  body: Stream.Stream<Uint8Array, E>,
  onBytes: (bytes: Uint8Array) => void
): Effect.Effect<void, E | StorageBackendError> =>
  Stream.runForEachChunk(body, (chunk) => {
    const arrays = [...chunk]
    const bytes = arrays.length === 1 ? arrays[0]! : Buffer.concat(arrays)
    onBytes(bytes)
    return fsCall(operation, () => writeAll(handle, bytes))
  })

const writeAll = async (handle: fsp.FileHandle, bytes: Uint8Array) => {
  let offset = 0
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset)
    offset += bytesWritten
  }
}
