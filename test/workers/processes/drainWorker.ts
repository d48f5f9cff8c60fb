/**
 * One delete-worker process for the multi-process drain test: drains the
 * queue of DATABASE_URL over the filesystem backend at STORAGE_ROOT, and
 * appends one line per object deleted (`key start end`) to DELETE_LOG.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { appendFileSync } from "node:fs"
import { DeleteWorker } from "../../../src/layers/DeleteWorker.js"
import * as FileSystemObjectStorage from "../../../src/layers/objects/FileSystemObjectStorage.js"
import * as Database from "../../../src/layers/sql/Database.js"
import * as SqlStores from "../../../src/layers/sql/SqlStores.js"
import { StorageConfig } from "../../../src/layers/StorageConfig.js"
import { ObjectStorage } from "../../../src/services/ObjectStorage.js"
import { StorageEvents } from "../../../src/services/StorageEvents.js"

const log = process.env.DELETE_LOG!

const LoggedBackend = Layer.effect(
  ObjectStorage,
  Effect.map(ObjectStorage, (inner) => ({
    ...inner,
    deleteObject: (key: string) =>
      Effect.gen(function*() {
        const start = Date.now()
        yield* inner.deleteObject(key)
        appendFileSync(log, `${key} ${start} ${Date.now()}\n`)
      }),
    // The worker's batch delete: every key of the batch that was deleted is logged.
    deleteEach: (keys: Iterable<string>) =>
      Effect.gen(function*() {
        const start = Date.now()
        const all = [...new Set(keys)]
        const failed = yield* inner.deleteEach(all)
        const end = Date.now()
        const lines = all.filter((key) => !failed.has(key)).map((key) => `${key} ${start} ${end}\n`)
        if (lines.length > 0) appendFileSync(log, lines.join(""))
        return failed
      })
  }))
).pipe(Layer.provide(FileSystemObjectStorage.layer({ root: process.env.STORAGE_ROOT! })))

const WorkerLive = DeleteWorker.Default.pipe(
  Layer.provide(Layer.mergeAll(
    SqlStores.layer,
    LoggedBackend,
    StorageConfig.layer({ deleteBatchSize: 100, deleteConcurrency: 8, leaseWindow: "5 minutes" }),
    StorageEvents.layerNoop
  )),
  Layer.provide(Database.layerFromUrl(process.env.DATABASE_URL!))
)

Effect.gen(function*() {
  const worker = yield* DeleteWorker
  let total = 0
  // Runs until one finds nothing due; the other processes finish their own leases.
  while (true) {
    const report = yield* worker.runOnce
    total += report.deleted
    if (report.leased === 0) break
  }
  console.log(JSON.stringify({ pid: process.pid, deleted: total }))
}).pipe(Effect.provide(WorkerLive), NodeRuntime.runMain)
