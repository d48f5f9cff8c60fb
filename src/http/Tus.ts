/**
 * The resumable-upload endpoint: tus 1.0 (core, creation,
 * creation-with-upload, termination, expiration, checksum) and the IETF
 * draft "Resumable Uploads for HTTP" (interop versions 5 and 6, as
 * tus-js-client 4 speaks them), both over the same uploads, mounted at
 * `/storage/tus/` beside the storage API.
 *
 * One upload is one claim (`TusUploads`): the same bearer authentication,
 * owner, caps, filename and content type (from `Upload-Metadata`), key, TTL
 * and workers as the parts API. The key of a completed upload is answered in
 * the `Storage-Key` header (final PATCH, HEAD) and in the upload's JSON
 * (`GET /storage/tus/{id}`).
 *
 * Not offered: creation-defer-length (a claim is sized when it is opened:
 * send `Upload-Length`) and concatenation (see the README).
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import { checksumAlgorithms, isChecksumAlgorithm } from "../internal/checksum.js"
import { StorageConfig } from "../layers/StorageConfig.js"
import { type RequestChecksum, type ResumableUpload, TusUploads } from "../layers/TusUploads.js"
import {
  InvalidUploadRequest,
  Unauthenticated,
  UnsupportedMediaType,
  UnsupportedProtocolVersion,
  UploadOffsetMismatch
} from "../schema/Errors.js"
import { isAnonymous, type Principal } from "../schema/Models.js"
import { optionalPrincipal, type TokenResolver } from "./Authentication.js"
import * as RequestBody from "./RequestBody.js"
import { unavailableOnOutage } from "./StorageHandlers.js"

/**
 * Where the endpoint is mounted.
 *
 * @since 0.1.0
 * @category constants
 */
export const tusPath = "/storage/tus/" as const

/**
 * The response header that carries a completed upload's object key.
 *
 * @since 0.1.0
 * @category constants
 */
export const keyHeader = "Storage-Key"

/**
 * The tus extensions offered (`Tus-Extension`).
 *
 * @since 0.1.0
 * @category constants
 */
export const extensions = ["creation", "creation-with-upload", "termination", "expiration", "checksum"] as const

/**
 * Options of the endpoint.
 *
 * @since 0.1.0
 * @category models
 */
export interface TusOptions {
  /**
   * The origins a browser may call from (CORS): `"*"` (the default; the
   * endpoint takes bearer tokens, never cookies) or a list of origins.
   */
  readonly allowedOrigins?: "*" | ReadonlyArray<string> | undefined
}

