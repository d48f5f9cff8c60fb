/**
 * The CLI as operators run it: child processes configured by environment
 * variables, checked for their standard output, standard error and exit
 * codes. Against SQLite and PostgreSQL, on the filesystem backend.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { serverUrl } from "../support/databases.js"
import { startOtlpReceiver } from "../support/otlpReceiver.js"
import { describeEachCliDialect, freshUrl, spawnCli } from "./support.js"

const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-storage-cli-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const spawn = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise(() => spawnCli(args, env))

describe("CLI process: usage", () => {
  it.scopedLive(
    "--help and --version exit 0; usage errors exit 2 and print to stderr only",
    () =>
      Effect.gen(function*() {
        const dir = yield* scratch
        const env = { DATABASE_URL: `sqlite:${join(dir, "db.sqlite")}` }
        const help = yield* spawn(["--help"], env)
        assert.strictEqual(help.code, 0)
        for (
          const command of ["migrate", "status", "dead-letters list", "claims list", "sweep", "drain", "reconcile"]
        ) {
          assert.include(help.stdout, `- ${command}`)
        }
        const version = yield* spawn(["--version"], env)
        assert.deepInclude(version, { code: 0 })
        assert.include(version.stdout, "0.1.0")

        const usage: Array<ReadonlyArray<string>> = []
        for (
          const args of [
            [],
            ["bogus"],
            ["dead-letters"],
            ["dead-letters", "purge"],
            ["dead-letters", "purge", "--all"],
            ["claims", "list", "--status", "done"],
            ["reconcile", "--grace", "soon"],
            ["status", "--bogus"]
          ]
        ) {
          usage.push(args)
        }
        const results = yield* Effect.forEach(usage, (args) => spawn(args, env), { concurrency: 4 })
        for (const [i, result] of results.entries()) {
          const args = usage[i]!.join(" ")
          assert.strictEqual(result.code, 2, `${args}: ${result.stderr}`)
          assert.strictEqual(result.stdout, "", args)
          assert.notStrictEqual(result.stderr, "", args)
        }
      }),
    120_000
  )

  it.scopedLive(
    "configuration failures exit 1, a database without tables 5, an unopenable SQLite file 4; one error line",
    () =>
      Effect.gen(function*() {
        const dir = yield* scratch
        const badUrl = yield* spawn(["status"], { DATABASE_URL: "oracle://nowhere" })
        assert.strictEqual(badUrl.code, 1)
        assert.match(badUrl.stderr, /^error: InvalidDatabaseUrl/)
        assert.strictEqual(badUrl.stdout, "")
        const notMigrated = yield* spawn(["status", "--json"], { DATABASE_URL: `sqlite:${join(dir, "db.sqlite")}` })
        assert.strictEqual(notMigrated.code, 5)
        assert.include(notMigrated.stderr, "run `effect-storage migrate` first")
        assert.strictEqual(notMigrated.stdout, "")
        assert.strictEqual((yield* spawn(["migrate"], { DATABASE_URL: `sqlite:${join(dir, "db.sqlite")}` })).code, 0)
        // A SQLite file that cannot be opened (here: its path runs through a file) cannot be connected to.
        writeFileSync(join(dir, "plain-file"), "")
        const unopenable = yield* spawn(["status"], { DATABASE_URL: `sqlite:${join(dir, "plain-file", "db.sqlite")}` })
        assert.strictEqual(unopenable.code, 4, unopenable.stderr)
        assert.match(unopenable.stderr, /^error: DatabaseUnreachable: cannot connect to the database/)
        // A folder that can never be made (under /proc) fails at once, never spins.
        const unmakeable = yield* spawn(["status"], { DATABASE_URL: "sqlite:/proc/effect-storage-none/db.sqlite" })
        assert.strictEqual(unmakeable.code, 4, unmakeable.stderr)
        const badBackend = yield* spawn(["reconcile"], {
          DATABASE_URL: `sqlite:${join(dir, "db.sqlite")}`,
          STORAGE_BACKEND: "tape"
        })
        assert.strictEqual(badBackend.code, 1)
        assert.include(badBackend.stderr, "STORAGE_BACKEND")
      }),
    120_000
  )

  it.scopedLive("npm run cli and the bin script run the same program", () =>
    Effect.gen(function*() {
      const viaNpm = yield* Effect.promise(() => spawnCli(["run", "-s", "cli", "--", "--version"], {}, [], "npm"))
      assert.deepInclude(viaNpm, { code: 0 })
      assert.include(viaNpm.stdout, "0.1.0")
      const viaBin = yield* Effect.promise(() => spawnCli(["--version"], {}, [resolve("bin/effect-storage.mjs")]))
      assert.deepInclude(viaBin, { code: 0 })
      assert.include(viaBin.stdout, "0.1.0")
    }), 120_000)
})

/** A local port nothing listens on (bound, then released). */
const closedPort = () =>
  Effect.promise(() =>
    new Promise<number>((done) => {
      const server = createServer()
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        server.close(() => done(port))
      })
    })
  )

