/**
 * The operator CLI (`effect-storage`, built with @effect/cli): migrations,
 * queue and claim inspection, dead letters, one run of the sweeper or the
 * delete worker, and bucket reconciliation.
 *
 * It reads the same configuration as the server (`DATABASE_URL`,
 * `STORAGE_BACKEND`, `STORAGE_ROOT`, `S3_*`, `STORAGE_*`; see
 * `Storage.layerFromConfig`) but never starts the scheduled workers, and
 * each command builds only what it needs: `status` never touches the object
 * backend. Commands other than `migrate` never change the schema: on a
 * database without the tables they fail and say to run `migrate`.
 *
 * Results go to standard output: human tables, or one JSON document with
 * `--json`. Logs, errors and the progress line go to standard error.
 *
 * Exit codes: 0 success; 1 failure (backend, configuration, a database
 * failure mid-command); 2 usage error; 3 `reconcile --fail-on-findings`
 * found something; 4 cannot connect to the database; 5 the database is not
 * migrated; 130 interrupted.
 *
 * @since 0.1.0
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { isSqlError } from "../internal/transaction.js"
import { ClaimSweeper } from "../layers/ClaimSweeper.js"
import { DeleteWorker } from "../layers/DeleteWorker.js"
import { Reconciler, type ReconcileReport } from "../layers/Reconciler.js"
import * as Database from "../layers/sql/Database.js"
import * as Migrations from "../layers/sql/Migrations.js"
import * as SqlClaimStore from "../layers/sql/SqlClaimStore.js"
import * as SqlDeleteQueue from "../layers/sql/SqlDeleteQueue.js"
import * as SqlFileRegistry from "../layers/sql/SqlFileRegistry.js"
import * as SqlUploadPartStore from "../layers/sql/SqlUploadPartStore.js"
import { backendFromConfig } from "../layers/Storage.js"
import { parseDuration, StorageConfig } from "../layers/StorageConfig.js"
import * as StorageMetrics from "../layers/StorageMetrics.js"
import type { PendingDelete, UploadClaim } from "../schema/Models.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { DeleteQueue } from "../services/DeleteQueue.js"
import { FileRegistry } from "../services/FileRegistry.js"
import type { ObjectStorage } from "../services/ObjectStorage.js"
import { StorageEvents } from "../services/StorageEvents.js"
import * as Render from "./Render.js"

/**
 * The parts the commands are built from. `layersFromEnv` reads them from the
 * environment, as the server does; tests pass their own.
 *
 * @since 0.1.0
 * @category models
 */
export interface CliLayers {
  readonly database: Layer.Layer<SqlClient.SqlClient, unknown>
  readonly backend: Layer.Layer<ObjectStorage, unknown>
  readonly config: Layer.Layer<StorageConfig, unknown>
  /** Where the delete worker's events go (default: log lines, as `Storage.layerFromConfig`). */
  readonly events?: Layer.Layer<StorageEvents, unknown, SqlClient.SqlClient> | undefined
}

/**
 * The parts from the environment: `DATABASE_URL`, `STORAGE_BACKEND` (and
 * its `STORAGE_ROOT` or `S3_*`), `STORAGE_*`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layersFromEnv: CliLayers = {
  database: Database.layerFromConfig,
  backend: backendFromConfig,
  config: StorageConfig.layerFromEnv
}

/**
 * The exit codes.
 *
 * @since 0.1.0
 * @category constants
 */
export const ExitCode = {
  success: 0,
  failure: 1,
  usage: 2,
  findings: 3,
  databaseUnreachable: 4,
  notMigrated: 5,
  interrupted: 130
} as const

/**
 * The CLI's version, shown by `--version`.
 *
 * @since 0.1.0
 * @category constants
 */
export const version = "0.1.0"