/**
 * The endpoint's routes on the API's router (`HttpApiBuilder.Router`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: TusOptions = {}
): Layer.Layer<never, never, TusUploads | TokenResolver | RequestBody.RequestBody | StorageConfig> =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const tus = yield* TusUploads
      const config = yield* StorageConfig
      const bodies = yield* RequestBody.RequestBody
      const resolver = yield* Effect.context<TokenResolver>()
      const allowed = options.allowedOrigins ?? "*"

      const cors = (request: HttpServerRequest.HttpServerRequest): Record<string, string> => {
        const origin = request.headers["origin"]
        if (origin === undefined) return {}
        if (allowed !== "*" && !allowed.includes(origin)) return {}
        return {
          "access-control-allow-origin": allowed === "*" ? "*" : origin,
          "access-control-expose-headers": exposedHeaders,
          ...(allowed === "*" ? {} : { vary: "Origin" })
        }
      }

      /** The protocol and version a request speaks: the IETF draft by its header, else tus 1.0. */
      const protocolOf = (request: HttpServerRequest.HttpServerRequest) => {
        const interop = request.headers["upload-draft-interop-version"]
        if (interop !== undefined) {
          return interopVersions.includes(interop)
            ? Effect.succeed<Protocol>({ _tag: "ietf", version: interop })
            : Effect.fail(
              new UnsupportedProtocolVersion({
                message: `Upload-Draft-Interop-Version ${interop} is not supported (${interopVersions.join(", ")})`
              })
            )
        }
        const version = request.headers["tus-resumable"]
        return version === tusVersion
          ? Effect.succeed<Protocol>({ _tag: "tus" })
          : Effect.fail(
            new UnsupportedProtocolVersion({
              message: version === undefined
                ? `send Tus-Resumable: ${tusVersion}`
                : `Tus-Resumable ${version} is not supported (${tusVersion})`
            })
          )
      }

      const principalOf = (request: HttpServerRequest.HttpServerRequest) =>
        optionalPrincipal(request.headers["authorization"]).pipe(
          Effect.provide(resolver),
          Effect.filterOrFail((principal: Principal) => !isAnonymous(principal), () => new Unauthenticated())
        )

      const protocolHeaders = (protocol: Protocol | undefined): Record<string, string> =>
        protocol?._tag === "ietf"
          ? { "upload-draft-interop-version": protocol.version }
          : { "tus-resumable": tusVersion }

      /** The headers that say where an upload stands. */
      const stateHeaders = (protocol: Protocol, upload: ResumableUpload): Record<string, string> => ({
        "upload-offset": String(upload.offset),
        "upload-length": String(upload.size),
        ...(upload.status === "uploaded"
          ? { [keyHeader.toLowerCase()]: upload.key }
          : { "upload-expires": DateTime.toDateUtc(upload.expiresAt).toUTCString() }),
        ...(protocol._tag === "ietf" ? { "upload-complete": upload.status === "uploaded" ? "?1" : "?0" } : {})
      })

      /** Runs a handler; its typed failures become the protocol's statuses. */
      const handle = (
        run: (
          request: HttpServerRequest.HttpServerRequest,
          setProtocol: (protocol: Protocol) => void
        ) => Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, HttpRouter.RouteContext>
      ) =>
        Effect.gen(function*() {
          const request = yield* HttpServerRequest.HttpServerRequest
          let protocol: Protocol | undefined
          const response = yield* run(request, (p) => {
            protocol = p
          }).pipe(
            unavailableOnOutage,
            // An error the protocol has no status for is a 500 for the client
            // and an error line for the operator.
            Effect.tapError((error) => isUnmapped(error) ? Effect.logError("tus request failed", error) : Effect.void),
            Effect.catchAll((error) => Effect.succeed(errorResponse(error, request.method === "HEAD")))
          )
          return HttpServerResponse.setHeaders(response, { ...protocolHeaders(protocol), ...cors(request) })
        })

      const create = handle((request, setProtocol) =>
        Effect.gen(function*() {
          const protocol = yield* protocolOf(request)
          setProtocol(protocol)
          const principal = yield* principalOf(request)
          if (request.headers["upload-defer-length"] !== undefined) {
            return yield* new InvalidUploadRequest({
              message: "creation-defer-length is not supported: send Upload-Length"
            })
          }
          if (request.headers["upload-concat"] !== undefined) {
            return yield* new InvalidUploadRequest({ message: "concatenation is not supported" })
          }
          const size = yield* byteCount(request.headers["upload-length"], "Upload-Length")
          const metadata = yield* parseMetadata(request.headers["upload-metadata"] ?? "")
          const length = contentLength(request)
          const hasBody = (length ?? (request.headers["transfer-encoding"] === undefined ? 0 : 1)) > 0
          if (hasBody) yield* checkBodyType(protocol, request)
          const checksum = hasBody ? yield* parseChecksum(request.headers["upload-checksum"]) : undefined
          const created = yield* tus.create({
            principal,
            size,
            filename: metadata.get("filename") ?? metadata.get("name") ?? "upload",
            contentType: metadata.get("filetype") ?? metadata.get("type") ?? metadata.get("contentType"),
            public: metadata.has("public") ? ["true", "1"].includes(metadata.get("public") ?? "") : undefined
          })
          const upload = hasBody
            ? yield* tus.append({
              principal,
              id: created.id,
              offset: 0,
              body: bodies.stream(request),
              length,
              checksum,
              last: uploadComplete(protocol, request)
            }).pipe(
              // The client never learns the upload's address: nothing should stay pending.
              Effect.tapError(() => Effect.ignore(tus.terminate({ principal, id: created.id })))
            )
            : created
          return HttpServerResponse.empty({
            status: 201,
            headers: {
              location: `${tusPath}${created.id}`,
              ...stateHeaders(protocol, upload)
            }
          })
        })
      )

      const head = handle((request, setProtocol) =>
        Effect.gen(function*() {
          const protocol = yield* protocolOf(request)
          setProtocol(protocol)
          const principal = yield* principalOf(request)
          const upload = yield* tus.status({ principal, id: yield* uploadId })
          return HttpServerResponse.empty({
            status: protocol._tag === "ietf" ? 204 : 200,
            headers: {
              "cache-control": "no-store",
              "upload-metadata": encodeMetadata(upload),
              ...stateHeaders(protocol, upload)
            }
          })
        })
      )

      const patch = handle((request, setProtocol) =>
        Effect.gen(function*() {
          const protocol = yield* protocolOf(request)
          setProtocol(protocol)
          const principal = yield* principalOf(request)
          const id = yield* uploadId
          yield* checkBodyType(protocol, request)
          const offsetHeader = request.headers["upload-offset"]
          if (offsetHeader === undefined || !/^\d{1,16}$/.test(offsetHeader)) {
            const current = yield* tus.status({ principal, id })
            return yield* new UploadOffsetMismatch({
              offset: current.offset,
              message: `send Upload-Offset: ${current.offset}`
            })
          }
          const checksum = yield* parseChecksum(request.headers["upload-checksum"])
          const upload = yield* tus.append({
            principal,
            id,
            offset: Number(offsetHeader),
            body: bodies.stream(request),
            length: contentLength(request),
            checksum,
            last: uploadComplete(protocol, request)
          })
          return HttpServerResponse.empty({ status: 204, headers: stateHeaders(protocol, upload) })
        })
      )

      const terminate = handle((request, setProtocol) =>
        Effect.gen(function*() {
          const protocol = yield* protocolOf(request)
          setProtocol(protocol)
          const principal = yield* principalOf(request)
          yield* tus.terminate({ principal, id: yield* uploadId })
          return HttpServerResponse.empty({ status: 204 })
        })
      )

      /** The upload as JSON: no protocol header needed (a plain fetch). */
      const get = handle((request) =>
        Effect.gen(function*() {
          const principal = yield* principalOf(request)
          const upload = yield* tus.status({ principal, id: yield* uploadId })
          return HttpServerResponse.unsafeJson({
            id: upload.id,
            key: upload.key,
            size: upload.size,
            offset: upload.offset,
            status: upload.status,
            expiresAt: DateTime.formatIso(upload.expiresAt),
            originalFilename: upload.originalFilename,
            contentType: upload.contentType
          }, { headers: { "cache-control": "no-store" } })
        })
      )

      /** Discovery and CORS preflight: no authentication, no protocol header needed. */
      const options_ = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const preflight = request.headers["origin"] !== undefined &&
            request.headers["access-control-request-method"] !== undefined
          ? {
            "access-control-allow-methods": "POST, HEAD, PATCH, DELETE, GET, OPTIONS",
            "access-control-allow-headers": allowedHeaders,
            "access-control-max-age": "86400"
          }
          : {}
        return HttpServerResponse.empty({
          status: 204,
          headers: {
            "tus-resumable": tusVersion,
            "tus-version": tusVersion,
            "tus-extension": extensions.join(","),
            "tus-max-size": String(config.maxUploadSize),
            "tus-checksum-algorithm": checksumAlgorithms.join(","),
            ...preflight,
            ...cors(request)
          }
        })
      })

      /** `POST` with `X-HTTP-Method-Override` (tus-js-client's `overridePatchMethod`), for proxies that drop PATCH. */
      const overridden = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        switch (request.headers["x-http-method-override"]?.toUpperCase()) {
          case "PATCH":
            return patch
          case "DELETE":
            return terminate
          case "HEAD":
            return head
          default:
            return Effect.succeed(errorResponse(
              new InvalidUploadRequest({ message: "POST to an upload needs X-HTTP-Method-Override: PATCH" }),
              false
            ))
        }
      })

      // The router ignores a trailing slash: these also answer `/storage/tus`.
      yield* router.post(tusPath, create)
      yield* router.options(tusPath, options_)
      yield* router.options(`${tusPath}:id`, options_)
      yield* router.head(`${tusPath}:id`, head)
      yield* router.patch(`${tusPath}:id`, patch)
      yield* router.del(`${tusPath}:id`, terminate)
      yield* router.get(`${tusPath}:id`, get)
      yield* router.post(`${tusPath}:id`, overridden)
    })
  )

