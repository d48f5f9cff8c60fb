/**
 * A real storage HTTP server on a random port over a fresh database and a
 * chosen backend, with a real HTTP client pointed at it.
 */
import { NodeHttpServer } from "@effect/platform-node"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as http from "node:http"
import * as net from "node:net"
import { Authentication, TokenResolver } from "../../src/http/Authentication.js"
import * as DownloadLinks from "../../src/http/DownloadLinks.js"
import { FileAcl } from "../../src/http/FileAcl.js"
import { StorageApi } from "../../src/http/StorageApi.js"
import * as StorageHandlers from "../../src/http/StorageHandlers.js"
import * as SqlEventOutbox from "../../src/layers/sql/SqlEventOutbox.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig, type StorageOverrides } from "../../src/layers/StorageConfig.js"
import { Uploads } from "../../src/layers/Uploads.js"
import type { ObjectStorage } from "../../src/services/ObjectStorage.js"

export const tokens = { alice: "token-alice", bob: "token-bob" } as const

/** The secret the test servers sign download links with. */
export const linkSecret = Redacted.make("test-download-link-secret-of-32-bytes-or-more")

export const serverLayer = (
  database: Layer.Layer<SqlClient.SqlClient>,
  backend: Layer.Layer<ObjectStorage, unknown>,
  config: StorageOverrides = {}
) => {
  const foundation = Layer.mergeAll(SqlStores.layer, SqlEventOutbox.layer, backend, StorageConfig.layer(config)).pipe(
    Layer.provideMerge(database)
  )
  const app = HttpApiBuilder.api(StorageApi).pipe(
    Layer.provide(StorageHandlers.layer),
    Layer.provide(Authentication.layer),
    Layer.provide(
      Layer.mergeAll(
        TokenResolver.layerFromMap(tokens),
        FileAcl.layerUploader,
        DownloadLinks.layer({ secret: linkSecret })
      )
    ),
    Layer.provideMerge(Uploads.Default)
  )
  return HttpApiBuilder.serve().pipe(
    Layer.provide(app),
    Layer.provideMerge(app),
    Layer.provideMerge(foundation),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )
}

/** Sends a request as `user` (or anonymously) and reads the JSON answer. */
export const call = (
  user: keyof typeof tokens | undefined,
  request: HttpClientRequest.HttpClientRequest
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const authed = user === undefined ? request : HttpClientRequest.bearerToken(request, tokens[user])
    const response = yield* client.execute(authed)
    const text = yield* response.text
    return { status: response.status, headers: response.headers, json: parse(text), text }
  }).pipe(Effect.scoped)

export const raw = (
  user: keyof typeof tokens | undefined,
  request: HttpClientRequest.HttpClientRequest
): Effect.Effect<
  { status: number; headers: HttpClientResponse.HttpClientResponse["headers"]; body: Uint8Array },
  unknown,
  HttpClient.HttpClient
> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const authed = user === undefined ? request : HttpClientRequest.bearerToken(request, tokens[user])
    const response = yield* client.execute(authed)
    const body = new Uint8Array(yield* response.arrayBuffer)
    return { status: response.status, headers: response.headers, body }
  }).pipe(Effect.scoped)

const parse = (text: string): any => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * A GET with the path sent exactly as given (fetch would resolve `..` and
 * `%2e%2e` segments before sending).
 */
export const rawGet = (path: string, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const address = server.address as HttpServer.TcpAddress
    return yield* Effect.async<{ status: number; body: string }>((resume) => {
      const req = http.request({ host: "127.0.0.1", port: address.port, path, method: "GET", headers }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () =>
          resume(Effect.succeed({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() })))
      })
      req.on("error", (e) =>
        resume(Effect.die(e)))
      req.end()
    })
  })

/**
 * Sends a POST as alice that declares `declared` bytes but sends 10 and
 * closes the connection: a client that goes away mid-body.
 */
export const sendCutBody = (port: number, path: string, declared: number): Promise<void> =>
  new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokens.alice}\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`
      )
      socket.write(Buffer.alloc(10, 1))
      setTimeout(() => socket.destroy(), 200)
    })
    socket.on("error", () => {})
    socket.on("close", () => resolve())
  })
