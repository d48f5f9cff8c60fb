/**
 * bench:schedule: what scheduling deletions costs a business transaction.
 *
 * Each transaction inserts one business row and schedules 0, 1, 10 or 1,000
 * deletions (`DeleteScheduler.schedule`, fresh keys every time), measured
 * from the client: BEGIN to COMMIT, as the application sees it. Sizes are
 * interleaved; each run takes the median per size, and the figures are the
 * median and spread of the runs. The ratio is over the transaction that
 * schedules nothing, in the same run.
 *
 * `--baseline=REV` also measures the library as of git revision REV.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { randomUUID } from "node:crypto"
import pg from "pg"
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
import { exportRevision, type Library, loadLibrary } from "./lib/library.js"

const flags = parseFlags()
const sizes = [0, 1, 10, 1000]
const iterations = (size: number) => (flags.quick ? (size >= 1000 ? 10 : 40) : (size >= 1000 ? 60 : 300))
const warmup = flags.quick ? 5 : 20
const dialects = (flags.options.get("dialects") ?? "pg,mysql,sqlite").split(",").filter((d) => d !== "") as Array<
  Dialect
>
const baselineRev = flags.options.get("baseline")

interface Variant {
  readonly id: string
  readonly label: string
  readonly library: Library
}

const businessTable = (dialect: Dialect) =>
  dialect === "pg"
    ? `CREATE TABLE bench_document (id VARCHAR(64) PRIMARY KEY, title VARCHAR(200) NOT NULL, files TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now())`
    : dialect === "mysql"
    ? `CREATE TABLE bench_document (id VARCHAR(64) NOT NULL PRIMARY KEY, title VARCHAR(200) NOT NULL, files TEXT NOT NULL,
        created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB`
    : `CREATE TABLE bench_document (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, files TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)`

let counter = 0

/** One business transaction scheduling `size` fresh keys; answers its duration in ms. */
const transaction = (library: Library, size: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const scheduler = yield* library.DeleteScheduler
    const n = counter++
    const keys = Array.from({ length: size }, (_, i) => `documents/${n}/${i}.pdf`)
    const started = nowMs()
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`INSERT INTO bench_document (id, title, files) VALUES (${`doc-${n}`}, ${"a document"}, ${"[]"})`
      if (size > 0) yield* scheduler.schedule(keys, "replaced")
    }))
    return nowMs() - started
  })

/**
 * The floor on PostgreSQL: the same transaction written by hand with `pg`
 * (the same rows in one INSERT ... SELECT FROM unnest, random UUIDs), no
 * library. What inserting the rows costs the database, to tell it from what
 * the library adds.
 */
const floorSamples = async (db: BenchDatabase, sizeRounds: number) => {
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  const samples = new Map<number, Array<number>>(sizes.map((size) => [size, []]))
  try {
    const once = async (size: number) => {
      const n = counter++
      const keys = Array.from({ length: size }, (_, i) => `documents/${n}/${i}.pdf`)
      const started = nowMs()
      await client.query("BEGIN")
      await client.query("INSERT INTO bench_document (id, title, files) VALUES ($1, $2, $3)", [
        `doc-${n}`,
        "a document",
        "[]"
      ])
      if (size > 0) {
        const now = new Date().toISOString()
        await client.query(
          `INSERT INTO sys_storage_pending_delete (id, object_key, upload_id, reason, attempts, next_attempt_at, created_at)
           SELECT id, key, '', 'replaced', 0, $3, $3 FROM unnest($1::text[], $2::text[]) AS u(id, key)
           ON CONFLICT (object_key, reason) DO NOTHING`,
          [keys.map(() => randomUUID()), keys, now]
        )
      }
      await client.query("COMMIT")
      return nowMs() - started
    }
    for (const size of sizes) for (let i = 0; i < warmup; i++) await once(size)
    for (let round = 0; round < sizeRounds; round++) {
      for (const size of sizes) if (round < iterations(size)) samples.get(size)!.push(await once(size))
    }
  } finally {
    await client.end()
  }
  return samples
}