/**
 * The command line was wrong in a way the parser cannot see (exit code 2).
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/**
 * The database cannot be reached: the server is down or unreachable, the
 * URL names the wrong host, port, user or database, or the SQLite file
 * cannot be opened (exit code 4). Not to be confused with `NotMigrated`: the
 * fix is the connection, not `migrate`.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnreachable extends Data.TaggedError("DatabaseUnreachable")<{ readonly detail: string }> {
  override get message() {
    return `cannot connect to the database (${this.detail}): check DATABASE_URL and that the database server is up`
  }
}

/**
 * The database lacks the tables: `migrate` has not run (exit code 5).
 *
 * @since 0.1.0
 * @category errors
 */
export class NotMigrated extends Data.TaggedError("NotMigrated")<{ readonly missing: ReadonlyArray<string> }> {
  override get message() {
    return `the database lacks ${this.missing.join(", ")}: run \`effect-storage migrate\` first`
  }
}

/**
 * `reconcile --fail-on-findings` found something (exit code 3).
 *
 * @since 0.1.0
 * @category errors
 */
export class FindingsReported extends Data.TaggedError("FindingsReported")<{ readonly count: number }> {}

/**
 * The command tree over `layers`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCommand = (layers: CliLayers) => {
  const database = reachableDatabase(layers.database)
  const stores = storesLayer(database)

  const migrate = Command.make("migrate", { json }, (options) =>
    Effect.gen(function*() {
      const before = yield* appliedMigrations
      yield* Migrations.run
      const after = yield* appliedMigrations
      const applied = after.filter((m) => !before.some((b) => b.id === m.id))
      if (options.json) return yield* Render.printJson({ applied, current: after })
      yield* Render.printLine(
        applied.length === 0
          ? `Schema up to date (${after.length} migrations).`
          : `Applied ${applied.length} migration(s): ${applied.map((m) => m.name).join(", ")} (${after.length} in all).`
      )
    }).pipe(Effect.provide(database))).pipe(
      Command.withDescription("Creates or updates the tables (idempotent; safe while servers run).")
    )

  const status = Command.make("status", { json }, (options) =>
    Effect.gen(function*() {
      const now = yield* DateTime.now
      const queue = yield* (yield* DeleteQueue).stats(now)
      const claims = yield* (yield* ClaimStore).totals
      const registry = yield* (yield* FileRegistry).totals
      const oldestDueAge = Option.map(queue.oldestDue, (at) => Math.max(0, DateTime.distance(at, now) / 1000))
      if (options.json) {
        return yield* Render.printJson({
          queue: { ...queue, oldestDueAgeSeconds: oldestDueAge },
          claims: {
            pending: { count: claims.pendingCount, bytes: claims.pendingBytes },
            unadopted: { count: claims.uploadedCount, bytes: claims.uploadedBytes }
          },
          registry
        })
      }
      const sized = (n: number, b: number) => `${Render.count(n)} (${Render.bytes(b)})`
      yield* Render.printLine(
        [
          "Delete queue",
          Render.fields([
            ["depth", Render.count(queue.depth)],
            ["due", Render.count(queue.due)],
            [
              "oldest due",
              Option.match(queue.oldestDue, { onNone: () => "-", onSome: (at) => Render.timeAgo(at, now) })
            ],
            ["dead letters", Render.count(queue.dead)]
          ]),
          "Claims",
          Render.fields([
            ["pending", sized(claims.pendingCount, claims.pendingBytes)],
            ["unadopted", sized(claims.uploadedCount, claims.uploadedBytes)]
          ]),
          "File registry",
          Render.fields([
            ["uploaded", sized(registry.uploaded.count, registry.uploaded.bytes)],
            ["adopted", sized(registry.adopted.count, registry.adopted.bytes)],
            ["deleted", sized(registry.deleted.count, registry.deleted.bytes)]
          ])
        ].join("\n")
      )
    }).pipe(Effect.provide(stores))).pipe(
      Command.withDescription("Queue depth and due rows, dead letters, pending and unadopted claims, registry totals.")
    )

  const deadLetters = Command.make(
    "dead-letters",
    {},
    () => new UsageError({ message: "dead-letters: name a subcommand: list, requeue or purge" })
  ).pipe(
    Command.withDescription("Deletions that kept failing: list, requeue or purge them."),
    Command.withSubcommands([
      Command.make("list", { json, limit: limit(50) }, (options) =>
        Effect.gen(function*() {
          const rows = yield* (yield* DeleteQueue).listDeadLetters({ limit: options.limit })
          if (options.json) return yield* Render.printJson(rows.map(deadLetterJson))
          const now = yield* DateTime.now
          yield* Render.printLine(
            rows.length === 0 ? "No dead letters." : Render.table(
              ["ID", "KEY", "REASON", "ATTEMPTS", "DEAD SINCE", "LAST ERROR"],
              rows.map((row) => [
                row.id,
                row.key,
                row.reason,
                String(row.attempts),
                row.deadAt === undefined ? "-" : Render.timeAgo(row.deadAt, now),
                row.lastError ?? ""
              ]),
              { alignRight: [3] }
            )
          )
        }).pipe(Effect.provide(stores))).pipe(Command.withDescription("Lists dead letters, oldest first.")),
      Command.make(
        "requeue",
        { json, ids, all },
        (options) =>
          Effect.flatMap(selectRows("requeue", options), (selection) =>
            Effect.gen(function*() {
              const requeued = yield* (yield* DeleteQueue).requeueDeadLetters(yield* DateTime.now, selection)
              if (options.json) return yield* Render.printJson({ requeued })
              yield* Render.printLine(
                `Requeued ${Render.count(requeued)} dead letter(s); the delete worker retries them now.`
              )
            }).pipe(Effect.provide(stores)))
      ).pipe(
        Command.withDescription("Makes dead letters due again with no attempts counted (--id ... or --all).")
      ),
      Command.make(
        "purge",
        { json, ids, all, yes },
        (options) =>
          Effect.flatMap(selectRows("purge", options), (selection) =>
            selection === undefined && !options.yes
              ? new UsageError({ message: "purge --all removes every dead letter for good: confirm with --yes" })
              : Effect.gen(function*() {
                const purged = yield* (yield* DeleteQueue).purgeDeadLetters(selection)
                if (options.json) return yield* Render.printJson({ purged })
                yield* Render.printLine(
                  `Purged ${Render.count(purged)} dead letter(s); their objects are left as they are.`
                )
              }).pipe(Effect.provide(stores)))
      ).pipe(
        Command.withDescription("Removes dead letters for good (--id ..., or --all --yes).")
      )
    ])
  )

  const claims = Command.make("claims", {}, () => new UsageError({ message: "claims: name a subcommand: list" })).pipe(
    Command.withDescription("Upload claims."),
    Command.withSubcommands([
      Command.make("list", {
        json,
        limit: limit(50),
        owner: Options.text("owner").pipe(Options.withDescription("Only this owner's claims."), Options.optional),
        status: Options.choice("status", ["pending", "uploaded"]).pipe(
          Options.withDescription("Only pending (upload in progress) or uploaded (not yet adopted) claims."),
          Options.optional
        )
      }, (options) =>
        Effect.gen(function*() {
          const rows = yield* (yield* ClaimStore).list({
            owner: Option.getOrUndefined(options.owner),
            status: Option.getOrUndefined(options.status),
            limit: options.limit
          })
          if (options.json) return yield* Render.printJson(rows.map(claimJson))
          const now = yield* DateTime.now
          yield* Render.printLine(
            rows.length === 0 ? "No claims." : Render.table(
              ["ID", "KEY", "OWNER", "STATUS", "SIZE", "CREATED", "EXPIRES"],
              rows.map((claim) => [
                claim.id,
                claim.key,
                claim.createdBy,
                claim.status === "pending" && DateTime.lessThan(claim.expiresAt, now)
                  ? "pending (expired)"
                  : claim.status,
                Render.bytes(claim.size),
                Render.time(claim.createdAt),
                Render.time(claim.expiresAt)
              ]),
              { alignRight: [4] }
            )
          )
        }).pipe(Effect.provide(stores))).pipe(Command.withDescription("Lists claims, newest first."))
    ])
  )

  const sweep = Command.make("sweep", { json }, (options) =>
    Effect.gen(function*() {
      const report = yield* (yield* ClaimSweeper).runOnce
      if (options.json) return yield* Render.printJson(report)
      yield* Render.printLine([
        "Sweep finished",
        Render.fields([
          ["expired claims scanned", Render.count(report.scanned)],
          ["recovered (assembled)", Render.count(report.recovered)],
          ["removed (deletion queued)", Render.count(report.removed)],
          ["skipped (backend failed)", Render.count(report.skipped)],
          ["orphans reclaimed", Render.count(report.orphansReclaimed)]
        ])
      ].join("\n"))
    }).pipe(
      Effect.provide(ClaimSweeper.Default.pipe(
        Layer.provide(Layer.mergeAll(stores, layers.backend, layers.config))
      ))
    )).pipe(Command.withDescription("Runs the claim sweeper once: reaps expired uploads."))

  const drain = Command.make("drain", { json, progress }, (options) =>
    Effect.gen(function*() {
      const queue = yield* DeleteQueue
      const due = (yield* queue.stats(yield* DateTime.now)).due
      const bar = yield* Render.makeProgress("drain", yield* progressEnabled(options.progress))
      const start = yield* workerCounters
      const poll = Effect.gen(function*() {
        const now = yield* workerCounters
        const done = now.deleted + now.deferred + now.deadLettered -
          (start.deleted + start.deferred + start.deadLettered)
        yield* bar.update(done, due, `deleted ${Render.count(now.deleted - start.deleted)}`)
      })
      const worker = yield* DeleteWorker
      const report = yield* Effect.scoped(Effect.gen(function*() {
        yield* poll.pipe(Effect.repeat(Schedule.spaced("200 millis")), Effect.forkScoped)
        return yield* worker.runOnce
      }))
      yield* poll
      yield* bar.finish
      if (options.json) return yield* Render.printJson(report)
      yield* Render.printLine([
        "Drain finished",
        Render.fields([
          ["batches", Render.count(report.batches)],
          ["rows leased", Render.count(report.leased)],
          ["objects deleted", Render.count(report.deleted)],
          ["deferred (will retry)", Render.count(report.deferred)],
          ["dead-lettered", Render.count(report.deadLettered)]
        ])
      ].join("\n"))
    }).pipe(
      Effect.provide(DeleteWorker.Default.pipe(
        Layer.provideMerge(Layer.mergeAll(
          stores,
          layers.backend,
          layers.config,
          (layers.events ?? StorageEvents.layerLog).pipe(Layer.provide(database))
        ))
      ))
    )).pipe(Command.withDescription("Runs the delete worker once: deletes every due object, then stops."))

  const reconcile = Command.make("reconcile", {
    json,
    progress,
    apply: Options.boolean("apply").pipe(
      Options.withDescription(
        "Queue unknown objects for deletion (reason orphaned) and abort orphan multipart uploads. Without it: a dry run."
      )
    ),
    prefix: Options.text("prefix").pipe(Options.withDescription("Only keys under this prefix."), Options.optional),
    grace: Options.text("grace").pipe(
      Options.withDescription("Leave alone anything younger than this (30s, 15m, 1h, 2d): it may be in flight."),
      Options.withDefault("1h"),
      Options.mapEffect((text) =>
        Option.match(parseDuration(text), {
          onNone: () => Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--grace: not a duration: "${text}"`))),
          onSome: (d) =>
            Duration.toMillis(d) < 0
              ? Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--grace: negative: "${text}"`)))
              : Effect.succeed(d)
        })
      )
    ),
    pageSize: Options.integer("page-size").pipe(
      Options.withDescription("Keys per database page and check."),
      Options.withDefault(1000)
    ),
    sample: Options.integer("sample").pipe(
      Options.withDescription("Findings listed per kind."),
      Options.withDefault(20)
    ),
    failOnFindings: Options.boolean("fail-on-findings").pipe(
      Options.withDescription("Exit with code 3 when anything was found (for scripts and alerts).")
    )
  }, (options) =>
    Effect.gen(function*() {
      const bar = yield* Render.makeProgress("reconcile", yield* progressEnabled(options.progress))
      const report = yield* (yield* Reconciler).run({
        apply: options.apply,
        prefix: Option.getOrUndefined(options.prefix),
        grace: options.grace,
        pageSize: options.pageSize,
        sampleSize: options.sample,
        onProgress: (p) =>
          bar.update(
            p.objectsScanned,
            undefined,
            `objects, ${Render.count(p.sessionsScanned)} sessions; unknown ${Render.count(p.unknownObjects)}, ` +
              `orphan sessions ${Render.count(p.orphanSessions)}, missing ${Render.count(p.missingObjects)}`
          )
      })
      yield* bar.finish
      if (options.json) yield* Render.printJson(report)
      else yield* Render.printLine(renderReconcile(report, options.grace))
      const found = report.unknownObjects.count + report.orphanSessions.count + report.missingObjects.count
      if (options.failOnFindings && found > 0) return yield* new FindingsReported({ count: found })
    }).pipe(
      Effect.provide(Reconciler.Default.pipe(Layer.provide(Layer.mergeAll(stores, layers.backend))))
    )).pipe(
      Command.withDescription(
        "Compares the bucket with the registry, claims and queue: unknown objects, orphan multipart uploads, " +
          "registry rows whose object is gone. A dry run unless --apply."
      )
    )

  return Command.make(
    "effect-storage",
    {},
    () => new UsageError({ message: "name a command; see effect-storage --help" })
  ).pipe(
    Command.withDescription("Operator commands of effect-storage, on the server's configuration."),
    Command.withSubcommands([migrate, status, deadLetters, claims, sweep, drain, reconcile])
  )
}

/**
 * Runs the CLI on `args` (without the `node script` prefix) and answers
 * the exit code; it never fails. Parse errors are printed by @effect/cli,
 * other errors as one `error: ...` line on standard error.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (
  args: ReadonlyArray<string>,
  layers: CliLayers = layersFromEnv
): Effect.Effect<number, never, Render.CliIO | CliApp.CliApp.Environment> =>
  Command.run(makeCommand(layers), { name: "effect-storage", version, executable: "effect-storage" })(
    ["node", "effect-storage", ...args]
  ).pipe(
    Effect.as<number>(ExitCode.success),
    Effect.catchAll((error) => exitCodeOf(error)),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.succeed(ExitCode.interrupted)
        : Effect.as(Effect.flatMap(Render.CliIO, (io) => io.err(`error: ${Cause.pretty(cause)}`)), ExitCode.failure)
    )
  )

// ---- internal ----

const json = Options.boolean("json").pipe(
  Options.withDescription("Print one JSON document on standard output instead of a table.")
)

const progress = Options.boolean("progress", { negationNames: ["no-progress"] }).pipe(
  Options.withDescription("Show the progress line on standard error (default: only when it is a terminal)."),
  Options.optional
)

const limit = (n: number) =>
  Options.integer("limit").pipe(Options.withDescription("At most this many rows."), Options.withDefault(n))

const ids = Options.text("id").pipe(Options.withDescription("A dead letter's id (repeatable)."), Options.repeated)

const all = Options.boolean("all").pipe(Options.withDescription("Every dead letter."))

const yes = Options.boolean("yes").pipe(Options.withDescription("Confirm an irreversible --all."))

const progressEnabled = (flag: Option.Option<boolean>) =>
  Effect.map(Render.CliIO, (io) => Option.getOrElse(flag, () => io.errIsTTY))

const selectRows = (verb: string, options: { readonly ids: ReadonlyArray<string>; readonly all: boolean }) =>
  options.all && options.ids.length > 0
    ? Effect.fail(new UsageError({ message: `${verb}: give --id or --all, not both` }))
    : !options.all && options.ids.length === 0
    ? Effect.fail(new UsageError({ message: `${verb}: give --id ID (repeatable) or --all` }))
    : Effect.succeed(options.all ? undefined : options.ids)

/**
 * The database layer, with a failure to build it (the drivers connect when
 * built) reported as `DatabaseUnreachable`. Configuration errors (a
 * malformed URL, a driver not installed) stay as they are.
 */
