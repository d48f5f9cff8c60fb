/**
 * bench:queue: draining 100,000 due delete-queue rows with 1 and 4 worker
 * processes (DeleteWorker.runOnce, memory backend, no-op events), against
 * graphile-worker, pg-boss and @effect/sql's SqlPersistedQueue working off
 * 100,000 no-op jobs in the same PostgreSQL database, with the same process
 * counts. Then the same drain (ours only) on MariaDB and SQLite.
 *
 * Then what users meet: 20,000 queued deletions of real objects on Ceph RGW
 * (2,000 with `--quick`; `--s3-rows=N`), drained by the DeleteWorker on its
 * S3 backend vs graphile-worker and pg-boss whose task deletes its object
 * with one `DeleteObjectCommand` per job, same batch size and concurrency,
 * 1 and 4 processes; every object must be gone afterwards (counted from the
 * bucket). `--s3=false` skips this part.
 *
 * Timing: from the first worker's start (after every process has connected
 * and signalled ready) to the last job finished in any process; enqueueing
 * (and uploading the objects) is not timed. Before each drain: VACUUM
 * ANALYZE and CHECKPOINT (PostgreSQL).
 */
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlPersistedQueue from "@effect/sql/SqlPersistedQueue"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { Logger as GraphileLogger, makeWorkerUtils, runMigrations } from "graphile-worker"
import { join } from "node:path"
import PgBoss from "pg-boss"
import { Database, DeleteScheduler, SqlStores } from "../src/index.js"
import {
  benchDir,
  fmt,
  fmtRatio,
  fmtSpread,
  log,
  pairedRatio,
  parseFlags,
  record,
  spread,
  table,
  withRetries
} from "./lib/common.js"
import {
  type BenchDatabase,
  createDatabase,
  type Dialect,
  mysqlVersion,
  pgVersion,
  waitForServers,
  withMysql,
  withPg
} from "./lib/db.js"
import { exportRevision } from "./lib/library.js"
import { forkTs, waitExit } from "./lib/processes.js"
import type { ChildMessage, QueueKind, WorkerSettings } from "./queue/protocol.js"
import { createBucket, deleteBucket, newBucketName, s3, s3Client } from "./upload/common.js"

const flags = parseFlags()
const total = Number(flags.options.get("rows") ?? (flags.quick ? 10_000 : 100_000))
const processCounts = [1, 4]
let settings: WorkerSettings = {
  batchSize: Number(flags.options.get("batch") ?? 100),
  concurrency: Number(flags.options.get("concurrency") ?? 8),
  queueName: "noop",
  completeJobBatchDelay: Number(flags.options.get("graphile-batch-delay") ?? 0)
}
const peerKinds: ReadonlyArray<QueueKind> = (flags.options.get("kinds")?.split(",") as Array<QueueKind> | undefined) ??
  ["ours", "raw", "graphile", "pgboss", "effectpq"]
/** `--baseline=REV`: also run effect-storage as of git revision REV (before/after figures). */
const baselineRev = flags.options.get("baseline")
/** `--s3=false`: skip the Ceph part. */
const withS3 = flags.options.get("s3") !== "false"
const drainTimeoutMs = 600_000
const profileDir = flags.options.get("profile")

const labels: Record<QueueKind, string> = {
  ours: "effect-storage DeleteWorker",
  raw: "hand-written SQL loop (same statements, no library)",
  graphile: "graphile-worker",
  pgboss: "pg-boss",
  effectpq: "@effect/sql SqlPersistedQueue",
  "ours-s3": "effect-storage DeleteWorker (S3 backend: DeleteObjects per batch)",
  "graphile-s3": "graphile-worker, task: one DeleteObjectCommand per job",
  "pgboss-s3": "pg-boss, task: one DeleteObjectCommand per job"
}

/** The Ceph part: how many objects each drain deletes. */
const s3Rows = Number(flags.options.get("s3-rows") ?? (flags.quick ? 2_000 : 20_000))
const s3Kinds: ReadonlyArray<QueueKind> = (flags.options.get("s3-kinds")?.split(",") as Array<QueueKind> | undefined) ??
  ["ours-s3", "graphile-s3", "pgboss-s3"]
/** The keys the `-s3` drains of run `rep` delete (set before each drain). */
let s3Keys: ReadonlyArray<string> = []

/** One thing drained: a queue kind, possibly run from other sources. */
interface Side {
  readonly id: string
  readonly kind: QueueKind
  readonly label: string
  readonly env?: NodeJS.ProcessEnv
}

