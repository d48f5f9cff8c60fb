/**
 * Names and types, decided in one place: the syntax of object keys, public
 * and private keys, filenames, content types by extension, which types are
 * safe to serve as they are, and the keys the server makes for uploads.
 *
 * Every backend, the upload flow and the download proxy ask this module;
 * none has a rule of its own.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { uuidv7 } from "../internal/uuidv7.js"
import { InvalidFilename, InvalidObjectKey } from "./Errors.js"

// ---- keys ----

/**
 * Prefix of keys anyone may download.
 *
 * @since 0.1.0
 * @category keys
 */
export const publicPrefix = "pub/"

/**
 * Prefix of keys only their uploader (or an app's ACL) may download.
 *
 * @since 0.1.0
 * @category keys
 */
export const privatePrefix = "priv/"

/**
 * Prefix of the tail objects of resumable uploads (the bytes past an
 * upload's last whole part, until they fill one): never a file, never
 * served, always queued for deletion.
 *
 * @since 0.1.0
 * @category keys
 */
export const resumableTailPrefix = "tus-tails/"

/**
 * Whether a key is public (readable by anyone).
 *
 * @since 0.1.0
 * @category keys
 */
export const isPublicKey = (key: string): boolean => key.startsWith(publicPrefix)

/**
 * The longest key, in UTF-8 bytes (S3's limit).
 *
 * @since 0.1.0
 * @category keys
 */
export const maxKeyBytes = 1024

/**
 * The longest segment of a key (between slashes), in UTF-8 bytes: what a
 * filesystem allows for one file name.
 *
 * @since 0.1.0
 * @category keys
 */
export const maxSegmentBytes = 255

/**
 * First segments no key may have: the filesystem backend keeps its own
 * folders under these names beside the objects.
 *
 * @since 0.1.0
 * @category keys
 */
export const reservedFirstSegments: ReadonlyArray<string> = [".tmp", ".meta", ".multipart"]

/**
 * Why a string is not a valid object key, or `undefined` when it is.
 *
 * A key is 1 to 1,024 bytes of UTF-8 made of segments separated by `/`:
 * no segment is empty (so no leading, trailing or doubled slash), `.` or
 * `..`, or longer than 255 bytes; no NUL, other control character or
 * backslash; and the first segment is not reserved. Such a key means the
 * same file on every backend and can never escape a folder.
 *
 * @since 0.1.0
 * @category keys
 */
export const keyProblem = (key: string): string | undefined => {
  if (key.length === 0) return "the key is empty"
  if (Buffer.byteLength(key) > maxKeyBytes) return `the key is longer than ${maxKeyBytes} bytes`
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return "the key contains a control character"
  if (key.includes("\\")) return "the key contains a backslash"
  const segments = key.split("/")
  if (segments.some((s) => s === "" || s === "." || s === "..")) {
    return "the key has an empty, '.' or '..' segment (a leading, trailing or doubled slash, or a relative path)"
  }
  if (segments.some((s) => Buffer.byteLength(s) > maxSegmentBytes)) {
    return `a key segment is longer than ${maxSegmentBytes} bytes`
  }
  if (reservedFirstSegments.includes(segments[0]!)) return `the key's first segment ${segments[0]} is reserved`
  return undefined
}

/**
 * Whether a string is a valid object key (see `keyProblem`).
 *
 * @since 0.1.0
 * @category keys
 */
export const isValidKey = (key: string): boolean => keyProblem(key) === undefined

/**
 * Fails with `InvalidObjectKey` unless the key is valid (see `keyProblem`).
 *
 * @since 0.1.0
 * @category keys
 */
export const checkKey = (key: string): Effect.Effect<void, InvalidObjectKey> => {
  const problem = keyProblem(key)
  return problem === undefined ? Effect.void : Effect.fail(new InvalidObjectKey({ key, message: problem }))
}

/**
 * A new object key for an upload: `pub/` or `priv/`, the UTC date as
 * `YYYY/MM/DD`, a UUIDv7 and the filename's extension.
 *
 * @since 0.1.0
 * @category keys
 */
export const generateKey = (filename: string, isPublic: boolean): Effect.Effect<string> =>
  Effect.gen(function*() {
    const parts = DateTime.toPartsUtc(yield* DateTime.now)
    const date = `${parts.year}/${pad(parts.month)}/${pad(parts.day)}`
    return `${isPublic ? publicPrefix : privatePrefix}${date}/${yield* uuidv7}${extensionOf(filename)}`
  })

// ---- filenames ----

/**
 * The object metadata entry that carries an upload's original filename,
 * URI-encoded (backends keep ASCII metadata).
 *
 * @since 0.1.0
 * @category filenames
 */
export const originalFilenameMetadata = "original-filename"

/**
 * Keeps the last path segment (`/` and `\` both separate), trimmed. Empty,
 * `.`, `..`, names with control characters (CR/LF included) or DEL, and
 * names over 255 characters are `InvalidFilename`.
 *
 * @since 0.1.0
 * @category filenames
 */
