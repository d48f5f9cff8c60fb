/**
 * Four worker processes drain 20,000 queued deletions whose objects exist,
 * on PostgreSQL and on MariaDB: every object is deleted, exactly once, and
 * no row is left or lost.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import * as Database from "../../src/layers/sql/Database.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { PendingDelete } from "../../src/schema/Models.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { acquireFreshDatabase, type Dialect, missingServer, serverUrl } from "../support/databases.js"
import { tsxArgs } from "../support/processes.js"

const rows = 20_000
const processes = 4

const runProcess = (env: Record<string, string>) =>
  new Promise<{ code: number | null; output: string }>((done) => {
    const child = spawn(
      process.execPath,
      tsxArgs("test/workers/processes/drainWorker.ts"),
      { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }
    )
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    child.on("exit", (code) => done({ code, output }))
  })

const drainTest = (dialect: Dialect) =>
  Effect.gen(function*() {
    const { url } = yield* acquireFreshDatabase(dialect)
    const dir = mkdtempSync(join(tmpdir(), "effect-storage-drain-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const root = join(dir, "objects")

    // The objects exist (written straight to the backend's layout), and their deletion is queued.
    const now = yield* DateTime.now
    const jobs: Array<PendingDelete> = []
    for (let i = 0; i < rows; i++) {
      const key = `priv/${String(i % 100).padStart(2, "0")}/${i}.bin`
      mkdirSync(join(root, "priv", String(i % 100).padStart(2, "0")), { recursive: true })
      writeFileSync(join(root, key), "x")
      jobs.push(
        new PendingDelete({
          id: `job-${i}`,
          key,
          uploadId: "",
          reason: "deleted",
          attempts: 0,
          nextAttemptAt: now,
          createdAt: now
        })
      )
    }
    yield* Effect.gen(function*() {
      const queue = yield* DeleteQueue
      yield* queue.enqueue(jobs)
    }).pipe(Effect.provide(SqlStores.layer.pipe(Layer.provideMerge(Database.layerFromUrl(url)))))

    const logs = Array.from({ length: processes }, (_, i) => join(dir, `deletes-${i}.log`))
    const results = yield* Effect.promise(() =>
      Promise.all(logs.map((log) => runProcess({ DATABASE_URL: url, STORAGE_ROOT: root, DELETE_LOG: log })))
    )
    for (const result of results) expect(result.code, result.output).toBe(0)

    const deletes = logs.flatMap((log) =>
      existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter((l) => l !== "") : []
    ).map((line) => line.split(" ")[0]!)
    const perKey = new Map<string, number>()
    for (const key of deletes) perKey.set(key, (perKey.get(key) ?? 0) + 1)
    // every object deleted, and none a second time
    expect(perKey.size).toBe(rows)
    expect([...perKey.values()].every((n) => n === 1)).toBe(true)
    expect(jobs.every((job) => !existsSync(join(root, job.key)))).toBe(true)
    // the work was shared
    const perProcess = results.map((r) => JSON.parse(r.output.trim().split("\n").pop()!).deleted as number)
    expect(perProcess.reduce((a, b) => a + b, 0)).toBe(rows)
    expect(perProcess.filter((n) => n > 0).length).toBeGreaterThan(1)
    // no row left behind
    const left = yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql`SELECT COUNT(*) AS n FROM sys_storage_pending_delete`
    }).pipe(Effect.provide(Database.layerFromUrl(url)))
    expect(Number((left[0] as { n: unknown }).n)).toBe(0)
  }).pipe(Effect.scoped, Effect.orDie)

for (const dialect of ["pg", "mysql"] as const) {
  const title = `${processes} worker processes drain ${rows} deletions [${dialect}]`
  if (serverUrl(dialect) === undefined) {
    missingServer(title, dialect)
    continue
  }
  describe(title, () => {
    it("every object is deleted exactly once and no row is lost", () => Effect.runPromise(drainTest(dialect)), 180_000)
  })
}