// ---- enqueueing (not timed) ----

const schedule = async (db: BenchDatabase, rep: number) => {
  const runtime = ManagedRuntime.make(SqlStores.layer.pipe(Layer.provideMerge(Database.layerFromUrl(db.url))))
  try {
    await runtime.runPromise(Effect.gen(function*() {
      const scheduler = yield* DeleteScheduler
      for (let start = 0; start < total; start += 1000) {
        const keys = Array.from({ length: Math.min(1000, total - start) }, (_, i) => `bench/${rep}/${start + i}.bin`)
        yield* scheduler.schedule(keys, "deleted")
      }
    }))
  } finally {
    await runtime.dispose()
  }
}

const quietGraphile = new GraphileLogger(() => () => {})

const scheduleKeys = async (db: BenchDatabase, keys: ReadonlyArray<string>) => {
  const runtime = ManagedRuntime.make(SqlStores.layer.pipe(Layer.provideMerge(Database.layerFromUrl(db.url))))
  try {
    await runtime.runPromise(Effect.flatMap(DeleteScheduler, (scheduler) =>
      Effect.forEach(
        Array.from({ length: Math.ceil(keys.length / 1000) }, (_, i) => keys.slice(i * 1000, (i + 1) * 1000)),
        (chunk) => scheduler.schedule(chunk, "deleted"),
        { discard: true }
      )))
  } finally {
    await runtime.dispose()
  }
}

const graphileJobs = async (db: BenchDatabase, first: boolean, payloads: ReadonlyArray<object>) => {
  if (first) await runMigrations({ connectionString: db.url, logger: quietGraphile })
  const utils = await makeWorkerUtils({ connectionString: db.url, logger: quietGraphile })
  try {
    for (let start = 0; start < payloads.length; start += 5000) {
      await utils.addJobs(payloads.slice(start, start + 5000).map((payload) => ({ identifier: "noop", payload })))
    }
  } finally {
    await utils.release()
  }
}

const pgBossJobs = async (db: BenchDatabase, first: boolean, payloads: ReadonlyArray<object>) => {
  const boss = new PgBoss({ connectionString: db.url, max: 4, supervise: false, schedule: false, migrate: first })
  boss.on("error", (error) => console.error("[pg-boss]", error))
  await boss.start()
  try {
    if (first) await boss.createQueue(settings.queueName)
    else await withPg(db.url, (c) => c.query("TRUNCATE pgboss.job"))
    for (let start = 0; start < payloads.length; start += 5000) {
      await boss.insert(payloads.slice(start, start + 5000).map((data) => ({ name: settings.queueName, data })))
    }
  } finally {
    await boss.stop({ graceful: false, wait: true })
  }
}

const enqueue: Record<QueueKind, (db: BenchDatabase, rep: number, first: boolean) => Promise<void>> = {
  ours: (db, rep) => schedule(db, rep),
  raw: (db, rep) => schedule(db, rep),
  graphile: (db, _rep, first) => graphileJobs(db, first, Array.from({ length: total }, (_, i) => ({ i }))),
  "ours-s3": (db) => scheduleKeys(db, s3Keys),
  "graphile-s3": (db, _rep, first) => graphileJobs(db, first, s3Keys.map((key) => ({ key }))),
  "pgboss-s3": (db, _rep, first) => pgBossJobs(db, first, s3Keys.map((key) => ({ key }))),
  pgboss: async (db, _rep, first) => {
    const boss = new PgBoss({ connectionString: db.url, max: 4, supervise: false, schedule: false, migrate: first })
    boss.on("error", (error) => console.error("[pg-boss]", error))
    await boss.start()
    try {
      if (first) await boss.createQueue(settings.queueName)
      else await withPg(db.url, (c) => c.query("TRUNCATE pgboss.job"))
      for (let start = 0; start < total; start += 5000) {
        await boss.insert(
          Array.from({ length: Math.min(5000, total - start) }, (_, i) => ({
            name: settings.queueName,
            data: { i: start + i }
          }))
        )
      }
    } finally {
      await boss.stop({ graceful: false, wait: true })
    }
  },
  effectpq: async (db, _rep, first) => {
    if (first) {
      // The store creates its table and indexes when built.
      const runtime = ManagedRuntime.make(
        Layer.provide(SqlPersistedQueue.layerStore(), Database.layerFromUrl(db.url))
      )
      await runtime.runPromise(Effect.void)
      await runtime.dispose()
    }
    // One multi-row INSERT of what `offer` writes one row at a time.
    await withPg(db.url, async (c) => {
      await c.query("TRUNCATE effect_queue")
      await c.query(
        `INSERT INTO effect_queue (id, queue_name, element, completed, attempts, created_at, updated_at)
         SELECT gen_random_uuid()::text, $1, json_build_object('i', g)::text, FALSE, 0, now(), now()
         FROM generate_series(1, $2::int) AS g`,
        [settings.queueName, total]
      )
    })
  }
}

