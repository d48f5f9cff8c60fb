/**
 * The example server (`npm start`): the storage API, the upload page at `/`,
 * the direct-upload page at `/direct` (Uppy straight to the storage),
 * the documents API, the API docs at `/docs` (OpenAPI at `/openapi.json`),
 * Prometheus metrics at `/metrics`, the delete worker and sweeper, and
 * OTLP export when the `OTEL_*` variables ask for it.
 *
 * Defaults: SQLite at ./data/storage.db and files under ./data/objects;
 * every setting comes from the environment (see README).
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import {
  Authentication,
  CompanionHandlers,
  DirectHandlers,
  Download,
  DownloadLinks,
  Prometheus,
  Redaction,
  RequestBody,
  Sessions,
  StorageHandlers,
  TokenResolver,
  Tus,
  UploadPage
} from "../src/http/index.js"
import { DirectUploads, DirectUploadSigner, durationConfig, Storage, Telemetry, TusUploads } from "../src/index.js"
import * as DirectPage from "./directPage.js"
import { aclLayer, AppApi, handlers as documentsHandlers, migrations } from "./documents.js"
import * as UppyPage from "./uppyPage.js"

/** Demo tokens when STORAGE_TOKENS is not set, so the page works out of the box. */
const demoTokens = "alice=tokenA,bob=tokenB"

const TokensLive = Layer.unwrapEffect(Effect.gen(function*() {
  const configured = yield* Config.option(Config.string("STORAGE_TOKENS"))
  if (configured._tag === "None") {
    yield* Effect.logWarning(`STORAGE_TOKENS is not set: using the demo tokens ${demoTokens}`)
    return TokenResolver.layerFromMap({ alice: "tokenA", bob: "tokenB" })
  }
  return TokenResolver.layerFromEnv
}))

/** The storage stack (with the Files facade) and the example's tables. */
const StorageLive = Layer.effectDiscard(migrations).pipe(
  Layer.provideMerge(TusUploads.Default),
  Layer.provideMerge(Storage.layerFromConfig)
)

/** Direct uploads: the groups' handlers and what they need beside the storage stack. */
const DirectLive = Layer.mergeAll(
  HttpApiBuilder.group(AppApi, "direct", DirectHandlers.make),
  HttpApiBuilder.group(AppApi, "companion", CompanionHandlers.make),
  HttpApiBuilder.group(AppApi, "session", Sessions.sessionHandlers)
).pipe(
  Layer.provide(Sessions.SessionAuthentication.layer),
  Layer.provide(Sessions.layerFromConfig)
)

const ApiLive = HttpApiBuilder.api(AppApi).pipe(
  Layer.provide(HttpApiBuilder.group(AppApi, "storage", StorageHandlers.make)),
  Layer.provide(DirectLive),
  Layer.provide(RequestBody.layerNode),
  Layer.provide(documentsHandlers),
  Layer.provide(DirectUploads.Default.pipe(Layer.provide(DirectUploadSigner.layerFromConfig))),
  Layer.provide(Authentication.layer),
  Layer.provide(Layer.mergeAll(TokensLive, aclLayer, DownloadLinks.layerFromConfig)),
  // STORAGE_DOWNLOAD_REDIRECT=true: downloads answer 302 to a presigned GET (S3 backend).
  Layer.provide(Download.DownloadRedirect.layerFromConfig)
)

/** Resumable uploads (tus 1.0 and the IETF draft) at /storage/tus/, with the API's bearer tokens. */
const TusLive = Tus.layer().pipe(Layer.provide(Layer.merge(RequestBody.layerNode, TokensLive)))

/** Routes outside the API: the upload pages (minimal, and Uppy over tus), metrics and a health check. */
const PagesLive = HttpApiBuilder.Router.use((router) =>
  Effect.all([
    router.get("/", UploadPage.response({ title: "effect-storage example" })),
    UppyPage.routes(router),
    router.get("/metrics", Prometheus.response),
    router.get("/healthz", HttpServerResponse.text("ok"))
  ])
)