const reachableDatabase = (database: CliLayers["database"]) =>
  Layer.mapError(database, (error) => isSqlError(error) ? unreachable(error) : error)

const unreachable = (error: unknown) => {
  const cause = typeof error === "object" && error !== null ? (error as { cause?: unknown }).cause : undefined
  const detail = cause instanceof Error && cause.message !== ""
    ? cause.message
    : error instanceof Error
    ? error.message
    : String(error)
  return new DatabaseUnreachable({ detail })
}

/** The stores over the database, which must be migrated already. */
const storesLayer = (database: CliLayers["database"]) =>
  Layer.mergeAll(SqlClaimStore.layer, SqlUploadPartStore.layer, SqlDeleteQueue.layer, SqlFileRegistry.layer).pipe(
    Layer.provideMerge(requireMigrated),
    Layer.provideMerge(database)
  )

/**
 * Fails with `NotMigrated` when a table is missing. A probe that fails is
 * a missing table only if the database still answers: a connection lost
 * meanwhile is `DatabaseUnreachable`, not a reason to run `migrate`.
 */
const requireMigrated = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const missing: Array<string> = []
  for (const table of Migrations.tables) {
    const ok = yield* sql`SELECT 1 FROM ${sql(table)} WHERE 1 = 0`.pipe(
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
    if (!ok) missing.push(table)
  }
  if (missing.length > 0) {
    yield* sql`SELECT 1`.unprepared.pipe(Effect.mapError(unreachable))
    return yield* new NotMigrated({ missing })
  }
}))