// ---- internal ----

type Protocol = { readonly _tag: "tus" } | { readonly _tag: "ietf"; readonly version: string }

const tusVersion = "1.0.0"

/** The IETF draft's interop versions tus-js-client 4 speaks: 5 (draft-03) and 6 (draft-05). */
const interopVersions: ReadonlyArray<string> = ["5", "6"]

const allowedHeaders = [
  "Authorization",
  "Content-Type",
  "Tus-Resumable",
  "Upload-Length",
  "Upload-Metadata",
  "Upload-Offset",
  "Upload-Checksum",
  "Upload-Defer-Length",
  "Upload-Concat",
  "Upload-Complete",
  "Upload-Draft-Interop-Version",
  "X-Request-ID",
  "X-Requested-With",
  "X-HTTP-Method-Override"
].join(", ")

const exposedHeaders = [
  "Location",
  "Upload-Offset",
  "Upload-Length",
  "Upload-Expires",
  "Upload-Metadata",
  "Upload-Complete",
  "Upload-Draft-Interop-Version",
  "Tus-Resumable",
  "Tus-Version",
  "Tus-Extension",
  "Tus-Max-Size",
  "Tus-Checksum-Algorithm",
  keyHeader
].join(", ")

const uploadId = Effect.flatMap(HttpRouter.params, (params) => {
  const id = params["id"] ?? ""
  return /^[A-Za-z0-9-]{1,128}$/.test(id)
    ? Effect.succeed(id)
    : Effect.fail(new InvalidUploadRequest({ message: "malformed upload id" }))
})

