/**
 * A real storage HTTP server with the direct-upload group, on a random port
 * over a fresh database and a chosen backend, and the direct-upload API
 * spoken over HTTP.
 */
import { NodeHttpServer } from "@effect/platform-node"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as http from "node:http"
import { Authentication, TokenResolver } from "../../src/http/Authentication.js"
import * as CompanionHandlers from "../../src/http/CompanionHandlers.js"
import { DirectStorageApi } from "../../src/http/DirectApi.js"
import * as DirectHandlers from "../../src/http/DirectHandlers.js"
import { DownloadRedirect } from "../../src/http/Download.js"
import * as DownloadLinks from "../../src/http/DownloadLinks.js"
import { FileAcl } from "../../src/http/FileAcl.js"
import * as RequestBody from "../../src/http/RequestBody.js"
import * as Sessions from "../../src/http/Sessions.js"
import * as StorageHandlers from "../../src/http/StorageHandlers.js"
import { DirectUploads } from "../../src/layers/DirectUploads.js"
import * as DirectUploadSigner from "../../src/layers/DirectUploadSigner.js"
import * as SqlEventOutbox from "../../src/layers/sql/SqlEventOutbox.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig, type StorageOverrides } from "../../src/layers/StorageConfig.js"
import { Uploads } from "../../src/layers/Uploads.js"
import type { ObjectStorage } from "../../src/services/ObjectStorage.js"
import type { User } from "./client.js"
import { call, linkSecret, tokens } from "./harness.js"

/** The secret the test servers sign their own part URLs with. */
export const directSecret = Redacted.make("test-direct-upload-secret-of-32-bytes-or-more")

/** The secret the test servers sign session cookies with. */
export const sessionSecret = Redacted.make("test-session-cookie-secret-of-32-bytes-or-more")

export const directServerLayer = (
  database: Layer.Layer<SqlClient.SqlClient>,
  backend: Layer.Layer<ObjectStorage, unknown>,
  config: StorageOverrides = {},
  options: { readonly redirectDownloads?: boolean } = {}
) => {
  const foundation = Layer.mergeAll(SqlStores.layer, SqlEventOutbox.layer, backend, StorageConfig.layer(config)).pipe(
    Layer.provideMerge(database)
  )
  const app = HttpApiBuilder.api(DirectStorageApi).pipe(
    Layer.provide(HttpApiBuilder.group(DirectStorageApi, "storage", StorageHandlers.make)),
    Layer.provide(DirectHandlers.layer),
    Layer.provide(HttpApiBuilder.group(DirectStorageApi, "companion", CompanionHandlers.make)),
    Layer.provide(HttpApiBuilder.group(DirectStorageApi, "session", Sessions.sessionHandlers)),
    Layer.provide(RequestBody.layerNode),
    Layer.provide(Layer.merge(Authentication.layer, Sessions.SessionAuthentication.layer)),
    Layer.provide(Sessions.layer({ secret: sessionSecret })),
    Layer.provide(
      Layer.mergeAll(
        TokenResolver.layerFromMap(tokens),
        FileAcl.layerUploader,
        DownloadLinks.layer({ secret: linkSecret })
      )
    ),
    Layer.provide(options.redirectDownloads === true ? DownloadRedirect.layer() : Layer.empty),
    Layer.provideMerge(DirectUploads.Default),
    Layer.provideMerge(Uploads.Default),
    Layer.provideMerge(DirectUploadSigner.layer({ secret: directSecret }))
  )
  return HttpApiBuilder.serve().pipe(
    Layer.provide(app),
    Layer.provideMerge(app),
    Layer.provideMerge(foundation),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )
}

export const openDirect = (user: User, body: Record<string, unknown>) =>
  call(user, HttpClientRequest.post("/storage/direct/uploads").pipe(HttpClientRequest.bodyUnsafeJson(body)))

export const signPart = (user: User, claimId: string, partNumber: number) =>
  call(user, HttpClientRequest.get(`/storage/direct/uploads/${claimId}/parts/${partNumber}`))

export const listStored = (user: User, claimId: string) =>
  call(user, HttpClientRequest.get(`/storage/direct/uploads/${claimId}/parts`))

export const completeDirect = (user: User, claimId: string) =>
  call(user, HttpClientRequest.post(`/storage/direct/uploads/${claimId}/complete`))

/** The server's own origin, for relative URLs. */
export const origin = Effect.map(
  HttpServer.HttpServer,
  (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
)

export interface PutAnswer {
  readonly status: number
  readonly etag: string | undefined
  readonly body: string
}

/**
 * A `PUT` of `body` to a signed URL (absolute, or relative to the server),
 * with a plain Node request: no credentials, and `Content-Length` the
 * body's own unless `contentLength` says otherwise.
 */
export const putTo = (url: string, body: Uint8Array, contentLength = body.length) =>
  Effect.flatMap(origin, (base) =>
    Effect.async<PutAnswer>((resume) => {
      const target = new URL(url, base)
      const req = http.request(target, {
        method: "PUT",
        headers: { "content-length": String(contentLength) }
      }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () =>
          resume(Effect.succeed({
            status: res.statusCode ?? 0,
            etag: res.headers.etag,
            body: Buffer.concat(chunks).toString()
          })))
      })
      req.on("error", (error) => resume(Effect.die(error)))
      req.end(body)
    }))
