/**
 * A `SqlClient` from a URL: `sqlite:PATH`, `postgres://...`, `mysql://...`.
 *
 * The three clients (`@effect/sql-sqlite-node`, `@effect/sql-pg`,
 * `@effect/sql-mysql2`) are optional peer dependencies, loaded only for a
 * URL that needs one: an app on PostgreSQL installs neither SQLite nor
 * MySQL. A missing one fails with `DriverNotInstalled`, naming the package.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { existsSync, mkdirSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { importOptional } from "../../internal/optionalPeer.js"
import { type DriverNotInstalled, InvalidDatabaseUrl } from "../../schema/Errors.js"

/**
 * The database a URL points at.
 *
 * @since 0.1.0
 * @category models
 */
export type DatabaseTarget =
  | { readonly _tag: "sqlite"; readonly filename: string }
  | { readonly _tag: "pg"; readonly url: string }
  | {
    readonly _tag: "mysql"
    readonly host: string
    readonly port: number
    readonly database: string | undefined
    readonly username: string | undefined
    readonly password: string | undefined
  }

/**
 * Reads a database URL. `sqlite:PATH` (also `sqlite://PATH` and
 * `sqlite::memory:`), `postgres://` or `postgresql://`, `mysql://` or
 * `mariadb://`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseUrl = (url: string): Effect.Effect<DatabaseTarget, InvalidDatabaseUrl> =>
  Effect.suspend((): Effect.Effect<DatabaseTarget, InvalidDatabaseUrl> => {
    const trimmed = url.trim()
    if (trimmed.startsWith("sqlite:")) {
      const filename = trimmed.slice("sqlite:".length).replace(/^\/\//, "")
      return filename === ""
        ? Effect.fail(
          new InvalidDatabaseUrl({ message: "sqlite: URL needs a file path, e.g. sqlite:./data/storage.db" })
        )
        : Effect.succeed({ _tag: "sqlite", filename } as const)
    }
    if (/^postgres(ql)?:\/\//.test(trimmed)) {
      return Effect.succeed({ _tag: "pg", url: trimmed } as const)
    }
    if (/^(mysql|mariadb):\/\//.test(trimmed)) {
      return Effect.try({
        try: () => {
          const parsed = new URL(trimmed)
          const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""))
          return {
            _tag: "mysql",
            host: parsed.hostname || "127.0.0.1",
            port: parsed.port === "" ? 3306 : Number(parsed.port),
            database: database === "" ? undefined : database,
            username: parsed.username === "" ? undefined : decodeURIComponent(parsed.username),
            password: parsed.password === "" ? undefined : decodeURIComponent(parsed.password)
          } as const
        },
        catch: () => new InvalidDatabaseUrl({ message: "malformed mysql:// URL" })
      })
    }
    return Effect.fail(new InvalidDatabaseUrl())
  })

/**
 * A `SqlClient` for the target.
 *
 * - SQLite: the file's folder is created; WAL, `foreign_keys` (the part rows
 *   cascade with their claim) and a busy timeout are set.
 * - MySQL/MariaDB: the session time zone is UTC, so `DATETIME` columns hold
 *   UTC.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromTarget = (
  target: DatabaseTarget
): Layer.Layer<SqlClient.SqlClient, SqlError | DriverNotInstalled> => {
  switch (target._tag) {
    case "sqlite":
      return sqliteLayer(target.filename)
    case "pg":
      return Layer.unwrapEffect(Effect.map(
        importOptional("@effect/sql-pg", "0.53.0", "A postgres:// DATABASE_URL", () => import("@effect/sql-pg")),
        ({ PgClient }) => PgClient.layer({ url: Redacted.make(target.url) })
      ))
    case "mysql":
      return Layer.scopedContext(Effect.gen(function*() {
        const { MysqlClient } = yield* importOptional(
          "@effect/sql-mysql2",
          "0.53.0",
          "A mysql:// DATABASE_URL",
          () => import("@effect/sql-mysql2")
        )
        const client = yield* MysqlClient.make({
          host: target.host,
          port: target.port,
          database: target.database,
          username: target.username,
          password: target.password === undefined ? undefined : Redacted.make(target.password),
          poolConfig: { timezone: "Z" }
        })
        return Context.make(MysqlClient.MysqlClient, client).pipe(Context.add(SqlClient.SqlClient, client))
      })).pipe(Layer.provide(Reactivity.layer))
  }
}

/**
 * A `SqlClient` for a URL (see `parseUrl`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromUrl = (
  url: string
): Layer.Layer<SqlClient.SqlClient, SqlError | InvalidDatabaseUrl | DriverNotInstalled> =>
  Layer.unwrapEffect(Effect.map(parseUrl(url), layerFromTarget))

/**
 * The URL `DATABASE_URL` (default `sqlite:./data/storage.db`).
 *
 * @since 0.1.0
 * @category config
 */
export const urlConfig: Config.Config<string> = Config.string("DATABASE_URL").pipe(
  Config.withDefault("sqlite:./data/storage.db")
)

/**
 * A `SqlClient` for `DATABASE_URL`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig: Layer.Layer<
  SqlClient.SqlClient,
  SqlError | InvalidDatabaseUrl | DriverNotInstalled | ConfigError.ConfigError
> = Layer.unwrapEffect(Effect.map(urlConfig, layerFromUrl))

// ---- internal ----

const sqliteLayer = (filename: string): Layer.Layer<SqlClient.SqlClient, DriverNotInstalled | SqlError> =>
  Layer.scopedContext(Effect.gen(function*() {
    const { SqliteClient } = yield* importOptional(
      "@effect/sql-sqlite-node",
      "0.53.0",
      "A sqlite: DATABASE_URL",
      () => import("@effect/sql-sqlite-node")
    )
    // A file that cannot be opened (its folder cannot be made, a path through
    // a file, no permission) is a failure to connect, as for the servers,
    // not a defect: better-sqlite3 throws from its constructor.
    const cannotOpen = (cause: unknown) => new SqlError({ cause, message: `SqliteClient: Failed to open ${filename}` })
    if (filename !== ":memory:") {
      yield* Effect.try({ try: () => makeDirectories(dirname(filename)), catch: cannotOpen })
    }
    const client = yield* SqliteClient.make({ filename }).pipe(
      Effect.catchAllDefect((defect) => Effect.fail(cannotOpen(defect)))
    )
    // A second process on the same file waits for the lock instead of failing at once.
    yield* client`PRAGMA busy_timeout = 5000`.pipe(Effect.orDie)
    yield* client`PRAGMA foreign_keys = ON`.pipe(Effect.orDie)
    return Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))
  })).pipe(Layer.provide(Reactivity.layer))

/**
 * `mkdirSync(dir, { recursive: true })` one level at a time: Node's recursive
 * form never returns for a folder under some pseudo filesystems (`/proc`),
 * where a plain `mkdir` fails at once.
 */
const makeDirectories = (dir: string): void => {
  const missing: Array<string> = []
  for (let at = resolve(dir); !existsSync(at); at = dirname(at)) {
    missing.unshift(at)
    if (dirname(at) === at) break
  }
  for (const folder of missing) mkdirSync(folder)
}
