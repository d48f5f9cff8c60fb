/**
 * Helpers of `ObjectStorage.make` and the drivers: body normalisation and
 * length checks, ETags, part-list checks, byte ranges and key ordering.
 *
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { PartETagMismatch, PartNumberOutOfRange, PartTooSmall, StorageBackendError } from "../schema/Errors.js"
import type { Body, ByteRange } from "../services/ObjectStorage.js"

/** A body as a stream, whichever form it was given in. @internal */
export const bodyStream = <E>(body: Body<E>): Stream.Stream<Uint8Array, E> =>
  body instanceof Uint8Array ? Stream.succeed(body) : body

/** The failure of a body whose length is not the declared size. @internal */
export const sizeMismatch = (operation: string, expected: number, actual: string) =>
  new StorageBackendError({
    operation,
    reason: "invalid",
    message: `the body is ${actual} bytes long, but ${expected} were declared`
  })

/** Rejects a declared size that is not a non-negative safe integer. @internal */
export const checkDeclaredSize = (operation: string, size: number | undefined) =>
  size === undefined || (Number.isSafeInteger(size) && size >= 0)
    ? Effect.void
    : Effect.fail(
      new StorageBackendError({ operation, reason: "invalid", message: `invalid declared size ${size}` })
    )

/**
 * The body, failing as soon as it runs past the declared size and, at its
 * end, when it fell short. The chunk that completes the declared size is
 * held back until the body has ended: a consumer streaming to a server
 * that commits once `Content-Length` bytes arrived must never see a whole
 * declared length from a body that then turns out too long.
 *
 * @internal
 */
export const withDeclaredSize = <E>(
  stream: Stream.Stream<Uint8Array, E>,
  size: number | undefined,
  operation: string
): Stream.Stream<Uint8Array, E | StorageBackendError> => {
  if (size === undefined) return stream
  return Stream.suspend(() => {
    let seen = 0
    let completing: Uint8Array | undefined
    const counted = Stream.mapChunksEffect(stream, (chunk) => {
      const pass: Array<Uint8Array> = []
      for (const bytes of chunk) {
        if (bytes.byteLength === 0) continue
        seen += bytes.byteLength
        if (seen > size) return Effect.fail(sizeMismatch(operation, size, `more than ${size}`))
        if (seen === size) completing = bytes
        else pass.push(bytes)
      }
      return Effect.succeed(Chunk.unsafeFromArray(pass))
    })
    const end = Stream.suspend(() =>
      seen !== size
        ? Stream.fail(sizeMismatch(operation, size, String(seen)))
        : completing === undefined
        ? Stream.empty
        : Stream.succeed(completing)
    )
    return Stream.concat(counted, end)
  })
}

/** The MD5 of some bytes, in lowercase hex. @internal */
export const md5Hex = (bytes: Uint8Array): string => createHash("md5").update(bytes).digest("hex")

/**
 * The S3-style ETag of an assembled multipart object: the MD5 of the
 * concatenated binary MD5s of its parts, then `-N`.
 *
 * @internal
 */
export const multipartETag = (partETags: ReadonlyArray<string>): string => {
  const hash = createHash("md5")
  for (const eTag of partETags) hash.update(Buffer.from(eTag, "hex"))
  return `${hash.digest("hex")}-${partETags.length}`
}

/** An ETag without the quotes S3 puts around it, so every backend answers the same form. @internal */
export const unquoteETag = (eTag: string | undefined): string => (eTag ?? "").replace(/^"(.*)"$/, "$1")

/**
 * Checks a completion manifest: exactly 1..N in order, not empty. S3 itself
 * accepts gaps, so every backend checks this before anything else.
 *
 * @internal
 */
export const checkPartSequence = (
  parts: ReadonlyArray<{ readonly partNumber: number }>
): Effect.Effect<void, PartNumberOutOfRange> => {
  if (parts.length === 0) {
    return Effect.fail(new PartNumberOutOfRange({ message: "the part list is empty" }))
  }
  const wrong = parts.findIndex((part, index) => part.partNumber !== index + 1)
  return wrong === -1 ? Effect.void : Effect.fail(
    new PartNumberOutOfRange({
      message: `part numbers must be exactly 1..${parts.length} in order; position ${wrong + 1} has ${
        parts[wrong]!.partNumber
      }`
    })
  )
}

/**
 * The completion checks of one stored part, the same on every backend: it
 * exists, a non-final part is at least the part size, and its ETag is the
 * one in the manifest.
 *
 * @internal
 */
export const checkStoredPart = (
  wanted: { readonly partNumber: number; readonly etag: string; readonly isLast: boolean },
  stored: { readonly size: number; readonly etag: string } | undefined,
  partSize: number
): Effect.Effect<void, PartETagMismatch | PartTooSmall> => {
  const { partNumber } = wanted
  if (stored === undefined) {
    return Effect.fail(new PartETagMismatch({ message: `part ${partNumber} was never uploaded` }))
  }
  if (!wanted.isLast && stored.size < partSize) {
    return Effect.fail(
      new PartTooSmall({ message: `part ${partNumber} is ${stored.size} bytes, below the part size ${partSize}` })
    )
  }
  if (unquoteETag(wanted.etag) !== stored.etag) {
    return Effect.fail(new PartETagMismatch({ message: `part ${partNumber} has another ETag` }))
  }
  return Effect.void
}

/** Checks one part number against 1..maxPartCount (0 means no upper bound). @internal */
export const checkPartNumber = (
  partNumber: number,
  maxPartCount: number
): Effect.Effect<void, PartNumberOutOfRange> =>
  Number.isInteger(partNumber) && partNumber >= 1 && (maxPartCount === 0 || partNumber <= maxPartCount)
    ? Effect.void
    : Effect.fail(
      new PartNumberOutOfRange({
        message: `part number ${partNumber} is outside 1..${maxPartCount === 0 ? "N" : maxPartCount}`
      })
    )

/**
 * A byte range resolved against an object's size, as a half-open
 * `[start, end)`. A start at or past the end gives an empty range.
 *
 * @internal
 */
export const resolveRange = (
  size: number,
  range: ByteRange | undefined
): { readonly start: number; readonly end: number } => {
  if (range === undefined) return { start: 0, end: size }
  const start = Math.min(Math.max(0, range.start), size)
  const last = range.end === undefined ? size - 1 : Math.min(range.end, size - 1)
  return { start, end: Math.max(start, last + 1) }
}

/**
 * Key order as S3 lists it: by the keys' UTF-8 bytes, which is code point
 * order. JavaScript's own string order is by UTF-16 units; the two differ
 * only where a surrogate (a code point above U+FFFF) meets a unit from
 * U+E000 to U+FFFF, so that case alone is turned around. No buffers are
 * made: a listing of a million keys compares this many times.
 *
 * @internal
 */
export const compareKeys = (a: string, b: string): number => {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    if (isSurrogate(x) && y >= 0xe000) return 1
    if (isSurrogate(y) && x >= 0xe000) return -1
    return x < y ? -1 : 1
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1
}

const isSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdfff

/** Concatenates the chunks of a collected body. @internal */
export const concatChunks = (chunks: Chunk.Chunk<Uint8Array>): Uint8Array => {
  const arrays = Chunk.toReadonlyArray(chunks)
  if (arrays.length === 1) return arrays[0]!
  return Buffer.concat(arrays)
}