const queueCount = {
  ours: "SELECT COUNT(*) AS n FROM sys_storage_pending_delete",
  graphile: "SELECT COUNT(*) AS n FROM graphile_worker._private_jobs",
  pgboss: "SELECT COUNT(*) AS n FROM pgboss.job WHERE state < 'completed'"
}
const remaining: Record<QueueKind, (db: BenchDatabase) => Promise<number>> = {
  ours: (db) => countRows(db, queueCount.ours),
  raw: (db) => countRows(db, queueCount.ours),
  graphile: (db) => countRows(db, queueCount.graphile),
  pgboss: (db) => countRows(db, queueCount.pgboss),
  effectpq: (db) => countRows(db, "SELECT COUNT(*) AS n FROM effect_queue WHERE completed = FALSE"),
  "ours-s3": (db) => countRows(db, queueCount.ours),
  "graphile-s3": (db) => countRows(db, queueCount.graphile),
  "pgboss-s3": (db) => countRows(db, queueCount.pgboss)
}

/** A COUNT(*) through the library's own client, on any dialect. */
const countRows = (db: BenchDatabase, query: string): Promise<number> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql.unsafe<{ n: unknown }>(query)
      return Number(rows[0]!.n)
    }).pipe(Effect.provide(Database.layerFromUrl(db.url)), Effect.scoped)
  )

/** The same starting point for every drain: fresh statistics, no dirty pages waiting for a checkpoint. */
const settle = async (db: BenchDatabase) => {
  switch (db.dialect) {
    case "pg":
      return withPg(db.url, async (c) => {
        await c.query("VACUUM ANALYZE")
        await c.query("CHECKPOINT")
      })
    case "mysql":
      return withMysql(db.url, async (c) => {
        await c.query("ANALYZE TABLE sys_storage_pending_delete")
      })
    case "sqlite":
      return
  }
}

/** After a failed drain (a server restarted under us, say): wait for the servers, empty what was queued. */
const recover = async (db: BenchDatabase, kind: QueueKind) => {
  await waitForServers()
  const clear: Record<QueueKind, string> = {
    ours: "DELETE FROM sys_storage_pending_delete",
    raw: "DELETE FROM sys_storage_pending_delete",
    graphile: "DELETE FROM graphile_worker._private_jobs",
    pgboss: "DELETE FROM pgboss.job",
    effectpq: "DELETE FROM effect_queue",
    "ours-s3": "DELETE FROM sys_storage_pending_delete",
    "graphile-s3": "DELETE FROM graphile_worker._private_jobs",
    "pgboss-s3": "DELETE FROM pgboss.job"
  }
  await Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(clear[kind])).pipe(
      Effect.provide(Database.layerFromUrl(db.url)),
      Effect.scoped,
      Effect.ignore
    )
  )
}

// ---- one drain ----

interface Drain {
  readonly ms: number
  readonly perSecond: number
  /** CPU time of the worker processes (not the database's). */
  readonly cpuMs: number
}

