/**
 * Helpers of the CLI suites: fresh databases by URL, the CLI run in-process
 * (output captured) or as a child process, and fast seeding of registry
 * rows.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { spawn } from "node:child_process"
import { describe } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { CliIO } from "../../src/cli/Render.js"
import * as Database from "../../src/layers/sql/Database.js"
import * as Dialect from "../../src/layers/sql/Dialect.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig, type StorageOverrides } from "../../src/layers/StorageConfig.js"
import type { FileStatus } from "../../src/schema/Models.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { acquireFreshDatabase, type Dialect as TestDialect, missingServer, serverUrl } from "../support/databases.js"
import { tsxArgs } from "../support/processes.js"

/** The dialects the CLI suites run on. */
export const cliDialects: ReadonlyArray<TestDialect> = ["sqlite", "pg"]

/** One describe block per dialect whose server is reachable. */
export const describeEachCliDialect = (
  name: string,
  body: (dialect: TestDialect) => void,
  dialects: ReadonlyArray<TestDialect> = cliDialects
) => {
  for (const dialect of dialects) {
    const title = `${name} [${dialect}]`
    if (serverUrl(dialect) === undefined) {
      missingServer(title, dialect)
      continue
    }
    describe(title, () => body(dialect))
  }
}

/** The URL of a fresh, empty database, dropped with the scope. */
export const freshUrl = (dialect: TestDialect) => Effect.map(acquireFreshDatabase(dialect), ({ url }) => url)

/** The stores (migrated) over the database at `url`. */
export const storesAt = (url: string) =>
  SqlStores.layer.pipe(Layer.provideMerge(Database.layerFromUrl(url)), Layer.orDie)

/** The CLI's parts over `url` and one backend instance shared by every run. */
export const cliLayers = (
  url: string,
  backend: ObjectStorage["Type"],
  overrides: StorageOverrides = {}
): Cli.CliLayers => ({
  database: Database.layerFromUrl(url),
  backend: Layer.succeed(ObjectStorage, backend),
  config: StorageConfig.layer(overrides)
})

/** What one CLI run printed, and its exit code. */
export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI in this process. */
export const runCli = (args: ReadonlyArray<string>, layers: Cli.CliLayers): Effect.Effect<CliResult> =>
  Effect.gen(function*() {
    const io = CliIO.capture()
    const code = yield* Cli.run(args, layers).pipe(
      Effect.provide(Layer.mergeAll(NodeContext.layer, io.layer, Logger.minimumLogLevel(LogLevel.Warning)))
    )
    return { code, stdout: io.stdout(), stderr: io.stderr() }
  })

/** Runs the CLI and parses its standard output as JSON; fails the test on a non-zero exit. */
export const runJson = <A = any>(args: ReadonlyArray<string>, layers: Cli.CliLayers): Effect.Effect<A> =>
  Effect.flatMap(runCli([...args, "--json"], layers), (result) =>
    result.code === 0
      ? Effect.sync(() => JSON.parse(result.stdout) as A)
      : Effect.dieMessage(`exit ${result.code}: ${result.stderr}${result.stdout}`))

/** Runs `src/cli/main.ts` in a child process (through tsx) with `env` added. */
export const spawnCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  entry: ReadonlyArray<string> = tsxArgs("src/cli/main.ts"),
  command: string = process.execPath
): Promise<CliResult> =>
  new Promise((done, fail) => {
    const child = spawn(command, [...entry, ...args], {
      env: { ...process.env, NODE_NO_WARNINGS: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", fail)
    child.on("exit", (code) => done({ code: code ?? -1, stdout, stderr }))
  })

/** A registry row to insert as it is. */
export interface RecordRow {
  readonly key: string
  readonly status: FileStatus
  readonly size: number
  readonly uploadedAt: DateTime.Utc
  readonly deletedAt?: DateTime.Utc | undefined
  readonly createdBy?: string | undefined
}

/** Inserts registry rows straight into `sys_storage_file`, 500 per statement. */
export const insertRecords = (rows: ReadonlyArray<RecordRow>) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const dialect = Dialect.make(sql)
    let n = 0
    for (const chunk of Dialect.chunks(rows, 500)) {
      yield* sql`INSERT INTO sys_storage_file ${
        sql.insert(chunk.map((row) => ({
          id: `rec-${n++}-${row.key.length}-${Math.random().toString(36).slice(2)}`,
          object_key: row.key,
          created_by: row.createdBy ?? "alice",
          original_filename: "file.bin",
          content_type: "application/octet-stream",
          size: row.size,
          public: dialect.bool(false),
          status: row.status,
          started_at: dialect.time(row.uploadedAt),
          uploaded_at: dialect.time(row.uploadedAt),
          adopted_at: row.status === "adopted" ? dialect.time(row.uploadedAt) : null,
          deleted_at: row.deletedAt === undefined ? null : dialect.time(row.deletedAt),
          delete_reason: row.deletedAt === undefined ? null : "deleted"
        })))
      }`
    }
  }).pipe(Effect.orDie)

/** The keys queued for deletion with `reason`. */
export const queuedKeys = (reason: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<
      { object_key: string }
    >`SELECT object_key FROM sys_storage_pending_delete WHERE reason = ${reason}`
    return new Set(rows.map((row) => row.object_key))
  }).pipe(Effect.orDie)
