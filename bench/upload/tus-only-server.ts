/**
 * bench:upload's lean tus side: an app that serves only effect-storage's
 * tus endpoint (`/storage/tus/`) and a health check over the storage stack
 * (with its delete worker and sweeper), as a team taking tus uploads and
 * nothing else would deploy it: the same shape as the @tus/server peer,
 * where the example server also carries the parts API, documents, pages
 * and API docs.
 *
 * Environment: as the example server (PORT, DATABASE_URL, STORAGE_*, S3_*,
 * STORAGE_TOKENS).
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { RequestBody, TokenResolver, Tus } from "../../src/http/index.js"
import { Storage, TusUploads } from "../../src/index.js"

class TusOnlyApi extends HttpApi.make("tus-only") {}

const HealthLive = HttpApiBuilder.Router.use((router) => router.get("/healthz", HttpServerResponse.text("ok")))

const ServerLive = HttpApiBuilder.serve().pipe(
  Layer.provide(HealthLive),
  Layer.provide(Tus.layer()),
  Layer.provide(HttpApiBuilder.api(TusOnlyApi)),
  Layer.provide(Layer.mergeAll(RequestBody.layerNode, TokenResolver.layerFromEnv)),
  Layer.provide(TusUploads.Default),
  Layer.provide(Layer.unwrapEffect(Effect.map(
    Config.integer("PORT"),
    (port) => NodeHttpServer.layer(createServer, { port })
  ))),
  Layer.provide(Storage.layerFromConfig)
)

Layer.launch(ServerLive).pipe(NodeRuntime.runMain)
