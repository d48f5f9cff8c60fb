/**
 * bench:lease: does leasing get slower as the queue grows?
 *
 * Two databases per dialect, one with 10,000 rows and one with 1,000,000 in
 * `sys_storage_pending_delete`: 1% due (past `next_attempt_at`), 1%
 * dead-lettered (`dead_at` set, and older than every due row, so an index
 * that ignored `dead_at` would wade through them first), 98% not due yet.
 * Each sample is one `DeleteQueue.lease(now, 100, "5 minutes")` inside a
 * transaction that is then rolled back, so every sample sees the same table;
 * the lease call alone is timed. Sizes interleave run by run; the ratio is
 * the 1,000,000-row median over the 10,000-row median of the same run.
 * The query plans (EXPLAIN ANALYZE on PostgreSQL, ANALYZE on MariaDB,
 * EXPLAIN QUERY PLAN on SQLite) go into RESULTS.md.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { Database, DeleteQueue, SqlStores } from "../src/index.js"
import {
  fmt,
  fmtRatio,
  fmtSpread,
  log,
  median,
  nowMs,
  pairedRatio,
  parseFlags,
  record,
  spread,
  table,
  withRetries
} from "./lib/common.js"
import { type BenchDatabase, createDatabase, type Dialect, mysqlVersion, pgVersion, waitForServers } from "./lib/db.js"

const flags = parseFlags()
const small = 10_000
const large = Number(flags.options.get("rows") ?? (flags.quick ? 100_000 : 1_000_000))
const samplesPerRun = flags.quick ? 50 : 200
const warmup = flags.quick ? 10 : 30
const dialects = (flags.options.get("dialects") ?? "pg,mysql,sqlite").split(",").filter((d) => d !== "") as Array<
  Dialect
>

class Rollback {
  readonly _tag = "Rollback"
  constructor(readonly ms: number, readonly rows: number) {}
}

/** Rows 1..n: 1% dead (oldest), then 1% due, then 98% in the future. */
const fill = (dialect: Dialect, n: number): ReadonlyArray<string> => {
  const dead = Math.floor(n / 100)
  const due = Math.floor(n / 100)
  switch (dialect) {
    case "pg":
      return [
        `INSERT INTO sys_storage_pending_delete (id, object_key, upload_id, reason, attempts, next_attempt_at, created_at, last_error, dead_at)
         SELECT 'id-' || i, 'bench/' || i || '.bin', '', 'deleted',
           CASE WHEN i <= ${dead} THEN 12 ELSE 0 END,
           CASE WHEN i <= ${dead} THEN now() - interval '2 days' + i * interval '1 millisecond'
                WHEN i <= ${dead + due} THEN now() - interval '1 day' + i * interval '1 millisecond'
                ELSE now() + interval '1 hour' + i * interval '1 millisecond' END,
           now() - interval '3 days',
           CASE WHEN i <= ${dead} THEN 'transient' END,
           CASE WHEN i <= ${dead} THEN now() - interval '1 day' END
         FROM generate_series(1, ${n}) AS i`,
        "VACUUM ANALYZE sys_storage_pending_delete",
        "CHECKPOINT"
      ]
    case "mysql":
      return [
        `INSERT INTO sys_storage_pending_delete (id, object_key, upload_id, reason, attempts, next_attempt_at, created_at, last_error, dead_at)
         SELECT CONCAT('id-', seq), CONCAT('bench/', seq, '.bin'), '', 'deleted',
           IF(seq <= ${dead}, 12, 0),
           CASE WHEN seq <= ${dead} THEN UTC_TIMESTAMP(3) - INTERVAL 2 DAY + INTERVAL seq * 1000 MICROSECOND
                WHEN seq <= ${dead + due} THEN UTC_TIMESTAMP(3) - INTERVAL 1 DAY + INTERVAL seq * 1000 MICROSECOND
                ELSE UTC_TIMESTAMP(3) + INTERVAL 1 HOUR + INTERVAL seq * 1000 MICROSECOND END,
           UTC_TIMESTAMP(3) - INTERVAL 3 DAY,
           IF(seq <= ${dead}, 'transient', NULL),
           IF(seq <= ${dead}, UTC_TIMESTAMP(3) - INTERVAL 1 DAY, NULL)
         FROM seq_1_to_${n}`,
        "ANALYZE TABLE sys_storage_pending_delete"
      ]
    case "sqlite": {
      const at = (offsetMs: string) => `strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ((${offsetMs}) / 1000.0) || ' seconds')`
      return [
        `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${n})
         INSERT INTO sys_storage_pending_delete (id, object_key, upload_id, reason, attempts, next_attempt_at, created_at, last_error, dead_at)
         SELECT 'id-' || i, 'bench/' || i || '.bin', '', 'deleted',
           CASE WHEN i <= ${dead} THEN 12 ELSE 0 END,
           CASE WHEN i <= ${dead} THEN ${at(`-172800000 + i`)}
                WHEN i <= ${dead + due} THEN ${at(`-86400000 + i`)}
                ELSE ${at(`3600000 + i`)} END,
           ${at("-259200000")},
           CASE WHEN i <= ${dead} THEN 'transient' END,
           CASE WHEN i <= ${dead} THEN ${at("-86400000")} END
         FROM s`,
        "ANALYZE"
      ]
    }
  }
}

