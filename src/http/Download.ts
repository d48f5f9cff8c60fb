/**
 * The download proxy: `GET /storage/files/{key...}` through the ACL, with
 * byte ranges, ETag revalidation and safe headers.
 *
 * @since 0.1.0
 */
import * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { InvalidObjectKey, ObjectNotFound, RangeNotSatisfiable } from "../schema/Errors.js"
import type { ObjectInfo } from "../schema/Models.js"
import {
  checkKey,
  isInlineType,
  isPublicKey,
  originalFilenameMetadata,
  servedContentType as servedType
} from "../schema/Naming.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { ObjectStorage } from "../services/ObjectStorage.js"
import { optionalPrincipal } from "./Authentication.js"
import { DownloadLinks } from "./DownloadLinks.js"
import { requireRead } from "./FileAcl.js"

/**
 * Where files are served.
 *
 * @since 0.1.0
 * @category constants
 */
export const filesPrefix = "/storage/files/"

/**
 * Whether an authorized download is answered with a redirect (302) to a
 * short-lived presigned GET on the storage, so the bytes skip the app
 * server; the storage then answers ranges and revalidation itself, with the
 * content type and `Content-Disposition` the proxy would send (but not the
 * proxy's `nosniff` and sandbox headers). Only where the backend presigns
 * (S3); off by default.
 *
 * @since 0.1.0
 * @category redirects
 */
export class DownloadRedirect extends Context.Reference<DownloadRedirect>()("effect-storage/DownloadRedirect", {
  defaultValue: (): { readonly enabled: boolean; readonly ttl: Duration.Duration } => ({
    enabled: false,
    ttl: Duration.minutes(5)
  })
}) {
  /**
   * Redirects on, with presigned URLs living `ttl` (5 minutes).
   *
   * @since 0.1.0
   * @category layers
   */
  static layer(options: { readonly ttl?: Duration.DurationInput | undefined } = {}): Layer.Layer<DownloadRedirect> {
    return Layer.succeed(DownloadRedirect, {
      enabled: true,
      ttl: options.ttl === undefined ? Duration.minutes(5) : Duration.decode(options.ttl)
    })
  }

  /**
   * From `STORAGE_DOWNLOAD_REDIRECT` (`true` turns redirects on) and
   * `STORAGE_DOWNLOAD_REDIRECT_TTL` (5 minutes).
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerFromConfig: Layer.Layer<DownloadRedirect, ConfigError.ConfigError> = Layer.unwrapEffect(
    Effect.gen(function*() {
      const enabled = yield* Config.boolean("STORAGE_DOWNLOAD_REDIRECT").pipe(Config.withDefault(false))
      const ttl = yield* Config.duration("STORAGE_DOWNLOAD_REDIRECT_TTL").pipe(Config.withDefault(Duration.minutes(5)))
      return enabled
        ? DownloadRedirect.layer({ ttl })
        : Layer.succeed(DownloadRedirect, DownloadRedirect.defaultValue())
    })
  )
}

/**
 * Serves one download request.
 *
 * @since 0.1.0
 * @category handlers
 */
export const download = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    // Not `new URL(...)`: it would resolve `..` and `%2e%2e` before the key is checked.
    const [pathname = "", query = ""] = request.url.split("?", 2)
    const key = yield* keyFromPath(pathname)
    const params = new URLSearchParams(query)
    const signature = params.get("signature")
    const expires = params.get("expires")
    if (signature !== null || expires !== null) {
      // A signed link stands for the ACL's answer when it was made.
      yield* Effect.flatMap(DownloadLinks, (links) => links.verify(key, { signature, expires }))
    } else {
      yield* requireRead(yield* optionalPrincipal(request.headers["authorization"]), key)
    }
    yield* servedOnceComplete(key)
    const objects = yield* ObjectStorage
    const redirect = yield* DownloadRedirect
    if (redirect.enabled && Option.isSome(objects.presign)) {
      const info = yield* objects.statObject(key)
      const signed = yield* objects.presign.value.getObject({
        key,
        expiresIn: redirect.ttl,
        responseContentType: servedContentType(key, info),
        responseContentDisposition: contentDisposition(key, info)
      })
      return HttpServerResponse.empty({
        status: 302,
        headers: { location: signed.url, "cache-control": "private, no-store" }
      })
    }
    const rangeHeader = request.headers["range"]
    const ifNoneMatch = request.headers["if-none-match"]

    // Revalidation and ranges need the object's ETag and size first.
    if (rangeHeader !== undefined || ifNoneMatch !== undefined) {
      const info = yield* objects.statObject(key)
      if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, info.eTag)) {
        return HttpServerResponse.empty({ status: 304, headers: cacheHeaders(key, info) })
      }
      const range = rangeHeader === undefined ? Option.none() : parseRange(rangeHeader, info.size)
      if (Option.isSome(range) && range.value === "unsatisfiable") {
        // The error is answered by the API (416, JSON); the header tells the size, as RFC 9110 asks.
        yield* HttpApp.appendPreResponseHandler((_, response) =>
          Effect.succeed(HttpServerResponse.setHeaders(response, { "content-range": `bytes */${info.size}` }))
        )
        return yield* new RangeNotSatisfiable({ size: info.size })
      }
      if (Option.isSome(range) && range.value !== "unsatisfiable") {
        const { end, start } = range.value
        const content = yield* objects.getObject({ key, range: { start, end } })
        return HttpServerResponse.stream(content.body, {
          status: 206,
          contentType: servedContentType(key, content.info),
          contentLength: end - start + 1,
          headers: { ...fileHeaders(key, content.info), "content-range": `bytes ${start}-${end}/${content.info.size}` }
        })
      }
    }
    const content = yield* objects.getObject({ key })
    return HttpServerResponse.stream(content.body, {
      status: 200,
      contentType: servedContentType(key, content.info),
      contentLength: content.info.size,
      headers: fileHeaders(key, content.info)
    })
  }).pipe(Effect.withSpan("StorageApi.download"))