const appliedMigrations = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ migration_id: unknown; name: string }>`SELECT migration_id, name FROM ${
    sql(Migrations.migrationsTable)
  } ORDER BY migration_id`.unprepared.pipe(
    // No table yet: nothing ran. (Unprepared: SQLite's statement cache would
    // keep the failed preparation, and the read after migrating would fail too.)
    Effect.catchAllCause(() => Effect.succeed([]))
  )
  return rows.map((row) => ({ id: Number(row.migration_id), name: row.name }))
})

const workerCounters = Effect.all({
  deleted: Effect.map(Metric.value(StorageMetrics.objectsDeleted), (s) => Number(s.count)),
  deferred: Effect.map(Metric.value(StorageMetrics.deletesDeferred), (s) => Number(s.count)),
  deadLettered: Effect.map(Metric.value(StorageMetrics.deletesDeadLettered), (s) => Number(s.count))
})

const deadLetterJson = (row: PendingDelete) => ({
  id: row.id,
  key: row.key,
  uploadId: row.uploadId,
  reason: row.reason,
  attempts: row.attempts,
  lastError: row.lastError ?? null,
  createdAt: row.createdAt,
  deadAt: row.deadAt ?? null
})

const claimJson = (claim: UploadClaim) => ({
  id: claim.id,
  key: claim.key,
  owner: claim.createdBy,
  status: claim.status,
  size: claim.size,
  contentType: claim.contentType,
  originalFilename: claim.originalFilename,
  public: claim.public,
  uploadId: claim.uploadId,
  createdAt: claim.createdAt,
  expiresAt: claim.expiresAt
})