const drain = async (side: Side, db: BenchDatabase, processes: number, jobs = total): Promise<Drain> => {
  const kind = side.kind
  const children = Array.from(
    { length: processes },
    () =>
      forkTs(join(benchDir, "queue", "worker.ts"), [kind, db.url, JSON.stringify(settings)], {
        env: side.env ?? {},
        // `--profile=DIR`: a V8 CPU profile of every worker process, for `--cpu-prof` analysis.
        execArgv: profileDir === undefined
          ? []
          : ["--cpu-prof", `--cpu-prof-dir=${profileDir}/${side.id}-x${processes}`]
      })
  )
  const done = new Map<number, { t0: number; tLast: number; count: number; cpuMs: number }>()
  const progress = new Map<number, number>()
  let stopSent = false
  try {
    const ready = children.map((child) =>
      new Promise<void>((resolve, reject) => {
        child.on("message", (message: ChildMessage) => {
          if (message.type === "ready") resolve()
        })
        child.once("exit", (code) => reject(new Error(`${kind} worker exited (${code}) before it was ready`)))
      })
    )
    await Promise.all(ready)
    const finished = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${kind} did not drain within ${drainTimeoutMs} ms`)),
        drainTimeoutMs
      )
      const check = () => {
        const counted = [...progress.values()].reduce((a, b) => a + b, 0)
        if (!stopSent && counted >= jobs && done.size < children.length) {
          stopSent = true
          for (const child of children) if (child.connected) child.send({ type: "stop" })
        }
        if (done.size === children.length) {
          clearTimeout(timer)
          resolve()
        }
      }
      children.forEach((child, index) => {
        child.on("message", (message: ChildMessage) => {
          if (message.type === "progress") progress.set(index, message.count)
          if (message.type === "done") {
            done.set(index, message)
            progress.set(index, message.count)
          }
          check()
        })
        child.once("exit", (code) => {
          if (!done.has(index)) reject(new Error(`${kind} worker exited (${code}) before it was done`))
        })
      })
    })
    for (const child of children) child.send({ type: "go" })
    await finished
  } finally {
    await Promise.all(children.map((child) => waitExit(child, 30_000)))
  }
  const results = [...done.values()]
  const t0 = Math.min(...results.map((r) => r.t0))
  const t1 = Math.max(...results.map((r) => r.tLast))
  const count = results.reduce((a, r) => a + r.count, 0)
  const left = await remaining[kind](db)
  if (left !== 0 || count < jobs) {
    throw new Error(`${kind}: ${count} jobs reported done, ${left} still queued (expected ${jobs} and 0)`)
  }
  const ms = t1 - t0
  const cpuMs = results.reduce((a, r) => a + r.cpuMs, 0)
  return { ms, perSecond: jobs / (ms / 1000), cpuMs }
}

// ---- the run ----

type Series = Map<string, Array<number>>
const push = (series: Series, key: string, value: number) => {
  const values = series.get(key) ?? []
  values.push(value)
  series.set(key, values)
}

const runPg = async (series: Series, sides: ReadonlyArray<Side>) => {
  const prepared = new Set<QueueKind>()
  const db = await createDatabase("pg", "queue")
  log(`PostgreSQL database ${db.name}`)
  try {
    for (let rep = 0; rep < flags.runs; rep++) {
      for (const processes of processCounts) {
        for (const side of sides) {
          const result = await withRetries(`pg ${side.id} x${processes}`, async () => {
            await enqueue[side.kind](db, rep, !prepared.has(side.kind))
            prepared.add(side.kind)
            await settle(db)
            return drain(side, db, processes)
          }, () => recover(db, side.kind))
          log(
            `run ${rep + 1}/${flags.runs} pg ${side.id} x${processes}: ${fmt(result.ms, 0)} ms, ` +
              `${fmt(result.perSecond, 0)} jobs/s, worker CPU ${fmt(result.cpuMs, 0)} ms`
          )
          push(series, `pg/${side.id}/${processes}`, result.perSecond)
          push(series, `pg/${side.id}/${processes}/cpu`, result.cpuMs)
        }
      }
    }
  } finally {
    await db.drop()
  }
}

/** Uploads `keys` as small objects (not timed), 32 at once. */
const putObjects = async (client: S3Client, bucket: string, keys: ReadonlyArray<string>) => {
  let next = 0
  const body = new Uint8Array(1024)
  const lane = async () => {
    while (next < keys.length) {
      const key = keys[next++]!
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
    }
  }
  await Promise.all(Array.from({ length: 32 }, lane))
}

/** How many objects are left under `prefix`, read from the bucket itself. */
const countObjects = async (client: S3Client, bucket: string, prefix: string) => {
  let count = 0
  let token: string | undefined
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token })
    )
    count += page.KeyCount ?? 0
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined
  } while (token !== undefined)
  return count
}

/** The Ceph part: each drain deletes `s3Rows` real objects; the bucket must hold none of them afterwards. */
const runS3 = async (series: Series, sides: ReadonlyArray<Side>) => {
  const client = s3Client()
  const bucket = newBucketName("queue")
  await createBucket(client, bucket)
  const db = await createDatabase("pg", "queue_s3")
  settings = {
    ...settings,
    s3: {
      endpoint: s3.endpoint,
      region: s3.region,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      bucket
    }
  }
  const prepared = new Set<QueueKind>()
  log(`PostgreSQL database ${db.name}, bucket ${bucket}`)
  try {
    for (let rep = 0; rep < flags.runs; rep++) {
      for (const processes of processCounts) {
        for (const side of sides) {
          const prefix = `${side.id}/${rep}/${processes}/`
          s3Keys = Array.from({ length: s3Rows }, (_, i) => `${prefix}${i}.bin`)
          const result = await withRetries(`s3 ${side.id} x${processes}`, async () => {
            await putObjects(client, bucket, s3Keys)
            await enqueue[side.kind](db, rep, !prepared.has(side.kind))
            prepared.add(side.kind)
            await settle(db)
            return drain(side, db, processes, s3Rows)
          }, () => recover(db, side.kind))
          const left = await countObjects(client, bucket, prefix)
          if (left !== 0) throw new Error(`${side.id}: ${left} of ${s3Rows} objects were not deleted`)
          log(
            `run ${rep + 1}/${flags.runs} s3 ${side.id} x${processes}: ${fmt(result.ms, 0)} ms, ` +
              `${fmt(result.perSecond, 0)} objects/s, worker CPU ${fmt(result.cpuMs, 0)} ms, 0 objects left`
          )
          push(series, `s3/${side.id}/${processes}`, result.perSecond)
          push(series, `s3/${side.id}/${processes}/cpu`, result.cpuMs)
          push(series, `s3/${side.id}/${processes}/left`, left)
        }
      }
    }
  } finally {
    await db.drop()
    await deleteBucket(client, bucket).catch((error) => log("could not delete the bucket", error))
    client.destroy()
  }
}

const runOurs = async (dialect: Dialect, series: Series) => {
  const db = await createDatabase(dialect, "queue")
  log(`${dialect} database ${db.name}`)
  try {
    for (let rep = 0; rep < flags.runs; rep++) {
      for (const processes of processCounts) {
        const result = await withRetries(`${dialect} ours x${processes}`, async () => {
          await schedule(db, rep)
          await settle(db)
          return drain({ id: "ours", kind: "ours", label: labels.ours }, db, processes)
        }, () => recover(db, "ours"))
        log(
          `run ${rep + 1}/${flags.runs} ${dialect} ours x${processes}: ${fmt(result.ms, 0)} ms, ${
            fmt(result.perSecond, 0)
          } rows/s`
        )
        push(series, `${dialect}/ours/${processes}`, result.perSecond)
      }
    }
  } finally {
    await db.drop()
  }
}

const main = async () => {
  const series: Series = new Map()
  const servers = [await pgVersion()]
  const sides: Array<Side> = peerKinds.map((kind) => ({ id: kind, kind, label: labels[kind] }))
  if (baselineRev !== undefined) {
    sides.splice(1, 0, {
      id: "ours-baseline",
      kind: "ours",
      label: `effect-storage DeleteWorker as of ${baselineRev} (before)`,
      env: { BENCH_SRC_DIR: exportRevision(baselineRev) }
    })
  }
  await runPg(series, sides)
  const s3Sides: Array<Side> = s3Kinds.map((kind) => ({ id: kind, kind, label: labels[kind] }))
  if (baselineRev !== undefined) {
    s3Sides.splice(1, 0, {
      id: "ours-s3-baseline",
      kind: "ours-s3",
      label: `effect-storage DeleteWorker (S3 backend) as of ${baselineRev} (before)`,
      env: { BENCH_SRC_DIR: exportRevision(baselineRev) }
    })
  }
  if (withS3) await runS3(series, s3Sides)
  const dialects = ((flags.options.get("dialects") ?? "mysql,sqlite").split(",").filter((d) => d !== "")) as Array<
    Dialect
  >
  for (const dialect of dialects) {
    if (dialect === "mysql") servers.push(await mysqlVersion())
    await runOurs(dialect, series)
  }

  const rows: Array<Array<string>> = []
  for (const processes of processCounts) {
    const ours = series.get(`pg/ours/${processes}`) ?? []
    for (const side of sides) {
      const values = series.get(`pg/${side.id}/${processes}`) ?? []
      if (values.length === 0) continue
      rows.push([
        "PostgreSQL",
        String(processes),
        side.label,
        fmtSpread(spread(values), 0),
        fmt(spread((series.get(`pg/${side.id}/${processes}/cpu`) ?? []).map((ms) => ms / 1000)).median, 2),
        side.id === "ours" ? "1.00x (baseline)" : fmtRatio(pairedRatio(ours, values))
      ])
    }
  }
  const pgTable = table(
    ["database", "processes", "queue", "jobs/s", "worker CPU s (all processes)", "effect-storage vs this"],
    rows
  )

  const otherRows: Array<Array<string>> = []
  for (const dialect of dialects) {
    const one = series.get(`${dialect}/ours/1`) ?? []
    for (const processes of processCounts) {
      const values = series.get(`${dialect}/ours/${processes}`) ?? []
      otherRows.push([
        dialect === "mysql" ? "MariaDB" : "SQLite",
        String(processes),
        fmtSpread(spread(values), 0),
        processes === 1 ? "1.00x (baseline)" : fmtRatio(pairedRatio(values, one))
      ])
    }
  }
  const otherTable = table(["database", "processes", "rows/s (effect-storage)", "vs 1 process"], otherRows)

  const s3Table = table(
    ["processes", "queue", "objects deleted/s", "worker CPU s", "objects left", "effect-storage vs this"],
    withS3
      ? processCounts.flatMap((processes) => {
        const ours = series.get(`s3/ours-s3/${processes}`) ?? []
        return s3Sides.map((side) => [
          String(processes),
          side.label,
          fmtSpread(spread(series.get(`s3/${side.id}/${processes}`) ?? []), 0),
          fmt(spread((series.get(`s3/${side.id}/${processes}/cpu`) ?? []).map((ms) => ms / 1000)).median, 2),
          String(Math.max(...(series.get(`s3/${side.id}/${processes}/left`) ?? [Number.NaN]))),
          side.id === "ours-s3"
            ? "1.00x (baseline)"
            : fmtRatio(pairedRatio(ours, series.get(`s3/${side.id}/${processes}`) ?? []))
        ])
      })
      : []
  )

  const body = [
    `Drain of ${total.toLocaleString("en-US")} due jobs, ${flags.runs} runs per side (runs interleaved), ` +
    "time from the first worker's start to the last job finished (enqueueing not timed; VACUUM ANALYZE and " +
    "CHECKPOINT before each drain). The ratio column is effect-storage's jobs/s over the peer's, per run.",
    "",
    "Settings: effect-storage `DeleteWorker.runOnce`, `deleteBatchSize` " +
    `${settings.batchSize}, \`deleteConcurrency\` ${settings.concurrency}, memory backend, \`StorageEvents.layerNoop\`; ` +
    `graphile-worker \`runOnce\`, \`concurrentJobs\` ${settings.concurrency}, \`localQueue.size\` ${settings.batchSize}, ` +
    `\`completeJobBatchDelay\` ${settings.completeJobBatchDelay}, jobs added with \`addJobs\`; ` +
    `pg-boss \`fetch({ batchSize: ${settings.batchSize} })\` + \`complete(ids)\` in a loop until empty ` +
    "(its `work()` sleeps its polling interval, at least 0.5 s, between batches), jobs added with `insert`; " +
    `SqlPersistedQueue (\`pollInterval\` 100 ms) with ${settings.batchSize} concurrent \`take\` fibers per process ` +
    "(it polls as many rows as there are takers and completes each row with its own UPDATE), rows bulk-inserted; " +
    "hand-written SQL: the DeleteWorker's own lease statement and DELETE sent with `pg`, nothing else (the floor of " +
    "this queue design here, not a product). Every process has a pool of 10 connections. Worker CPU is the user + " +
    "system time of the worker processes while draining (the database's own CPU is not included).",
    "",
    pgTable,
    "",
    otherTable,
    ...(withS3
      ? [
        "",
        `What users meet: ${s3Rows.toLocaleString("en-US")} queued deletions of real 1 KiB objects on Ceph RGW ` +
        "(PostgreSQL queue), same batch size and concurrency as above; the peers' task deletes its job's object " +
        "with one `DeleteObjectCommand`; the DeleteWorker deletes each leased batch with `DeleteObjects`. " +
        "\"objects left\" is counted from the bucket after each drain (the largest of the runs).",
        "",
        s3Table
      ]
      : [])
  ].join("\n")
  record({
    benchmark: "bench:queue",
    flags,
    versions: [
      "effect",
      "@effect/sql",
      "@effect/sql-pg",
      "@effect/sql-mysql2",
      "@effect/sql-sqlite-node",
      "graphile-worker",
      "pg-boss",
      "pg"
    ],
    servers,
    body
  })
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
