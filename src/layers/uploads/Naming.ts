/**
 * Names of uploads: filename sanitizing, safe content types and
 * server-generated object keys.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { uuidv7 } from "../../internal/uuidv7.js"
import { InvalidFilename } from "../../schema/Errors.js"

/**
 * Prefix of keys anyone may download.
 *
 * @since 0.1.0
 * @category constants
 */
export const publicPrefix = "pub/"

/**
 * Prefix of keys only their uploader (or an app ACL) may download.
 *
 * @since 0.1.0
 * @category constants
 */
export const privatePrefix = "priv/"

/**
 * Keeps the last path segment (`/` and `\` both separate), trimmed. Empty,
 * `.`, `..`, names with control characters (CR/LF included) or DEL, and
 * names over 255 characters are `InvalidFilename`.
 *
 * @since 0.1.0
 * @category sanitizing
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
 * The filename's extension when it is plain (`.` then letters and digits,
 * case kept), else `.bin`.
 *
 * @since 0.1.0
 * @category sanitizing
 */
export const extensionOf = (filename: string): string => {
  const dot = filename.lastIndexOf(".")
  const ext = dot > 0 ? filename.slice(dot) : ""
  return /^\.[a-zA-Z0-9]{1,16}$/.test(ext) ? ext : ".bin"
}

/**
 * Content types served as they are. Everything else (HTML, scripts, SVG,
 * plain text that a browser might sniff) becomes
 * `application/octet-stream`.
 *
 * @since 0.1.0
 * @category sanitizing
 */
export const isSafeContentType = (contentType: string): boolean => {
  const type = contentType.split(";")[0]!.trim().toLowerCase()
  // SVG is an image that runs scripts.
  if (type === "image/svg+xml") return false
  if (/^(image|audio|video|font)\/[a-z0-9][a-z0-9.+-]*$/.test(type)) return true
  return safeApplicationTypes.has(type)
}

/**
 * The content type to store: the client's when safe, else the one guessed
 * from the filename when safe, else `application/octet-stream`.
 *
 * @since 0.1.0
 * @category sanitizing
 */
export const sanitizeContentType = (contentType: string | undefined, filename: string): string => {
  const given = contentType?.split(";")[0]?.trim().toLowerCase() ?? ""
  if (given !== "" && isSafeContentType(given)) return given
  const guessed = guessContentType(filename)
  return isSafeContentType(guessed) ? guessed : "application/octet-stream"
}

/**
 * The content type of a filename's extension, `application/octet-stream`
 * when unknown.
 *
 * @since 0.1.0
 * @category sanitizing
 */
export const guessContentType = (filename: string): string =>
  byExtension[extensionOf(filename).slice(1).toLowerCase()] ?? "application/octet-stream"

/**
 * A new object key: `pub/` or `priv/`, the UTC date as `YYYY/MM/DD`, a
 * UUIDv7 and the filename's extension.
 *
 * @since 0.1.0
 * @category keys
 */
export const generateKey = (filename: string, isPublic: boolean): Effect.Effect<string> =>
  Effect.gen(function*() {
    const now = yield* DateTime.now
    const parts = DateTime.toPartsUtc(now)
    const date = `${parts.year}/${pad(parts.month)}/${pad(parts.day)}`
    return `${isPublic ? publicPrefix : privatePrefix}${date}/${yield* uuidv7}${extensionOf(filename)}`
  })

// ---- internal ----

const pad = (n: number) => String(n).padStart(2, "0")

const safeApplicationTypes = new Set([
  "application/pdf",
  "application/zip",
  "application/gzip",
  "application/x-tar",
  "application/octet-stream"
])

const byExtension: Record<string, string> = {
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
  txt: "text/plain",
  html: "text/html",
  htm: "text/html",
  js: "text/javascript",
  json: "application/json",
  csv: "text/csv"
}
