/**
 * A fresh, empty database per suite on each dialect, dropped afterwards, so
 * suites running in parallel never see each other's rows.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { layer } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import mysql from "mysql2/promise"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { describe, inject, it as vitestIt } from "vitest"
import * as Database from "../../src/layers/sql/Database.js"

export type Dialect = "sqlite" | "pg" | "mysql"

export const allDialects: ReadonlyArray<Dialect> = ["sqlite", "pg", "mysql"]

/** The admin URL of a dialect's server, or undefined when it is missing. */
export const serverUrl = (dialect: Dialect): string | undefined => {
  const servers = inject("servers")
  switch (dialect) {
    case "sqlite":
      return "sqlite:"
    case "pg":
      return servers.pg
    case "mysql":
      return servers.mysql
  }
}

const withDatabaseName = (url: string, name: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
}

/**
 * Creates an empty database on a server (`admin` is a URL of the server) and
 * answers its URL, with `drop` to remove it. SQLite: a file in a temp folder.
 */
export const createDatabase = async (
  dialect: Dialect,
  admin: string,
  prefix = "es_test"
): Promise<{ readonly url: string; readonly drop: () => Promise<void> }> => {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`
  switch (dialect) {
    case "sqlite": {
      const dir = mkdtempSync(join(tmpdir(), "effect-storage-"))
      return { url: `sqlite:${join(dir, "test.db")}`, drop: async () => rmSync(dir, { recursive: true, force: true }) }
    }
    case "pg": {
      const client = new pg.Client({ connectionString: admin })
      await client.connect()
      await client.query(`CREATE DATABASE ${name}`)
      await client.end()
      return {
        url: withDatabaseName(admin, name),
        drop: async () => {
          // The server may be restarting (the soak restarts it): do not wait forever.
          const c = new pg.Client({ connectionString: admin, connectionTimeoutMillis: 5000 })
          await c.connect()
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
          await c.end()
        }
      }
    }
    case "mysql": {
      const conn = await mysql.createConnection({ uri: admin })
      await conn.query(`CREATE DATABASE ${name}`)
      await conn.end()
      return {
        url: withDatabaseName(admin, name),
        drop: async () => {
          const c = await mysql.createConnection({ uri: admin, connectTimeout: 5000 })
          await c.query(`DROP DATABASE IF EXISTS ${name}`)
          await c.end()
        }
      }
    }
  }
}

/**
 * Creates an empty database on this run's server and answers its URL; the
 * release drops it.
 */
export const acquireFreshDatabase = (dialect: Dialect) =>
  Effect.acquireRelease(
    Effect.promise(() => {
      const admin = serverUrl(dialect)
      if (admin === undefined) throw new Error(`no ${dialect} server`)
      return createDatabase(dialect, admin)
    }),
    ({ drop }) => Effect.promise(drop)
  )

/** A `SqlClient` on a fresh database of the dialect. */
export const freshDatabase = (dialect: Dialect): Layer.Layer<SqlClient.SqlClient> =>
  Layer.unwrapScoped(
    Effect.map(acquireFreshDatabase(dialect), ({ url }) => Database.layerFromUrl(url))
  ).pipe(Layer.orDie)

/**
 * Runs `body` once per dialect, each in its own describe block on its own
 * fresh database. A dialect whose server is missing fails under `CI=true`
 * and is reported as skipped elsewhere.
 */
export const describeEachDialect = <R>(
  name: string,
  makeLayer: (database: Layer.Layer<SqlClient.SqlClient>, dialect: Dialect) => Layer.Layer<R, unknown>,
  body: (it: Vitest.MethodsNonLive<R>, dialect: Dialect) => void,
  dialects: ReadonlyArray<Dialect> = allDialects,
  options: { readonly liveClock?: boolean } = {}
) => {
  for (const dialect of dialects) {
    const title = `${name} [${dialect}]`
    if (serverUrl(dialect) === undefined) {
      missingServer(title, dialect)
      continue
    }
    layer(Layer.orDie(makeLayer(freshDatabase(dialect), dialect)), {
      timeout: "120 seconds",
      // Servers answer on real time: their clock must not be the test clock.
      excludeTestServices: options.liveClock === true
    })(title, (it) => body(it as Vitest.MethodsNonLive<R>, dialect))
  }
}

/** Fails under CI, skips visibly elsewhere. */
export const missingServer = (title: string, what: string) => {
  const ci = inject("servers").ci
  describe(title, () => {
    if (ci) {
      vitestIt(`needs ${what}`, () => {
        throw new Error(`${what} server is not reachable, and CI=true forbids skipping`)
      })
    } else {
      console.warn(`[effect-storage tests] ${title}: ${what} server not reachable, suite skipped`)
      vitestIt.skipIf(true)(`needs ${what} (not reachable)`, () => {})
    }
  })
}