const runDialect = async (dialect: Dialect, variants: ReadonlyArray<Variant>) => {
  // Per variant and size: the median of each run.
  const medians = new Map<string, Array<number>>()
  const db: BenchDatabase = await createDatabase(dialect, "schedule")
  log(`${dialect} database ${db.name}`)
  try {
    const runtimes = variants.map((variant) =>
      ManagedRuntime.make(
        variant.library.SqlStores.layer.pipe(Layer.provideMerge(variant.library.Database.layerFromUrl(db.url)))
      )
    )
    try {
      await runtimes[0]!.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(businessTable(dialect))))
      for (let run = 0; run < flags.runs; run++) {
        for (const [index, variant] of variants.entries()) {
          const runtime = runtimes[index]!
          const samples = new Map<number, Array<number>>(sizes.map((size) => [size, []]))
          await runtime.runPromise(Effect.gen(function*() {
            for (const size of sizes) for (let i = 0; i < warmup; i++) yield* transaction(variant.library, size)
            // Interleaved: every round does each size once.
            const rounds = Math.max(...sizes.map(iterations))
            for (let round = 0; round < rounds; round++) {
              for (const size of sizes) {
                if (round < iterations(size)) samples.get(size)!.push(yield* transaction(variant.library, size))
              }
            }
          }) as Effect.Effect<void, unknown, never>)
          for (const size of sizes) {
            const m = median(samples.get(size)!)
            const key = `${variant.id}/${size}`
            medians.set(key, [...(medians.get(key) ?? []), m])
          }
          log(
            `run ${run + 1}/${flags.runs} ${dialect} ${variant.id}: ` +
              sizes.map((size) => `${size} keys ${fmt(medians.get(`${variant.id}/${size}`)!.at(-1)!, 2)} ms`).join(", ")
          )
        }
        if (dialect === "pg") {
          const samples = await floorSamples(db, Math.max(...sizes.map(iterations)))
          for (const size of sizes) {
            const key = `floor/${size}`
            medians.set(key, [...(medians.get(key) ?? []), median(samples.get(size)!)])
          }
          log(
            `run ${run + 1}/${flags.runs} pg floor: ` +
              sizes.map((size) => `${size} keys ${fmt(medians.get(`floor/${size}`)!.at(-1)!, 2)} ms`).join(", ")
          )
        }
      }
    } finally {
      for (const runtime of runtimes) await runtime.dispose()
    }
  } finally {
    await db.drop()
  }
  return medians
}

const main = async () => {
  const variants: Array<Variant> = [{ id: "current", label: "effect-storage", library: await loadLibrary() }]
  if (baselineRev !== undefined) {
    variants.push({
      id: "baseline",
      label: `effect-storage as of ${baselineRev} (before)`,
      library: await loadLibrary(exportRevision(baselineRev))
    })
  }
  const servers: Array<string> = []
  const rows: Array<Array<string>> = []
  const medians1000: Array<string> = []
  for (const dialect of dialects) {
    if (dialect === "pg") servers.push(await pgVersion())
    if (dialect === "mysql") servers.push(await mysqlVersion())
    const medians = await withRetries(
      `schedule on ${dialect}`,
      () => runDialect(dialect, variants),
      () => waitForServers()
    )
    const shown = dialect === "pg"
      ? [...variants, {
        id: "floor",
        label: "hand-written SQL with `pg` (same rows, one INSERT ... unnest; the floor)"
      }]
      : variants
    for (const variant of shown) {
      const empty = medians.get(`${variant.id}/0`)!
      for (const size of sizes) {
        const values = medians.get(`${variant.id}/${size}`)!
        if (size === 1000 && dialect === "pg" && variant.id !== "floor") {
          medians1000.push(`${variant.label}: ${fmtRatio(pairedRatio(values, medians.get("floor/1000")!))}`)
        }
        rows.push([
          dialect === "pg" ? "PostgreSQL" : dialect === "mysql" ? "MariaDB" : "SQLite",
          variant.label,
          size === 0 ? "none (baseline)" : size.toLocaleString("en-US"),
          fmtSpread(spread(values), 2),
          size === 0 ? "1.00x" : fmtRatio(pairedRatio(values, empty))
        ])
      }
    }
  }
  const body = [
    "A business transaction (BEGIN; INSERT one business row; `DeleteScheduler.schedule(keys)`; COMMIT) timed from " +
    `the client, with fresh keys every time; ${flags.runs} runs, each the median of ${
      iterations(0)
    } transactions per ` +
    `size (${iterations(1000)} for 1,000 keys) after ${warmup} warm-up ones, sizes interleaved. Commits are durable ` +
    "(the servers' default fsync settings). The ratio is over the transaction that schedules nothing, per run.",
    "",
    table(["database", "library", "keys scheduled", "transaction ms", "vs none"], rows),
    "",
    "Time of the 1,000-key transaction over the hand-written floor's, per run (1.00x = no overhead): " +
    (medians1000.length === 0 ? "n/a" : medians1000.join("; "))
  ].join("\n")
  record({
    benchmark: "bench:schedule",
    flags,
    versions: [
      "effect",
      "@effect/sql",
      "@effect/sql-pg",
      "@effect/sql-mysql2",
      "@effect/sql-sqlite-node",
      "pg",
      "mysql2"
    ],
    servers,
    body
  })
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