/** The lease statement as SqlDeleteQueue sends it (kept in step by hand), for the plans. */
const planStatements = (dialect: Dialect): ReadonlyArray<string> => {
  switch (dialect) {
    case "pg":
      return [
        `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) UPDATE sys_storage_pending_delete
        SET next_attempt_at = now() + interval '5 minutes', lease_token = 'explain'
        WHERE id IN (
          SELECT id FROM sys_storage_pending_delete
          WHERE dead_at IS NULL AND next_attempt_at <= now()
          ORDER BY next_attempt_at
          LIMIT 100
          FOR UPDATE SKIP LOCKED
        )
        RETURNING id`
      ]
    case "mysql":
      return [
        `ANALYZE SELECT id FROM sys_storage_pending_delete
          WHERE dead_at IS NULL AND next_attempt_at <= UTC_TIMESTAMP(3)
          ORDER BY next_attempt_at
          LIMIT 100
          FOR UPDATE SKIP LOCKED`
      ]
    case "sqlite":
      return [
        `EXPLAIN QUERY PLAN UPDATE sys_storage_pending_delete
        SET next_attempt_at = '2100-01-01T00:00:00.000Z', lease_token = 'explain'
        WHERE id IN (
          SELECT id FROM sys_storage_pending_delete
          WHERE dead_at IS NULL AND next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
          ORDER BY next_attempt_at
          LIMIT 100
        )
        RETURNING id`
      ]
  }
}

const formatPlan = (dialect: Dialect, rows: ReadonlyArray<Record<string, unknown>>): string => {
  switch (dialect) {
    case "pg":
      return rows.map((row) => String(row["QUERY PLAN"])).join("\n")
    case "mysql": {
      const columns = [
        "id",
        "select_type",
        "table",
        "type",
        "possible_keys",
        "key",
        "key_len",
        "ref",
        "rows",
        "r_rows",
        "filtered",
        "r_filtered",
        "Extra"
      ]
      return [columns.join(" | "), ...rows.map((row) => columns.map((c) => String(row[c] ?? "NULL")).join(" | "))].join(
        "\n"
      )
    }
    case "sqlite":
      return rows.map((row) => `${"  ".repeat(Number(row.parent) === 0 ? 0 : 1)}${String(row.detail)}`).join("\n")
  }
}

interface Prepared {
  readonly db: BenchDatabase
  readonly runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient | DeleteQueue, unknown>
  readonly rows: number
}

const prepare = async (dialect: Dialect, rows: number): Promise<Prepared> => {
  const db = await createDatabase(dialect, `lease_${rows}`)
  const runtime = ManagedRuntime.make(SqlStores.layer.pipe(Layer.provideMerge(Database.layerFromUrl(db.url))))
  const t0 = nowMs()
  await runtime.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const statement of fill(dialect, rows)) yield* sql.unsafe(statement)
  }))
  log(`${dialect}: ${rows.toLocaleString("en-US")} rows in ${db.name} (${fmt((nowMs() - t0) / 1000, 1)} s)`)
  return { db, runtime, rows }
}

/** One lease of 100 in a rolled-back transaction; answers the lease's own time. */
const leaseOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const queue = yield* DeleteQueue
  return yield* sql.withTransaction(Effect.gen(function*() {
    const now = yield* DateTime.now
    const started = nowMs()
    const leased = yield* queue.lease(now, 100, "5 minutes")
    return yield* Effect.fail(new Rollback(nowMs() - started, leased.length))
  })).pipe(
    Effect.catchIf((e): e is Rollback => e instanceof Rollback, (rollback) => Effect.succeed(rollback))
  )
})

