/**
 * The whole stack from the environment: database, stores, object backend,
 * upload flow, workers and metrics sampling.
 *
 * | variable | default |
 * |---|---|
 * | DATABASE_URL | `sqlite:./data/storage.db` |
 * | STORAGE_BACKEND | `filesystem` (`s3`, `memory`) |
 * | STORAGE_ROOT | `./data/objects` |
 * | S3_BUCKET, S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE, S3_CREATE_BUCKET | AWS defaults |
 * | S3_CORS_ORIGINS | none; comma-separated origins to set the bucket's CORS rule for (direct uploads from browsers) |
 * | STORAGE_PART_SIZE | the backend's own |
 * | STORAGE_RUN_WORKERS | `true` (the delete worker and the sweeper run in this process) |
 * | STORAGE_EVENTS | `log` (`outbox`: the event outbox table; `none`) |
 * | STORAGE_* of `StorageConfig.layerFromEnv` | see there |
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ClaimConsumer } from "../services/ClaimConsumer.js"
import type { ClaimStore } from "../services/ClaimStore.js"
import type { DeleteQueue } from "../services/DeleteQueue.js"
import type { DeleteScheduler } from "../services/DeleteScheduler.js"
import type { FileRegistry } from "../services/FileRegistry.js"
import type { ObjectStorage } from "../services/ObjectStorage.js"
import { StorageEvents } from "../services/StorageEvents.js"
import type { UploadPartStore } from "../services/UploadPartStore.js"
import type { UploadTailStore } from "../services/UploadTailStore.js"
import { ClaimSweeper } from "./ClaimSweeper.js"
import { DeleteWorker } from "./DeleteWorker.js"
import { Files } from "./Files.js"
import * as FileSystemObjectStorage from "./objects/FileSystemObjectStorage.js"
import * as MemoryObjectStorage from "./objects/MemoryObjectStorage.js"
import * as S3ObjectStorage from "./objects/S3ObjectStorage.js"
import * as Database from "./sql/Database.js"
import * as SqlEventOutbox from "./sql/SqlEventOutbox.js"
import * as SqlStores from "./sql/SqlStores.js"
import { backendKind, byteSize, eventsKind, filesystemRoot, StorageConfig } from "./StorageConfig.js"
import * as StorageMetrics from "./StorageMetrics.js"
import { Uploads } from "./Uploads.js"

/**
 * The object backend named by `STORAGE_BACKEND`.
 *
 * @since 0.1.0
 * @category layers
 */
export const backendFromConfig: Layer.Layer<ObjectStorage, unknown> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const kind = yield* backendKind
    const partSize = Option.getOrUndefined(yield* Config.option(byteSize("STORAGE_PART_SIZE")))
    switch (kind) {
      case "memory":
        yield* Effect.logWarning("STORAGE_BACKEND=memory: objects live in this process only and vanish with it")
        return MemoryObjectStorage.layer({ partSize })
      case "filesystem": {
        return FileSystemObjectStorage.layer({ root: yield* filesystemRoot, partSize })
      }
      case "s3": {
        const s3 = yield* Config.all({
          bucket: Config.string("S3_BUCKET"),
          endpoint: Config.option(Config.string("S3_ENDPOINT")),
          region: Config.option(Config.string("S3_REGION")),
          accessKeyId: Config.option(Config.string("S3_ACCESS_KEY_ID")),
          secretAccessKey: Config.option(Config.redacted("S3_SECRET_ACCESS_KEY")),
          forcePathStyle: Config.boolean("S3_FORCE_PATH_STYLE").pipe(Config.withDefault(false)),
          createBucket: Config.boolean("S3_CREATE_BUCKET").pipe(Config.withDefault(false)),
          corsOrigins: Config.string("S3_CORS_ORIGINS").pipe(Config.withDefault(""))
        })
        const credentials = Option.isSome(s3.accessKeyId) && Option.isSome(s3.secretAccessKey)
          ? { accessKeyId: s3.accessKeyId.value, secretAccessKey: Redacted.value(s3.secretAccessKey.value) }
          : undefined
        return S3ObjectStorage.layer({
          bucket: s3.bucket,
          endpoint: Option.getOrUndefined(s3.endpoint),
          region: Option.getOrUndefined(s3.region),
          credentials,
          forcePathStyle: s3.forcePathStyle,
          createBucket: s3.createBucket,
          corsOrigins: s3.corsOrigins.split(",").map((origin) => origin.trim()).filter((origin) => origin !== ""),
          partSize
        })
      }
    }
  })
)

/**
 * Everything the stack provides.
 *
 * @since 0.1.0
 * @category models
 */
export type Services =
  | SqlClient.SqlClient
  | ClaimStore
  | ClaimConsumer
  | UploadPartStore
  | UploadTailStore
  | DeleteQueue
  | DeleteScheduler
  | FileRegistry
  | ObjectStorage
  | StorageConfig
  | StorageEvents
  | Uploads
  | Files
  | DeleteWorker
  | ClaimSweeper

/**
 * The stack over given parts: the database, stores, backend, settings and
 * events, plus the upload flow, the `Files` facade and the workers (run on their schedules
 * unless `runWorkers` is false) and metrics sampling.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (parts: {
  readonly database: Layer.Layer<SqlClient.SqlClient, unknown>
  readonly backend: Layer.Layer<ObjectStorage, unknown>
  readonly config: Layer.Layer<StorageConfig, unknown>
  readonly events?: Layer.Layer<StorageEvents, unknown, SqlClient.SqlClient> | undefined
  readonly runWorkers?: boolean | undefined
}): Layer.Layer<Services, unknown> => {
  const foundation = Layer.mergeAll(
    SqlStores.layer,
    parts.backend,
    parts.config,
    parts.events ?? StorageEvents.layerLog
  ).pipe(Layer.provideMerge(parts.database))
  const services = Layer.mergeAll(Uploads.Default, Files.Default, DeleteWorker.Default, ClaimSweeper.Default).pipe(
    Layer.provideMerge(foundation)
  )
  const background = parts.runWorkers === false
    ? StorageMetrics.layerSampler()
    : Layer.mergeAll(DeleteWorker.layerScheduled, ClaimSweeper.layerScheduled, StorageMetrics.layerSampler())
  return Layer.merge(services, background.pipe(Layer.provide(services)))
}

/**
 * The stack from the environment (see the module's table).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig: Layer.Layer<Services, unknown> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      runWorkers: Config.boolean("STORAGE_RUN_WORKERS").pipe(Config.withDefault(true)),
      events: eventsKind
    }),
    ({ events, runWorkers }) =>
      layer({
        database: Database.layerFromConfig,
        backend: backendFromConfig,
        config: StorageConfig.layerFromEnv,
        events: eventsLayers[events],
        runWorkers
      })
  )
)

/** The `StorageEvents` named by `STORAGE_EVENTS`. */
const eventsLayers: Record<"log" | "outbox" | "none", Layer.Layer<StorageEvents, never, SqlClient.SqlClient>> = {
  log: StorageEvents.layerLog,
  outbox: SqlEventOutbox.layer,
  none: StorageEvents.layerNoop
}