const contentLength = (request: HttpServerRequest.HttpServerRequest): number | undefined => {
  const header = request.headers["content-length"]
  return header !== undefined && /^\d{1,16}$/.test(header) ? Number(header) : undefined
}

const byteCount = (header: string | undefined, name: string) =>
  header !== undefined && /^\d{1,16}$/.test(header) && Number.isSafeInteger(Number(header))
    ? Effect.succeed(Number(header))
    : Effect.fail(new InvalidUploadRequest({ message: `send ${name} as a whole number of bytes` }))

/** The content type a request body must have: tus 1.0 and draft-05 name one; draft-03 none. */
const checkBodyType = (protocol: Protocol, request: HttpServerRequest.HttpServerRequest) => {
  const type = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()
  const required = protocol._tag === "tus"
    ? "application/offset+octet-stream"
    : protocol.version === "6"
    ? "application/partial-upload"
    : undefined
  if (required === undefined || type === required) return Effect.void
  return Effect.fail(new UnsupportedMediaType({ message: `send the bytes as Content-Type: ${required}` }))
}

/** Whether the IETF draft's `Upload-Complete: ?1` says this body ends the upload. */
const uploadComplete = (protocol: Protocol, request: HttpServerRequest.HttpServerRequest): boolean | undefined =>
  protocol._tag === "ietf" ? request.headers["upload-complete"] === "?1" : undefined