/**
 * The object key of a request path: percent-decoded once, then checked
 * with the key syntax of `Naming.keyProblem` (so `..`, empty segments and
 * the like are `InvalidObjectKey`, never a path).
 *
 * @since 0.1.0
 * @category keys
 */
export const keyFromPath = (pathname: string): Effect.Effect<string, InvalidObjectKey> => {
  const at = pathname.indexOf(filesPrefix)
  const raw = at === -1 ? "" : pathname.slice(at + filesPrefix.length)
  return Effect.try({
    try: () => decodeURIComponent(raw),
    catch: () => new InvalidObjectKey({ key: raw, message: "the key is not valid percent-encoding" })
  }).pipe(Effect.tap(checkKey))
}

/**
 * An absolute byte range from a `Range` header and the object's size; none
 * when the header is not a single byte range (the whole object is served).
 *
 * @since 0.1.0
 * @category ranges
 */
export const parseRange = (
  header: string,
  size: number
): Option.Option<{ readonly start: number; readonly end: number } | "unsatisfiable"> => {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (match === null || (match[1] === "" && match[2] === "")) return Option.none()
  if (match[1] === "") {
    // A suffix: the last N bytes.
    const length = Number(match[2])
    if (length === 0) return Option.some("unsatisfiable")
    return size === 0 ? Option.some("unsatisfiable") : Option.some({ start: Math.max(0, size - length), end: size - 1 })
  }
  const start = Number(match[1])
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1)
  if (start >= size) return Option.some("unsatisfiable")
  if (end < start) return Option.none()
  return Option.some({ start, end })
}

/**
 * The `Content-Disposition` of a download: inline for media and PDF, else
 * an attachment, with the original filename (RFC 6266, with an ASCII fallback).
 *
 * @since 0.1.0
 * @category headers
 */
export const contentDisposition = (key: string, info: ObjectInfo): string => {
  const kind = isInlineType(servedContentType(key, info)) ? "inline" : "attachment"
  const name = originalName(key, info)
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, "_")
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encodeRfc5987(name)}`
}

// ---- internal ----

/**
 * An upload's object is served only once the upload is complete: a
 * single-request upload writes its bytes at the key before `complete`
 * (which may still refuse it), so a key with a pending claim is not found yet.
 */
const servedOnceComplete = (key: string) =>
  ClaimStore.pipe(
    Effect.flatMap((claims) => claims.getByKey(key)),
    Effect.flatMap((claim) => claim.status === "pending" ? new ObjectNotFound({ key }) : Effect.void),
    Effect.catchTag("ClaimNotFound", () => Effect.void)
  )

const safetyHeaders = {
  "x-content-type-options": "nosniff",
  // Uploaded content never runs as part of this origin.
  "content-security-policy": "default-src 'none'; sandbox"
}

const servedContentType = (key: string, info: ObjectInfo) => servedType(key, info.contentType)

const cacheHeaders = (key: string, info: ObjectInfo): Record<string, string> => ({
  "cache-control": isPublicKey(key) ? "public, max-age=3600, immutable" : "private, no-cache",
  ...(info.eTag === "" ? {} : { etag: quoteETag(info.eTag) }),
  "last-modified": DateTime.toDateUtc(info.lastModified).toUTCString()
})

const fileHeaders = (key: string, info: ObjectInfo): Record<string, string> => ({
  ...safetyHeaders,
  ...cacheHeaders(key, info),
  "accept-ranges": "bytes",
  "content-disposition": contentDisposition(key, info)
})

const quoteETag = (etag: string) => etag.startsWith("\"") || etag.startsWith("W/") ? etag : `"${etag}"`

const etagMatches = (header: string, etag: string) => {
  if (etag === "") return false
  if (header.trim() === "*") return true
  const wanted = quoteETag(etag)
  return header.split(",").map((tag) => tag.trim().replace(/^W\//, "")).includes(wanted)
}

const originalName = (key: string, info: ObjectInfo): string => {
  const stored = info.metadata[originalFilenameMetadata]
  if (stored !== undefined) {
    try {
      return decodeURIComponent(stored)
    } catch {
      // fall through to the key's own name
    }
  }
  return key.split("/").pop() ?? key
}

const encodeRfc5987 = (value: string) =>
  encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
