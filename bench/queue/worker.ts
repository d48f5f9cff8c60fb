/**
 * One worker process of the queue-drain benchmark (forked by bench/queue.ts).
 *
 * `worker.ts <kind> <url> <settings-json>`: connects and prepares, sends
 * `ready`, waits for `go`, then drains the queue and sends `done` with its
 * monotonic start and end times and how many jobs it finished. A kind that
 * has no "until empty" mode (@effect/sql's SqlPersistedQueue) reports
 * `progress` and is told to `stop` once the parent has counted every job.
 */
import { DeleteObjectCommand, S3Client } from "@aws-sdk/client-s3"
import * as PersistedQueue from "@effect/experimental/PersistedQueue"
import * as SqlPersistedQueue from "@effect/sql/SqlPersistedQueue"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import { Logger as GraphileLogger, runOnce } from "graphile-worker"
import { randomUUID } from "node:crypto"
import pg from "pg"
import PgBoss from "pg-boss"
import { nowMs } from "../lib/common.js"
import { loadLibrary } from "../lib/library.js"
import type { ChildMessage, ParentMessage, QueueKind, WorkerSettings } from "./protocol.js"

const [kind, url, settingsJson] = process.argv.slice(2) as [QueueKind, string, string]
const settings = JSON.parse(settingsJson) as WorkerSettings

// `BENCH_SRC_DIR`: the library's sources to load instead of this checkout's
// (bench/queue.ts `--baseline=REV` points it at an export of REV, for
// before/after figures in the same run).
const library = await loadLibrary(process.env.BENCH_SRC_DIR)
const { Database, DeleteWorker, MemoryObjectStorage, S3ObjectStorage, SqlStores, StorageConfig, StorageEvents } =
  library

/** The `-s3` kinds' client: the settings every S3 client of this project uses against Ceph. */
const s3Client = () => {
  const target = settings.s3!
  return new S3Client({
    endpoint: target.endpoint,
    region: target.region,
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })
}

/** What a graphile-worker or pg-boss user writes: one DeleteObjectCommand per job. */
const deleteOne = (client: S3Client, key: string) =>
  client.send(new DeleteObjectCommand({ Bucket: settings.s3!.bucket, Key: key }))

const send = (message: ChildMessage) => process.send!(message)

let count = 0
let tLast = 0
const finished = () => {
  count++
  tLast = nowMs()
}

const waitFor = (type: ParentMessage["type"]) =>
  new Promise<void>((resolve) => {
    const listener = (message: ParentMessage) => {
      if (message.type === type) {
        process.off("message", listener)
        resolve()
      }
    }
    process.on("message", listener)
  })

/** A drain: `prepare` runs before `ready`; the drain it answers runs after `go`. */
type Prepare = () => Promise<{ readonly drain: () => Promise<void>; readonly close: () => Promise<void> }>

const oursOn = (backend: "memory" | "s3"): Prepare => async () => {
  const layer = DeleteWorker.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(
      SqlStores.layer,
      backend === "memory" ? MemoryObjectStorage.layer() : S3ObjectStorage.layer({
        bucket: settings.s3!.bucket,
        endpoint: settings.s3!.endpoint,
        region: settings.s3!.region,
        forcePathStyle: true,
        credentials: { accessKeyId: settings.s3!.accessKeyId, secretAccessKey: settings.s3!.secretAccessKey }
      }),
      StorageEvents.layerNoop,
      StorageConfig.layer({ deleteBatchSize: settings.batchSize, deleteConcurrency: settings.concurrency })
    )),
    Layer.provideMerge(Database.layerFromUrl(url))
  )
  const runtime = ManagedRuntime.make(layer)
  await runtime.runPromise(Effect.void)
  return {
    drain: async () => {
      const report = await runtime.runPromise(Effect.flatMap(DeleteWorker, (worker) => worker.runOnce))
      count = report.deleted
      tLast = nowMs()
    },
    close: () => runtime.dispose()
  }
}

/**
 * The floor of this design: the same lease statement and the same DELETE as
 * the DeleteWorker on PostgreSQL, written by hand with `pg`, one batch after
 * the other, no objects, no events, no library.
 */
const raw: Prepare = async () => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const columns =
    "id, object_key, upload_id, reason, attempts, next_attempt_at, created_at, last_error, lease_token, dead_at"
  return {
    drain: async () => {
      while (true) {
        const now = new Date()
        const { rows } = await client.query<{ id: string }>(
          `UPDATE sys_storage_pending_delete SET next_attempt_at = $1, lease_token = $2
           WHERE id IN (
             SELECT id FROM sys_storage_pending_delete
             WHERE dead_at IS NULL AND next_attempt_at <= $3
             ORDER BY next_attempt_at LIMIT ${settings.batchSize}
             FOR UPDATE SKIP LOCKED)
           RETURNING ${columns}`,
          [new Date(now.getTime() + 300_000), randomUUID(), now]
        )
        if (rows.length === 0) break
        await client.query("BEGIN")
        await client.query("DELETE FROM sys_storage_pending_delete WHERE id = ANY($1)", [rows.map((row) => row.id)])
        await client.query("COMMIT")
        count += rows.length
        tLast = nowMs()
      }
    },
    close: () => client.end()
  }
}