/**
 * The HTTP server on PORT. Slow or stalled clients are cut off with a 408:
 * the headers must arrive within HTTP_HEADERS_TIMEOUT (60 s), the whole
 * request within HTTP_REQUEST_TIMEOUT (5 minutes: a 16 MiB part on a slow
 * link); both are checked every few seconds.
 */
const HttpLive = Layer.unwrapEffect(Effect.gen(function*() {
  const port = yield* Config.integer("PORT").pipe(Config.withDefault(8080))
  const headersTimeout = yield* durationConfig("HTTP_HEADERS_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60)))
  const requestTimeout = yield* durationConfig("HTTP_REQUEST_TIMEOUT").pipe(Config.withDefault(Duration.minutes(5)))
  const options = {
    headersTimeout: Duration.toMillis(headersTimeout),
    requestTimeout: Math.max(Duration.toMillis(requestTimeout), Duration.toMillis(headersTimeout)),
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Duration.toMillis(headersTimeout) / 4))
  }
  return NodeHttpServer.layer(() => guarded(createServer(options)), { port })
}))

/**
 * The server listens before the app's request handler is attached (and
 * after it is detached at shutdown): a request arriving then would find no
 * listener and never be answered, so a client or load balancer would wait
 * for it until its own timeout. It gets a 503 `ServiceUnavailable` with
 * `Retry-After` instead: a definite "not done", safe to retry elsewhere.
 */
const guarded = (server: Server): Server =>
  server.on("request", (_request: IncomingMessage, response: ServerResponse) => {
    if (server.listenerCount("request") > 1) return
    const body = JSON.stringify({ _tag: "ServiceUnavailable", message: "the server is starting or stopping" })
    response.writeHead(503, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      "retry-after": "1",
      connection: "close"
    })
    response.end(body)
  })

/**
 * The API docs page (Swagger UI), loaded on its first request: its bundled
 * script weighs about 20 MB of a server's memory, which an idle server
 * should not carry for a page few open.
 */
const DocsLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const api = yield* HttpApi.Api
    const scope = yield* Effect.scope
    const docs = yield* Effect.cached(Effect.gen(function*() {
      const HttpApiSwagger = yield* Effect.promise(() => import("@effect/platform/HttpApiSwagger"))
      const context = yield* Layer.buildWithScope(
        HttpApiSwagger.layer({ path: "/docs" }).pipe(
          Layer.provideMerge(HttpApiBuilder.Router.Live),
          Layer.provide(Layer.succeed(HttpApi.Api, api))
        ),
        scope
      )
      return yield* Effect.provide(HttpApiBuilder.Router.router, context)
    }))
    yield* router.get("/docs", Effect.flatMap(docs, (docsRouter) => docsRouter))
  })
)

/**
 * The largest request body read whole (JSON payloads): 1 MiB. Part uploads
 * are streamed and limited by the part size instead. Without it, handlers
 * run with no limit at all and buffer any JSON body whole.
 */
const MaxBodySizeLive = Layer.succeed(HttpIncomingMessage.MaxBodySize, Option.some(FileSystem.Size(1024 * 1024)))

// The storage stack is built before the server listens; between listening
// and the handler being attached, `guarded` answers 503. Signed URLs are
// credentials: the request log redacts them, and `withRedaction` keeps
// them (and redirect targets) out of the spans.
const ServerLive = HttpApiBuilder.serve(Redaction.logger).pipe(
  Redaction.withRedaction,
  Layer.provide(MaxBodySizeLive),
  Layer.provide(DocsLive),
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
  Layer.provide(PagesLive),
  Layer.provide(TusLive),
  Layer.provide(DirectPage.routes),
  Layer.provide(ApiLive),
  HttpServer.withLogAddress,
  Layer.provide(HttpLive),
  Layer.provide(StorageLive)
)

/**
 * Traces, metrics and logs over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or a
 * signal's own endpoint) is set; provided around everything, so the
 * workers' spans and the start-up are exported too.
 */
const TelemetryLive = Telemetry.layerFromConfig({ serviceName: "effect-storage-example" })

Layer.launch(ServerLive.pipe(Layer.provide(TelemetryLive))).pipe(NodeRuntime.runMain)