const renderReconcile = (report: ReconcileReport, grace: Duration.Duration): string => {
  const mode = report.applied ? "applied" : "dry run"
  const lines = [
    `Reconciliation (${mode}) of ${report.prefix === "" ? "the whole bucket" : `prefix "${report.prefix}"`}; ` +
    `grace ${Render.age(grace)}: nothing newer than ${Render.time(report.cutoff)} is reported`,
    Render.fields([
      ["objects scanned", Render.count(report.objectsScanned)],
      ["multipart uploads scanned", Render.count(report.sessionsScanned)],
      [
        "within grace (skipped)",
        `${Render.count(report.withinGrace.objects)} objects, ${Render.count(report.withinGrace.sessions)} uploads, ` +
        `${Render.count(report.withinGrace.records)} registry rows`
      ],
      [
        "unknown objects",
        `${Render.count(report.unknownObjects.count)} (${Render.bytes(report.unknownObjects.bytes)})` +
        (report.applied
          ? `: ${Render.count(report.queued)} queued for deletion (reason orphaned)`
          : report.unknownObjects.count > 0
          ? ": --apply queues them for deletion (reason orphaned)"
          : "")
      ],
      [
        "orphan multipart uploads",
        Render.count(report.orphanSessions.count) +
        (report.applied
          ? `: ${Render.count(report.aborted)} aborted` +
            (report.abortFailures > 0 ? `, ${Render.count(report.abortFailures)} failed` : "")
          : report.orphanSessions.count > 0
          ? ": --apply aborts them"
          : "")
      ],
      [
        "missing objects",
        Render.count(report.missingObjects.count) +
        (report.missingObjects.count > 0 ? ": registry rows whose object is gone (reported only, never changed)" : "")
      ]
    ])
  ]
  if (report.unknownObjects.sample.length > 0) {
    lines.push(
      "",
      `Unknown objects (first ${report.unknownObjects.sample.length}):`,
      Render.table(
        ["KEY", "SIZE", "LAST MODIFIED"],
        report.unknownObjects.sample.map((o) => [o.key, Render.bytes(o.size), Render.time(o.lastModified)]),
        { alignRight: [1] }
      )
    )
  }
  if (report.orphanSessions.sample.length > 0) {
    lines.push(
      "",
      `Orphan multipart uploads (first ${report.orphanSessions.sample.length}):`,
      Render.table(
        ["KEY", "UPLOAD ID", "INITIATED"],
        report.orphanSessions.sample.map((s) => [s.key, s.uploadId, Render.time(s.initiated)])
      )
    )
  }
  if (report.missingObjects.sample.length > 0) {
    lines.push(
      "",
      `Missing objects (first ${report.missingObjects.sample.length}):`,
      Render.table(
        ["KEY", "STATUS", "OWNER", "SIZE", "UPLOADED"],
        report.missingObjects.sample.map((
          r
        ) => [r.key, r.status, r.createdBy, Render.bytes(r.size), Render.time(r.uploadedAt)]),
        { alignRight: [3] }
      )
    )
  }
  return lines.join("\n")
}

