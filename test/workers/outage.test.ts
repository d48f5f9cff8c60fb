/**
 * The database goes away for a few seconds under a running delete worker
 * (a proxy between them drops every connection and refuses new ones); the
 * worker's fiber survives the failed runs and carries on afterwards.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import { DeleteWorker } from "../../src/layers/DeleteWorker.js"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import * as Database from "../../src/layers/sql/Database.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig } from "../../src/layers/StorageConfig.js"
import * as StorageMetrics from "../../src/layers/StorageMetrics.js"
import { PendingDelete } from "../../src/schema/Models.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { StorageEvents } from "../../src/services/StorageEvents.js"
import { acquireFreshDatabase, type Dialect, missingServer, serverUrl } from "../support/databases.js"
import { startTcpProxy } from "../support/tcpProxy.js"

const throughProxy = (url: string, port: number) => {
  const parsed = new URL(url)
  parsed.hostname = "127.0.0.1"
  parsed.port = String(port)
  return parsed.toString()
}

const outageTest = (dialect: Dialect) =>
  Effect.gen(function*() {
    const { url } = yield* acquireFreshDatabase(dialect)
    const target = new URL(url)
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() => startTcpProxy(target.hostname, Number(target.port))),
      (p) => Effect.promise(() => p.close())
    )
    // The test's own connection goes straight to the server.
    const direct = SqlStores.layer.pipe(Layer.provideMerge(Database.layerFromUrl(url)))
    const directContext = yield* Layer.build(direct)
    const objects = yield* MemoryObjectStorage.make()
    const storage = Layer.succeed(ObjectStorage, objects)

    // The worker reaches the database through the proxy, every 300 ms.
    const worker = DeleteWorker.layerScheduled.pipe(
      Layer.provideMerge(DeleteWorker.Default),
      Layer.provide(Layer.mergeAll(
        SqlStores.layer,
        storage,
        StorageConfig.layer({ deleteInterval: "300 millis" }),
        StorageEvents.layerNoop
      )),
      Layer.provide(Database.layerFromUrl(throughProxy(url, proxy.port)))
    )
    yield* Layer.build(worker)

    const queueObjects = (prefix: string, n: number) =>
      Effect.gen(function*() {
        const queue = yield* DeleteQueue
        const now = yield* DateTime.now
        const jobs = Array.from({ length: n }, (_, i) =>
          new PendingDelete({
            id: `${prefix}-${i}`,
            key: `${prefix}/${i}.bin`,
            uploadId: "",
            reason: "deleted",
            attempts: 0,
            nextAttemptAt: now,
            createdAt: now
          }))
        yield* Effect.forEach(jobs, (job) => objects.putObject({ key: job.key, body: new Uint8Array([1]) }), {
          discard: true
        })
        yield* queue.enqueue(jobs)
        return jobs
      }).pipe(Effect.provide(directContext))
    const remaining = (prefix: string) =>
      Effect.map(
        Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql`SELECT COUNT(*) AS n FROM sys_storage_pending_delete WHERE object_key LIKE ${prefix + "/%"}`
        ).pipe(
          Effect.provide(directContext)
        ),
        (rows) => Number((rows[0] as { n: unknown }).n)
      )
    const waitUntilDrained = (prefix: string, seconds: number) =>
      Effect.gen(function*() {
        for (let i = 0; i < seconds * 10; i++) {
          if ((yield* remaining(prefix)) === 0) return true
          yield* Effect.sleep("100 millis")
        }
        return false
      })

    yield* queueObjects("before", 50)
    expect(yield* waitUntilDrained("before", 20)).toBe(true)

    // The database goes away for three seconds; work keeps arriving.
    const deletedBefore = (yield* Metric.value(StorageMetrics.objectsDeleted)).count
    yield* Effect.promise(() => proxy.cut())
    yield* queueObjects("during", 50)
    yield* Effect.sleep("3 seconds")
    expect(yield* remaining("during")).toBe(50)
    yield* Effect.promise(() => proxy.restore())

    expect(yield* waitUntilDrained("during", 30)).toBe(true)
    const left = yield* Stream.runCollect(objects.listObjects("during/"))
    expect(Array.from(left)).toEqual([])
    // The counter moves right after the batch's transaction commits.
    let counted = 0
    for (let i = 0; i < 50 && counted < 50; i++) {
      counted = (yield* Metric.value(StorageMetrics.objectsDeleted)).count - deletedBefore
      if (counted < 50) yield* Effect.sleep("20 millis")
    }
    expect(counted).toBeGreaterThanOrEqual(50)
  }).pipe(Effect.scoped, Effect.orDie)

for (const dialect of ["pg", "mysql"] as const) {
  const title = `the delete worker through a database outage [${dialect}]`
  if (serverUrl(dialect) === undefined) {
    missingServer(title, dialect)
    continue
  }
  describe(title, () => {
    it(
      "fails its runs while the database is away and drains what came meanwhile once it is back",
      () => Effect.runPromise(outageTest(dialect)),
      90_000
    )
  })
}