const samples = (prepared: Prepared, count: number) =>
  prepared.runtime.runPromise(Effect.gen(function*() {
    const out: Array<number> = []
    for (let i = 0; i < count; i++) {
      const result = yield* leaseOnce
      if (!(result instanceof Rollback) || result.rows !== 100) {
        return yield* Effect.die(new Error(`a lease answered ${(result as Rollback).rows} rows, expected 100`))
      }
      out.push(result.ms)
    }
    return out
  }))

const plan = (dialect: Dialect, prepared: Prepared) =>
  prepared.runtime.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const texts: Array<string> = []
    for (const statement of planStatements(dialect)) {
      const rows = yield* sql.withTransaction(Effect.gen(function*() {
        const rows = yield* sql.unsafe<Record<string, unknown>>(statement)
        return yield* Effect.fail(new Rollback(0, rows.length)).pipe(Effect.as(rows)).pipe(
          Effect.orElseSucceed(() => rows)
        )
      }))
      texts.push(formatPlan(dialect, rows))
    }
    return texts.join("\n\n")
  }))

const runDialect = async (dialect: Dialect) => {
  const sets = [await prepare(dialect, small), await prepare(dialect, large)]
  try {
    const medians = new Map<number, Array<number>>(sets.map((set) => [set.rows, []]))
    for (const set of sets) await samples(set, warmup)
    for (let run = 0; run < flags.runs; run++) {
      for (const set of sets) {
        const m = median(await samples(set, samplesPerRun))
        medians.get(set.rows)!.push(m)
      }
      log(
        `run ${run + 1}/${flags.runs} ${dialect}: ` +
          sets.map((s) => `${s.rows} rows ${fmt(medians.get(s.rows)!.at(-1)!, 3)} ms`).join(", ")
      )
    }
    const plans: Array<string> = []
    for (const set of sets) {
      plans.push(
        `${dialect === "pg" ? "PostgreSQL" : dialect === "mysql" ? "MariaDB" : "SQLite"}, ${
          set.rows.toLocaleString("en-US")
        } rows:\n\n\`\`\`\n${await plan(dialect, set)}\n\`\`\``
      )
    }
    return { medians, plans }
  } finally {
    for (const set of sets) {
      await set.runtime.dispose()
      await set.db.drop()
    }
  }
}

const main = async () => {
  const servers: Array<string> = []
  const rows: Array<Array<string>> = []
  const plans: Array<string> = []
  for (const dialect of dialects) {
    if (dialect === "pg") servers.push(await pgVersion())
    if (dialect === "mysql") servers.push(await mysqlVersion())
    const result = await withRetries(`lease on ${dialect}`, () => runDialect(dialect), () => waitForServers())
    const a = result.medians.get(small)!
    const b = result.medians.get(large)!
    const name = dialect === "pg" ? "PostgreSQL" : dialect === "mysql" ? "MariaDB" : "SQLite"
    rows.push([name, small.toLocaleString("en-US"), fmtSpread(spread(a), 3), "1.00x (baseline)"])
    rows.push([name, large.toLocaleString("en-US"), fmtSpread(spread(b), 3), fmtRatio(pairedRatio(b, a))])
    for (const plan of result.plans) plans.push(plan)
  }
  const body = [
    `Median latency of \`DeleteQueue.lease(now, 100, "5 minutes")\` (inside a transaction that is rolled back, so ` +
    `every lease sees the same rows), ${flags.runs} runs of ${samplesPerRun} leases per table size after ${warmup} ` +
    "warm-up ones, sizes interleaved. Each table: 1% due, 1% dead-lettered (older than every due row), 98% not due " +
    "yet; statistics fresh (ANALYZE after loading). The ratio is the large table's median over the small one's, per run.",
    "",
    table(["database", "rows in the table", "lease ms", "vs 10,000 rows"], rows),
    "",
    "Plans of the lease statement (run and rolled back):",
    "",
    plans.join("\n\n")
  ].join("\n")
  record({
    benchmark: "bench:lease",
    flags,
    versions: ["effect", "@effect/sql", "@effect/sql-pg", "@effect/sql-mysql2", "@effect/sql-sqlite-node"],
    servers,
    body
  })
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
