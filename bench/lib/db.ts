/**
 * A fresh database per benchmark run: `CREATE DATABASE bench_<name>_<random>`
 * on PostgreSQL or MariaDB (a temp file on SQLite), dropped afterwards.
 *
 * Server addresses: `BENCH_PG_URL` (default
 * `postgres://postgres@127.0.0.1:5432/test`) and `BENCH_MYSQL_URL` (default
 * `mysql://root@127.0.0.1:3306/test`); only the server part of each is used.
 */
import mysql from "mysql2/promise"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"

export type Dialect = "pg" | "mysql" | "sqlite"

export const pgServerUrl = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
export const mysqlServerUrl = process.env.BENCH_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test"

export interface BenchDatabase {
  readonly dialect: Dialect
  readonly name: string
  /** For `Database.layerFromUrl` and the peers' clients. */
  readonly url: string
  readonly drop: () => Promise<void>
}

const withDatabaseName = (url: string, name: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
}

export const createDatabase = async (dialect: Dialect, label: string): Promise<BenchDatabase> => {
  const name = `bench_${label}_${randomBytes(4).toString("hex")}`
  switch (dialect) {
    case "sqlite": {
      const dir = mkdtempSync(join(tmpdir(), `effect-storage-${name}-`))
      return {
        dialect,
        name,
        url: `sqlite:${join(dir, "bench.db")}`,
        drop: async () => rmSync(dir, { recursive: true, force: true })
      }
    }
    case "pg": {
      await withPg(pgServerUrl, async (client) => {
        await client.query(`CREATE DATABASE ${name}`)
        // Diagnostics: every statement's parse/bind/execute time in the server log.
        if (process.env.BENCH_PG_LOG_STATEMENTS === "1") {
          await client.query(`ALTER DATABASE ${name} SET log_min_duration_statement = 0`)
        }
      })
      return {
        dialect,
        name,
        url: withDatabaseName(pgServerUrl, name),
        drop: async () => {
          await withPg(pgServerUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
        }
      }
    }
    case "mysql": {
      await withMysql(mysqlServerUrl, (conn) => conn.query(`CREATE DATABASE ${name}`))
      return {
        dialect,
        name,
        url: withDatabaseName(mysqlServerUrl, name),
        drop: async () => {
          await withMysql(mysqlServerUrl, (conn) => conn.query(`DROP DATABASE IF EXISTS ${name}`))
        }
      }
    }
  }
}

/** Runs `use` with a fresh database, dropped afterwards (also on failure). */
export const withDatabase = async <A>(
  dialect: Dialect,
  label: string,
  use: (db: BenchDatabase) => Promise<A>
): Promise<A> => {
  const db = await createDatabase(dialect, label)
  try {
    return await use(db)
  } finally {
    await db.drop().catch((error) => console.error(`[bench] could not drop ${db.name}:`, error))
  }
}

export const withPg = async <A>(url: string, use: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end()
  }
}

export const withMysql = async <A>(url: string, use: (conn: mysql.Connection) => Promise<A>): Promise<A> => {
  const conn = await mysql.createConnection({ uri: url, multipleStatements: false })
  try {
    return await use(conn)
  } finally {
    await conn.end()
  }
}

export const pgVersion = () =>
  withPg(
    pgServerUrl,
    async (c) => (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v
  )
    .then((v) => `PostgreSQL ${v}`)

export const mysqlVersion = () =>
  withMysql(mysqlServerUrl, async (c) => {
    const [rows] = await c.query("SELECT VERSION() AS v")
    return `MySQL/MariaDB ${(rows as Array<{ v: string }>)[0]!.v}`
  })

/** Waits until PostgreSQL (and MariaDB) accept connections again, up to `timeoutMs`. */
export const waitForServers = async (timeoutMs = 120_000) => {
  const deadline = Date.now() + timeoutMs
  for (
    const probe of [
      () => withPg(pgServerUrl, (c) => c.query("SELECT 1")),
      () => withMysql(mysqlServerUrl, (c) => c.query("SELECT 1"))
    ]
  ) {
    while (true) {
      try {
        await probe()
        break
      } catch (error) {
        if (Date.now() > deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
    }
  }
}