const exitCodeOf = (error: unknown): Effect.Effect<number, never, Render.CliIO> =>
  Effect.flatMap(Render.CliIO, (io) => {
    // @effect/cli has printed its own message already.
    if (ValidationError.isValidationError(error)) return Effect.succeed(ExitCode.usage)
    if (error instanceof UsageError) return Effect.as(io.err(`usage: ${error.message}`), ExitCode.usage)
    if (error instanceof FindingsReported) return Effect.succeed(ExitCode.findings)
    if (error instanceof DatabaseUnreachable) {
      return Effect.as(io.err(`error: ${describe(error)}`), ExitCode.databaseUnreachable)
    }
    if (error instanceof NotMigrated) return Effect.as(io.err(`error: ${describe(error)}`), ExitCode.notMigrated)
    return Effect.as(io.err(`error: ${describe(error)}`), ExitCode.failure)
  })

/** One line for a failure: its tag and message, and its cause's message when it has one. */
const describe = (error: unknown): string => {
  // Its own rendering names the variable: (Invalid data at STORAGE_BACKEND: "...").
  if (ConfigError.isConfigError(error)) return `configuration: ${String(error)}`
  if (typeof error !== "object" || error === null) return String(error)
  const { _tag, cause, message } = error as { _tag?: unknown; message?: unknown; cause?: unknown }
  const head = [
    typeof _tag === "string" ? _tag : undefined,
    typeof message === "string" && message !== "" ? message : undefined
  ]
    .filter((s) => s !== undefined).join(": ")
  const inner =
    typeof cause === "object" && cause !== null && typeof (cause as { message?: unknown }).message === "string"
      ? (cause as { message: string }).message
      : undefined
  const text = head === "" ? String(error) : head
  return inner !== undefined && !text.includes(inner) ? `${text} (${inner})` : text
}
