/**
 * What differs between PostgreSQL, MySQL/MariaDB and SQLite for the stores,
 * chosen once when a store is built.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { isSqlError, withTransaction } from "../../internal/transaction.js"

/** @internal */
export type DialectName = "pg" | "mysql" | "sqlite"

/** @internal */
export interface Dialect {
  readonly name: DialectName
  /** A timestamp as a bound parameter. */
  readonly time: (dt: DateTime.Utc) => Date | string
  /** A timestamp column's value as a `DateTime.Utc`. */
  readonly readTime: (value: unknown) => DateTime.Utc
  /** A boolean as a bound parameter. */
  readonly bool: (b: boolean) => boolean | number
  /** The number of rows an INSERT/UPDATE/DELETE matched. */
  readonly affectedRows: (statement: Statement.Statement<unknown>) => Effect.Effect<number, SqlError>
  readonly isUniqueViolation: (error: SqlError) => boolean
  readonly isForeignKeyViolation: (error: SqlError) => boolean
  /** Deadlocks and serialization failures: the whole transaction may be retried. */
  readonly isRetryable: (error: SqlError) => boolean
}

/** @internal */
export const make = (sql: SqlClient.SqlClient): Dialect =>
  sql.onDialectOrElse({
    pg: () => ({
      name: "pg" as const,
      time: DateTime.toDateUtc,
      readTime,
      bool: (b: boolean) => b,
      affectedRows: (statement) =>
        Effect.map(statement.raw, (r) => Number((r as { rowCount?: unknown }).rowCount ?? 0)),
      isUniqueViolation: (error) => codeOf(error) === "23505",
      isForeignKeyViolation: (error) => codeOf(error) === "23503",
      isRetryable: (error) => codeOf(error) === "40P01" || codeOf(error) === "40001"
    }),
    mysql: () => ({
      name: "mysql" as const,
      time: DateTime.toDateUtc,
      readTime,
      bool: (b: boolean) => (b ? 1 : 0),
      affectedRows: (statement) =>
        Effect.map(statement.raw, (r) => {
          // mysql2 answers a ResultSetHeader; with FOUND_ROWS (its default), matched rows.
          const header = Array.isArray(r) ? r[0] : r
          return Number((header as { affectedRows?: unknown })?.affectedRows ?? 0)
        }),
      isUniqueViolation: (error) => errnoOf(error) === 1062,
      isForeignKeyViolation: (error) => errnoOf(error) === 1452,
      isRetryable: (error) => errnoOf(error) === 1213 || errnoOf(error) === 1205
    }),
    orElse: () => ({
      name: "sqlite" as const,
      // ISO 8601 with milliseconds and Z: fixed width, so text order is time order.
      time: (dt: DateTime.Utc) => DateTime.formatIso(dt),
      readTime,
      bool: (b: boolean) => (b ? 1 : 0),
      affectedRows: (statement) => Effect.map(statement.raw, (r) => Number((r as { changes?: unknown }).changes ?? 0)),
      isUniqueViolation: (error) => {
        const code = codeOf(error)
        return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY"
      },
      isForeignKeyViolation: (error) => codeOf(error) === "SQLITE_CONSTRAINT_FOREIGNKEY",
      isRetryable: (error) => codeOf(error) === "SQLITE_BUSY"
    })
  })

/**
 * Runs `effect` in a transaction, retrying the whole transaction on deadlocks
 * and serialization failures (MySQL answers 1213 to concurrent `SKIP LOCKED`
 * leases). Inside a caller's transaction there is nothing to retry: the
 * caller's transaction is what failed, so the error is passed on.
 *
 * @internal
 */
export const withRetriedTransaction =
  (sql: SqlClient.SqlClient, dialect: Dialect) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (outer) =>
      Option.isSome(outer)
        ? withTransaction(sql)(effect)
        : retryConflicts(withTransaction(sql)(effect), dialect, 0))

/**
 * `withRetriedTransaction` for the dialect of `sql`: the transaction of a
 * flow that runs beside others on the same rows (workers, sweepers and
 * requests of several servers), where a deadlock is no error of the work.
 *
 * @internal
 */
export const retriedTransaction = (sql: SqlClient.SqlClient) => withRetriedTransaction(sql, make(sql))

/**
 * Runs `effect` again after a retryable conflict (a deadlock), up to 20
 * times, waiting 5 ms doubling, with jitter. The waits are real time, not
 * the application's clock: they wait for the other transaction to finish.
 */
const retryConflicts = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  dialect: Dialect,
  attempt: number
): Effect.Effect<A, E, R> =>
  Effect.catchIf(
    effect,
    (error) => attempt < 20 && isSqlError(error) && dialect.isRetryable(error),
    () =>
      Effect.zipRight(
        realTimeDelay(Math.min(1000, 5 * 2 ** attempt) * (0.5 + Math.random())),
        retryConflicts(effect, dialect, attempt + 1)
      )
  )

const realTimeDelay = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/** Reads a COUNT/SUM column: PostgreSQL answers int8 and numeric as strings. @internal */
export const readNumber = (value: unknown): number => (value == null ? 0 : Number(value))

/** Reads a boolean column: MySQL and SQLite answer 0/1. @internal */
export const readBool = (value: unknown): boolean =>
  value === true || value === 1 || value === "1" || value === "t" || value === "true"

/** Values of at most `size` per chunk, for bounded `IN (...)` lists and multi-row inserts. @internal */
export const chunks = <A>(values: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < values.length; i += size) out.push(values.slice(i, i + size))
  return out
}

/** A positive integer for a LIMIT clause (bound LIMIT parameters are not portable). @internal */
export const limitLiteral = (sql: SqlClient.SqlClient, n: number) =>
  sql.literal(String(Math.max(1, Math.floor(Number.isFinite(n) ? n : 1))))

// ---- internal ----

const readTime = (value: unknown): DateTime.Utc => {
  if (value instanceof Date) return DateTime.unsafeMake(value) as DateTime.Utc
  if (typeof value === "string" || typeof value === "number") {
    return DateTime.unsafeMake(new Date(value)) as DateTime.Utc
  }
  throw new Error(`unexpected timestamp value: ${String(value)}`)
}

const codeOf = (error: SqlError): unknown => (error.cause as { code?: unknown } | undefined)?.code

const errnoOf = (error: SqlError): unknown => (error.cause as { errno?: unknown } | undefined)?.errno