/** `Upload-Checksum: <algorithm> <base64>`. */
const parseChecksum = (header: string | undefined) => {
  if (header === undefined) return Effect.succeed(undefined)
  const match = /^\s*([A-Za-z0-9-]+)\s+([A-Za-z0-9+/]+={0,2})\s*$/.exec(header)
  if (match === null) {
    return Effect.fail(new InvalidUploadRequest({ message: "Upload-Checksum is <algorithm> <base64 digest>" }))
  }
  const algorithm = match[1]!.toLowerCase()
  if (!isChecksumAlgorithm(algorithm)) {
    return Effect.fail(
      new InvalidUploadRequest({
        message: `checksum algorithm ${algorithm} is not supported (${checksumAlgorithms.join(", ")})`
      })
    )
  }
  return Effect.succeed<RequestChecksum>({ algorithm, digest: match[2]! })
}

/**
 * `Upload-Metadata`: comma-separated pairs of a key (no spaces or commas,
 * unique) and an optional base64 value.
 */
const parseMetadata = (header: string) =>
  Effect.suspend(() => {
    const entries = new Map<string, string>()
    if (header.trim() === "") return Effect.succeed(entries)
    for (const pair of header.split(",")) {
      const [key = "", value, ...rest] = pair.trim().split(" ")
      const malformed = key === "" || rest.length > 0 || entries.has(key) ||
        (value !== undefined && (value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)))
      if (malformed) {
        return Effect.fail(
          new InvalidUploadRequest({ message: "Upload-Metadata is comma-separated <key> <base64 value> pairs" })
        )
      }
      const decoded = value === undefined ? "" : Buffer.from(value, "base64").toString("utf8")
      if (decoded.includes("\uFFFD")) {
        return Effect.fail(new InvalidUploadRequest({ message: `Upload-Metadata ${key} is not UTF-8` }))
      }
      entries.set(key, decoded)
    }
    return Effect.succeed(entries)
  })

/** The metadata a HEAD answers: what the server kept (sanitized filename and type). */
const encodeMetadata = (upload: ResumableUpload): string =>
  `filename ${Buffer.from(upload.originalFilename).toString("base64")},filetype ${
    Buffer.from(upload.contentType).toString("base64")
  }`

/** HTTP status by error tag; anything else is a 500. */
const statusByTag: Readonly<Record<string, number>> = {
  Unauthenticated: 401,
  AccessDenied: 403,
  UploadNotFound: 404,
  UploadOffsetMismatch: 409,
  ClaimNotPending: 409,
  ClaimExpired: 410,
  UploadLocked: 423,
  UploadTooLarge: 413,
  UnsupportedMediaType: 415,
  UnsupportedProtocolVersion: 412,
  TooManyPendingUploads: 429,
  ChecksumMismatch: 460,
  InvalidUploadRequest: 400,
  InvalidUploadSize: 400,
  InvalidFilename: 400,
  RequestBodyError: 400,
  PublicUploadsNotAllowed: 422,
  TooManyParts: 422,
  PartsIncomplete: 422,
  UploadSizeMismatch: 422,
  MultipartNotSupported: 422,
  ServiceUnavailable: 503,
  StorageMisconfigured: 500
}

const tagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "Unknown"

const isUnmapped = (error: unknown): boolean => !(tagOf(error) in statusByTag)

const errorResponse = (error: unknown, isHead: boolean): HttpServerResponse.HttpServerResponse => {
  const tag = tagOf(error)
  const status = statusByTag[tag] ?? 500
  const message = status === 500 && !(tag in statusByTag)
    ? "internal error"
    : String((error as { message?: unknown }).message ?? tag)
  const headers: Record<string, string> = {
    ...(tag === "UploadOffsetMismatch" ? { "upload-offset": String((error as UploadOffsetMismatch).offset) } : {}),
    ...(tag === "UnsupportedProtocolVersion" ? { "tus-version": tusVersion } : {}),
    ...(status === 503 ? { "retry-after": "5" } : {})
  }
  return isHead
    ? HttpServerResponse.empty({ status, headers })
    : HttpServerResponse.unsafeJson({ _tag: tag, message }, { status, headers })
}