const withPort = (url: string, port: number) => {
  const parsed = new URL(url)
  parsed.port = String(port)
  return parsed.toString()
}

const withDatabase = (url: string, name: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
}

describeEachCliDialect("CLI process: database unreachable or not migrated", (dialect) => {
  it.scopedLive(
    "no server, or no such database: exit 4 'cannot connect'; reachable but empty: exit 5 'run migrate'",
    () =>
      Effect.gen(function*() {
        const admin = serverUrl(dialect)!
        const port = yield* closedPort()
        // (Each run starts a process through tsx: a few kept, run two at a time.)
        const cases = [
          ["nothing listening", withPort(admin, port), ["status"]],
          ["nothing listening", withPort(admin, port), ["migrate"]],
          ["no such database", withDatabase(admin, "es_no_such_database"), ["sweep"]]
        ] as const
        const runs = yield* Effect.forEach(cases, ([, url, command]) => spawn(command, { DATABASE_URL: url }), {
          concurrency: 2
        })
        for (const [i, run] of runs.entries()) {
          const label = `${cases[i]![0]}, ${cases[i]![2].join(" ")}: ${run.stderr}`
          assert.strictEqual(run.code, 4, label)
          assert.match(run.stderr, /^error: DatabaseUnreachable: cannot connect to the database \(/, label)
          assert.include(run.stderr, "check DATABASE_URL", label)
          assert.notInclude(run.stderr, "migrate` first", label)
          assert.strictEqual(run.stdout, "", label)
        }
        const empty = yield* freshUrl(dialect)
        const notMigrated = yield* spawn(["status"], { DATABASE_URL: empty })
        assert.strictEqual(notMigrated.code, 5, notMigrated.stderr)
        assert.match(notMigrated.stderr, /^error: NotMigrated: the database lacks .*run `effect-storage migrate` first/)
        assert.notInclude(notMigrated.stderr, "cannot connect")
        assert.strictEqual((yield* spawn(["migrate"], { DATABASE_URL: empty })).code, 0)
        assert.strictEqual((yield* spawn(["status"], { DATABASE_URL: empty })).code, 0)
      }),
    300_000
  )
}, ["pg", "mysql"])

describeEachCliDialect("CLI process", (dialect) => {
  it.scopedLive(
    "migrate, status, reconcile (exit 0 with findings, 3 with --fail-on-findings), --apply, drain",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const dir = yield* scratch
        const root = join(dir, "objects")
        const env = { DATABASE_URL: url, STORAGE_BACKEND: "filesystem", STORAGE_ROOT: root }

        const migrate = yield* spawn(["migrate", "--json"], env)
        assert.strictEqual(migrate.code, 0, migrate.stderr)
        assert.lengthOf(JSON.parse(migrate.stdout).applied, 5)

        const status = yield* spawn(["status", "--json"], env)
        assert.strictEqual(status.code, 0, status.stderr)
        assert.deepStrictEqual(JSON.parse(status.stdout).queue, {
          depth: 0,
          due: 0,
          dead: 0,
          oldestDue: null,
          oldestDueAgeSeconds: null
        })

        // A file nobody knows, two hours old, and a young one.
        mkdirSync(join(root, "priv"), { recursive: true })
        writeFileSync(join(root, "priv", "stray.bin"), "stray")
        const twoHoursAgo = (Date.now() - 2 * 3600_000) / 1000
        utimesSync(join(root, "priv", "stray.bin"), twoHoursAgo, twoHoursAgo)
        writeFileSync(join(root, "priv", "new.bin"), "new")

        const dry = yield* spawn(["reconcile", "--json"], env)
        assert.strictEqual(dry.code, 0, dry.stderr)
        const report = JSON.parse(dry.stdout)
        assert.deepInclude(report, { applied: false, objectsScanned: 2, queued: 0 })
        assert.deepInclude(report.unknownObjects, { count: 1, bytes: 5 })
        assert.strictEqual(report.unknownObjects.sample[0].key, "priv/stray.bin")
        assert.strictEqual(report.withinGrace.objects, 1)
        assert.strictEqual(dry.stderr, "")

        const human = yield* spawn(["reconcile"], env)
        assert.strictEqual(human.code, 0)
        assert.match(human.stdout, /unknown objects +1 \(5 B\): --apply queues them/)
        assert.include(human.stdout, "priv/stray.bin")

        const failing = yield* spawn(["reconcile", "--fail-on-findings", "--json"], env)
        assert.strictEqual(failing.code, 3)
        assert.strictEqual(JSON.parse(failing.stdout).unknownObjects.count, 1)

        const applied = yield* spawn(["reconcile", "--apply", "--json", "--progress"], env)
        assert.strictEqual(applied.code, 0, applied.stderr)
        assert.strictEqual(JSON.parse(applied.stdout).queued, 1)
        assert.match(applied.stderr, /^reconcile 2 objects/m)

        // Exported over OTLP (flushed as the process leaves), standard output unchanged.
        const receiver = yield* Effect.acquireRelease(
          Effect.promise(startOtlpReceiver),
          (r) => Effect.promise(r.close)
        )
        const drain = yield* spawn(["drain", "--json", "--progress"], {
          ...env,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json"
        })
        assert.strictEqual(drain.code, 0, drain.stderr)
        assert.deepInclude(JSON.parse(drain.stdout), { leased: 1, deleted: 1 })
        assert.match(drain.stderr, /^drain \[#{24}\] 100% 1\/1 deleted 1/m)
        const spans = receiver.spans()
        const run = spans.find((span) => span.name === "DeleteWorker.runOnce")
        assert.isDefined(run, spans.map((span) => span.name).join(", "))
        assert.strictEqual(run!.serviceName, "effect-storage-cli")
        // The worker traces one span per batch (not per row), under the run.
        const batches = spans.filter((span) => span.name === "DeleteWorker.batch")
        assert.isAbove(batches.length, 0)
        for (const batch of batches) assert.strictEqual(batch.parentSpanId, run!.spanId)

        const after = yield* spawn(["reconcile", "--json", "--grace", "0s"], env)
        assert.strictEqual(after.code, 0)
        assert.deepInclude(JSON.parse(after.stdout), { objectsScanned: 1 })
        assert.strictEqual(JSON.parse(after.stdout).unknownObjects.sample[0].key, "priv/new.bin")

        const table = yield* spawn(["status"], env)
        assert.strictEqual(table.code, 0)
        assert.match(table.stdout, /^Delete queue\n {2}depth +0\n/)
      }),
    120_000
  )
})
