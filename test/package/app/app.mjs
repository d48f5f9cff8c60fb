// The same app as app.ts in plain JavaScript, run with node from the
// installed tarball; then the drivers this app did not install (PostgreSQL,
// MySQL, the S3 SDK) must fail with an error naming the package.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServer from "@effect/platform/HttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import {
  Database,
  Files,
  FileSystemObjectStorage,
  S3ObjectStorage,
  Storage,
  StorageConfig,
  Telemetry,
  Uploads
} from "effect-storage"
import {
  Authentication,
  DownloadLinks,
  FileAcl,
  RequestBody,
  StorageApiGroup,
  StorageHandlers,
  TokenResolver
} from "effect-storage/http"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"

class AppApi extends HttpApi.make("app").add(StorageApiGroup) {}

const StorageLive = Storage.layer({
  database: Database.layerFromUrl("sqlite:./data/app-mjs.db"),
  backend: FileSystemObjectStorage.layer({ root: "./data/objects-mjs" }),
  config: StorageConfig.layer({ maxUploadSize: 1024 * 1024 }),
  runWorkers: false
})

const ApiLive = HttpApiBuilder.api(AppApi).pipe(
  Layer.provide(HttpApiBuilder.group(AppApi, "storage", StorageHandlers.make)),
  Layer.provide(RequestBody.layerNode),
  Layer.provide(Authentication.layer),
  Layer.provide(Layer.mergeAll(
    TokenResolver.layerFromMap({ alice: "token-alice" }),
    FileAcl.layerUploader,
    DownloadLinks.layerMemory()
  ))
)

const ServerLive = HttpApiBuilder.serve().pipe(
  Layer.provide(ApiLive),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0 }))
)

const program = Effect.gen(function*() {
  const uploads = yield* Uploads
  const files = yield* Files
  const sql = yield* SqlClient.SqlClient
  const alice = { id: "alice" }
  const bytes = new TextEncoder().encode("hello from plain JavaScript")

  const ticket = yield* uploads.initUpload({ principal: alice, filename: "hello.png", size: bytes.length })
  yield* uploads.uploadPart({ principal: alice, claimId: ticket.claimId, partNumber: 1, body: bytes })
  const done = yield* uploads.completeUpload({ principal: alice, claimId: ticket.claimId })
  yield* sql.withTransaction(files.onCreate(alice, [done.key]))

  const address = yield* HttpServer.addressFormattedWith((url) => Effect.succeed(url))
  const response = yield* Effect.promise(() =>
    fetch(`${address}/storage/files/${done.key}`, { headers: { authorization: "Bearer token-alice" } })
  )
  const served = new Uint8Array(yield* Effect.promise(() => response.arrayBuffer()))
  return {
    key: done.key,
    size: done.size,
    status: response.status,
    identical: Buffer.from(served).equals(Buffer.from(bytes))
  }
})

/** What building a layer fails with: its tag and message. */
const failureOf = (layer) =>
  Effect.runPromise(
    Layer.build(layer).pipe(
      Effect.scoped,
      Effect.match({ onFailure: (e) => ({ tag: e._tag, message: e.message }), onSuccess: () => ({ tag: "built" }) })
    )
  )

const result = await Effect.runPromise(
  program.pipe(Effect.provide(ServerLive), Effect.provide(StorageLive), Effect.scoped)
)
const missing = {
  pg: await failureOf(Database.layerFromUrl("postgres://nobody@127.0.0.1:1/none")),
  mysql: await failureOf(Database.layerFromUrl("mysql://nobody@127.0.0.1:1/none")),
  s3: await failureOf(S3ObjectStorage.layer({ bucket: "none", endpoint: "http://127.0.0.1:1" })),
  otel: await failureOf(Effect.runSync(
    Effect.withConfigProvider(
      Telemetry.settingsConfig(),
      ConfigProvider.fromMap(new Map([["OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"]]))
    ).pipe(Effect.map(Telemetry.layer))
  ))
}
console.log(JSON.stringify({ ...result, missing }))
