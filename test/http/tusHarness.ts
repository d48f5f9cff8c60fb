/**
 * A real storage server with the tus endpoint on a random port, over a
 * fresh database and a chosen backend; tus-js-client driven against it.
 */
import { NodeHttpServer } from "@effect/platform-node"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import { Readable } from "node:stream"
import * as tus from "tus-js-client"
import { Authentication, TokenResolver } from "../../src/http/Authentication.js"
import * as DownloadLinks from "../../src/http/DownloadLinks.js"
import { FileAcl } from "../../src/http/FileAcl.js"
import * as RequestBody from "../../src/http/RequestBody.js"
import { StorageApi } from "../../src/http/StorageApi.js"
import * as StorageHandlers from "../../src/http/StorageHandlers.js"
import * as Tus from "../../src/http/Tus.js"
import { ClaimSweeper } from "../../src/layers/ClaimSweeper.js"
import { DeleteWorker } from "../../src/layers/DeleteWorker.js"
import { Reconciler } from "../../src/layers/Reconciler.js"
import * as SqlEventOutbox from "../../src/layers/sql/SqlEventOutbox.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig, type StorageOverrides } from "../../src/layers/StorageConfig.js"
import { TusUploads } from "../../src/layers/TusUploads.js"
import { Uploads } from "../../src/layers/Uploads.js"
import type { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { linkSecret, tokens } from "./harness.js"

export { tokens }

export const tusServerLayer = (
  database: Layer.Layer<SqlClient.SqlClient>,
  backend: Layer.Layer<ObjectStorage, unknown>,
  config: StorageOverrides = {},
  options: Tus.TusOptions = {}
) => {
  const foundation = Layer.mergeAll(SqlStores.layer, SqlEventOutbox.layer, backend, StorageConfig.layer(config)).pipe(
    Layer.provideMerge(database)
  )
  const flows = Layer.mergeAll(TusUploads.Default, DeleteWorker.Default, ClaimSweeper.Default, Reconciler.Default).pipe(
    Layer.provideMerge(Uploads.Default)
  )
  const shared = Layer.mergeAll(
    TokenResolver.layerFromMap(tokens),
    FileAcl.layerUploader,
    DownloadLinks.layer({ secret: linkSecret }),
    RequestBody.layerNode
  )
  const app = HttpApiBuilder.api(StorageApi).pipe(
    Layer.provide(StorageHandlers.layer),
    Layer.provide(Authentication.layer),
    Layer.provide(shared)
  )
  const routes = Tus.layer(options).pipe(Layer.provide(shared))
  return HttpApiBuilder.serve().pipe(
    Layer.provide(routes),
    Layer.provide(app),
    Layer.provideMerge(flows),
    Layer.provideMerge(foundation),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )
}

/** The test server's base URL. */
export const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address as HttpServer.TcpAddress
  return `http://127.0.0.1:${address.port}`
})

/**
 * tus-js-client's own Node HTTP stack, with an `Upload-Checksum` (sha1 of
 * the body) added to every request that carries bytes: tus-js-client has
 * no checksum option of its own, and `httpStack` is its public way in.
 */
export class ChecksumHttpStack {
  readonly inner = new tus.DefaultHttpStack({})
  checksummed = 0
  private sent = 0
  /**
   * @param stallRequest the body-carrying request (1-based) whose body stops
   * half-way, as on a network that stalls, so the client can be aborted
   * while the request is in flight.
   */
  constructor(readonly stallRequest?: number) {}
  createRequest(method: string, url: string) {
    const request = this.inner.createRequest(method, url)
    const send = request.send.bind(request)
    request.send = async (body?: unknown) => {
      if (body === null || body === undefined) return send(body as null)
      const bytes = body instanceof Readable ? Buffer.concat(await body.toArray()) : Buffer.from(body as Uint8Array)
      request.setHeader("Upload-Checksum", `sha1 ${createHash("sha1").update(bytes).digest("base64")}`)
      this.checksummed++
      this.sent++
      if (this.sent === this.stallRequest) {
        const stalled = new Readable({ read() {} })
        stalled.push(bytes.subarray(0, bytes.length >> 1))
        return send(Object.assign(stalled, { size: bytes.length }) as never)
      }
      // The default stack sends a `size` as Content-Length.
      return send(Object.assign(bytes, { size: bytes.length }) as never)
    }
    return request
  }
  getName() {
    return "ChecksumHttpStack"
  }
}

/** Runs an upload to its success (or its error). */
export const runUpload = (upload: tus.Upload) =>
  Effect.async<{ readonly lastResponse: tus.HttpResponse }, Error>((resume) => {
    upload.options.onSuccess = (payload) => resume(Effect.succeed(payload))
    upload.options.onError = (error) => resume(Effect.fail(error))
    upload.start()
  })