export const sanitizeFilename = (filename: string): Effect.Effect<string, InvalidFilename> => {
  const name = (filename.split(/[/\\]/).pop() ?? "").trim()
  if (name === "" || name === "." || name === "..") {
    return Effect.fail(new InvalidFilename({ message: "the filename is empty" }))
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    return Effect.fail(new InvalidFilename({ message: "the filename contains control characters" }))
  }
  if ([...name].length > 255) {
    return Effect.fail(new InvalidFilename({ message: "the filename is longer than 255 characters" }))
  }
  return Effect.succeed(name)
}

/**
 * The extension of a filename or key when it is plain (`.` then 1 to 16
 * letters and digits, case kept), else `.bin`.
 *
 * @since 0.1.0
 * @category filenames
 */
export const extensionOf = (filename: string): string => {
  const name = filename.slice(filename.lastIndexOf("/") + 1)
  const dot = name.lastIndexOf(".")
  const ext = dot > 0 ? name.slice(dot) : ""
  return /^\.[a-zA-Z0-9]{1,16}$/.test(ext) ? ext : ".bin"
}

// ---- content types ----

/**
 * The type of bytes nothing more is known about.
 *
 * @since 0.1.0
 * @category content types
 */
export const defaultContentType = "application/octet-stream"

/**
 * The content type of a filename's or key's extension, or
 * `application/octet-stream` when unknown.
 *
 * @since 0.1.0
 * @category content types
 */
export const contentTypeOf = (filename: string): string =>
  byExtension[extensionOf(filename).slice(1).toLowerCase()] ?? defaultContentType

/**
 * Whether a content type may be served as it is. Media, fonts and a few
 * inert document types are; everything a browser could run or sniff into
 * something runnable (HTML, scripts, SVG, XML, plain text, JSON) is not.
 *
 * @since 0.1.0
 * @category content types
 */
export const isSafeContentType = (contentType: string): boolean => {
  const type = essence(contentType)
  // SVG is an image that runs scripts.
  if (type === "image/svg+xml") return false
  if (/^(image|audio|video|font)\/[a-z0-9][a-z0-9.+-]*$/.test(type)) return true
  return safeApplicationTypes.has(type)
}

/**
 * The content type to record for an upload: the client's when safe, else
 * the one of the filename's extension when safe, else
 * `application/octet-stream`. Parameters are dropped.
 *
 * @since 0.1.0
 * @category content types
 */
export const sanitizeContentType = (contentType: string | undefined, filename: string): string => {
  const given = contentType === undefined ? "" : essence(contentType)
  if (given !== "" && isSafeContentType(given)) return given
  const guessed = contentTypeOf(filename)
  return isSafeContentType(guessed) ? guessed : defaultContentType
}

/**
 * The content type to serve an object with: its stored type (or, without
 * one, its key's) when safe, else `application/octet-stream`.
 *
 * @since 0.1.0
 * @category content types
 */
export const servedContentType = (key: string, stored: string): string => {
  const type = stored !== "" ? stored : contentTypeOf(key)
  return isSafeContentType(type) ? type : defaultContentType
}

/**
 * Whether a served type is shown in the browser (`inline`) rather than
 * downloaded (`attachment`): media, fonts and PDF.
 *
 * @since 0.1.0
 * @category content types
 */
export const isInlineType = (contentType: string): boolean => {
  const type = essence(contentType)
  return /^(image|audio|video|font)\//.test(type) || type === "application/pdf"
}

// ---- internal ----

const pad = (n: number) => String(n).padStart(2, "0")

/** The type without parameters, lowercased: `Text/HTML; charset=x` is `text/html`. */
const essence = (contentType: string) => contentType.split(";")[0]!.trim().toLowerCase()

const safeApplicationTypes: ReadonlySet<string> = new Set([
  "application/pdf",
  "application/zip",
  "application/gzip",
  "application/x-tar",
  "application/octet-stream"
])

/** Extensions (lowercase, without the dot) and their types, without parameters. */
const byExtension: Readonly<Record<string, string>> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  bmp: "image/bmp",
  ico: "image/x-icon",
  heic: "image/heic",
  svg: "image/svg+xml",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  ogg: "audio/ogg",
  flac: "audio/flac",
  m4a: "audio/mp4",
  mp4: "video/mp4",
  webm: "video/webm",
  mov: "video/quicktime",
  mkv: "video/x-matroska",
  woff: "font/woff",
  woff2: "font/woff2",
  ttf: "font/ttf",
  otf: "font/otf",
  pdf: "application/pdf",
  zip: "application/zip",
  gz: "application/gzip",
  tgz: "application/gzip",
  tar: "application/x-tar",
  wasm: "application/wasm",
  doc: "application/msword",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xls: "application/vnd.ms-excel",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  ppt: "application/vnd.ms-powerpoint",
  pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  txt: "text/plain",
  md: "text/markdown",
  csv: "text/csv",
  css: "text/css",
  html: "text/html",
  htm: "text/html",
  js: "text/javascript",
  mjs: "text/javascript",
  json: "application/json",
  xml: "application/xml"
}