const graphileWith = (task: () => Promise<(payload: unknown) => Promise<void>>): Prepare => async () => {
  const run = await task()
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  // A dropped idle connection must not crash the process (graphile-worker asks for a handler too).
  pool.on("error", () => {})
  await pool.query("SELECT 1")
  return {
    drain: async () => {
      await runOnce({
        pgPool: pool,
        noHandleSignals: true,
        logger: new GraphileLogger(() => () => {}),
        taskList: {
          noop: async (payload) => {
            await run(payload)
            finished()
          }
        },
        preset: {
          worker: {
            concurrentJobs: settings.concurrency,
            localQueue: { size: settings.batchSize },
            completeJobBatchDelay: settings.completeJobBatchDelay ?? 0
          }
        }
      })
      tLast = nowMs()
    },
    close: () => pool.end()
  }
}

const pgBossWith = (task: () => Promise<(data: unknown) => Promise<void>>): Prepare => async () => {
  const run = await task()
  const boss = new PgBoss({ connectionString: url, max: 10, supervise: false, schedule: false, migrate: false })
  boss.on("error", (error) => console.error("[pg-boss]", error))
  await boss.start()
  return {
    drain: async () => {
      // fetch + complete in a loop: the documented manual API. `work()` waits
      // its polling interval (at least 0.5 s) between batches even when a
      // batch came back full, which would cap it at batchSize / 0.5 s.
      while (true) {
        const jobs = await boss.fetch(settings.queueName, { batchSize: settings.batchSize })
        if (jobs.length === 0) break
        // The batch's jobs, `concurrency` at a time (a no-op for the plain kind).
        let next = 0
        const lane = async () => {
          while (next < jobs.length) await run(jobs[next++]!.data)
        }
        await Promise.all(Array.from({ length: settings.concurrency }, lane))
        await boss.complete(settings.queueName, jobs.map((job) => job.id))
        count += jobs.length
        tLast = nowMs()
      }
    },
    close: () => boss.stop({ graceful: false, wait: true })
  }
}

const effectPersistedQueue: Prepare = async () => {
  const layer = PersistedQueue.layer.pipe(
    Layer.provide(SqlPersistedQueue.layerStore({ pollInterval: "100 millis" })),
    Layer.provide(Database.layerFromUrl(url))
  )
  const runtime = ManagedRuntime.make(layer)
  await runtime.runPromise(Effect.void)
  return {
    drain: async () => {
      const taker = Effect.gen(function*() {
        const queue = yield* PersistedQueue.make({ name: settings.queueName, schema: Schema.Unknown })
        yield* Effect.forever(queue.take(() => Effect.sync(finished)))
      })
      const fiber = runtime.runFork(Effect.forEach(
        // As many takers as a batch: the store polls one row per waiting taker.
        Array.from({ length: settings.batchSize }),
        () => taker,
        { concurrency: "unbounded", discard: true }
      ))
      await waitFor("stop")
      await runtime.runPromise(Fiber.interrupt(fiber))
    },
    close: () => runtime.dispose()
  }
}

const noTask = async () => async () => {}

/** The S3 kinds' task: delete the job's object, one request per job. */
const deleteTask = async () => {
  const client = s3Client()
  return async (payload: unknown) => {
    await deleteOne(client, (payload as { key: string }).key)
  }
}

const kinds: Record<QueueKind, Prepare> = {
  ours: oursOn("memory"),
  raw,
  graphile: graphileWith(noTask),
  pgboss: pgBossWith(noTask),
  effectpq: effectPersistedQueue,
  "ours-s3": oursOn("s3"),
  "graphile-s3": graphileWith(deleteTask),
  "pgboss-s3": pgBossWith(deleteTask)
}

const main = async () => {
  const { close, drain } = await kinds[kind]()
  const go = waitFor("go")
  send({ type: "ready" })
  await go
  const t0 = nowMs()
  const cpu0 = process.cpuUsage()
  const progress = setInterval(() => send({ type: "progress", count }), 50)
  await drain()
  clearInterval(progress)
  const cpu = process.cpuUsage(cpu0)
  send({ type: "done", t0, tLast: tLast === 0 ? nowMs() : tLast, count, cpuMs: (cpu.user + cpu.system) / 1000 })
  await close()
  process.exit(0)
}

main().catch((error) => {
  console.error(`[bench worker ${kind}]`, error)
  process.exit(1)
})
