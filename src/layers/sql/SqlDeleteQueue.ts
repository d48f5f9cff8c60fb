/**
 * `DeleteQueue` over the `SqlClient` in context.
 *
 * Leases take rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL (one
 * statement) and MySQL/MariaDB (select then update in one transaction,
 * retried on deadlock); SQLite has a single writer, so one
 * `UPDATE ... RETURNING` is enough.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { randomFillSync } from "node:crypto"
import { trustedInstance } from "../../internal/trusted.js"
import { uuidv7 } from "../../internal/uuidv7.js"
import { DeleteReason, PendingDelete } from "../../schema/Models.js"
import { DeleteQueue } from "../../services/DeleteQueue.js"
import * as Dialect from "./Dialect.js"

/**
 * Rows per multi-row INSERT: 1,000 keys go in one statement.
 *
 * @since 0.1.0
 * @category constants
 */
export const insertBatchSize = 1000

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<DeleteQueue["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const dialect = Dialect.make(sql)
  const inTransaction = Dialect.withRetriedTransaction(sql, dialect)
  const columnNames =
    "id, object_key, upload_id, reason, attempts, next_attempt_at, created_at, last_error, lease_token, dead_at"
  const columns = sql.literal(columnNames)

  const fromRow = (row: QueueRow) => {
    const fields: PendingDeleteFields = {
      id: row.id,
      key: row.object_key,
      uploadId: row.upload_id,
      reason: row.reason,
      attempts: Dialect.readNumber(row.attempts),
      nextAttemptAt: dialect.readTime(row.next_attempt_at),
      createdAt: dialect.readTime(row.created_at),
      ...(row.last_error == null ? {} : { lastError: row.last_error }),
      ...(row.lease_token == null ? {} : { leaseToken: row.lease_token }),
      ...(row.dead_at == null ? {} : { deadAt: dialect.readTime(row.dead_at) })
    }
    // The schema's checks written out: a row that passes them is built
    // without the (much slower) class constructor; any other row goes
    // through the schema's validation and fails exactly as before.
    return isValidRow(fields) ? trustedInstance(PendingDelete, fields) : new PendingDelete(fields)
  }

  // Idempotent on (object_key, reason). MySQL's INSERT IGNORE would also
  // turn real errors (a truncated key!) into warnings, so it updates nothing
  // on a duplicate instead.
  const insertRows = sql.onDialectOrElse({
    // One array per column instead of 7 parameters per row: PostgreSQL
    // parses and plans a 1,000-row VALUES list with 7,000 parameters several
    // times slower than the same rows as 7 arrays. Same rows, same order.
    pg: () => (rows: ReadonlyArray<InsertRow>) =>
      sql`INSERT INTO sys_storage_pending_delete
        (id, object_key, upload_id, reason, attempts, next_attempt_at, created_at)
        SELECT * FROM unnest(
          ${rows.map((row) => row.id)}::text[],
          ${rows.map((row) => row.object_key)}::text[],
          ${rows.map((row) => row.upload_id)}::text[],
          ${rows.map((row) => row.reason)}::text[],
          ${rows.map((row) => row.attempts)}::int[],
          ${isoTimes(rows.map((row) => row.next_attempt_at))}::timestamptz[],
          ${isoTimes(rows.map((row) => row.created_at))}::timestamptz[]
        )
        ON CONFLICT (object_key, reason) DO NOTHING`,
    mysql: () => (rows: ReadonlyArray<InsertRow>) =>
      sql`INSERT INTO sys_storage_pending_delete ${sql.insert(rows)}
        ON DUPLICATE KEY UPDATE id = id`,
    orElse: () => (rows: ReadonlyArray<InsertRow>) =>
      sql`INSERT INTO sys_storage_pending_delete ${sql.insert(rows)}
        ON CONFLICT (object_key, reason) DO NOTHING`
  })
  const insertAll = (rows: ReadonlyArray<InsertRow>) =>
    Effect.forEach(Dialect.chunks(rows, insertBatchSize), insertRows, { discard: true })

  const leaseRows = sql.onDialectOrElse({
    pg: () => (now: DateTime.Utc, limit: number, until: DateTime.Utc, token: string) =>
      sql<QueueRow>`UPDATE sys_storage_pending_delete
        SET next_attempt_at = ${dialect.time(until)}, lease_token = ${token}
        WHERE id IN (
          SELECT id FROM sys_storage_pending_delete
          WHERE dead_at IS NULL AND next_attempt_at <= ${dialect.time(now)}
          ORDER BY next_attempt_at
          LIMIT ${Dialect.limitLiteral(sql, limit)}
          FOR UPDATE SKIP LOCKED
        )
        RETURNING ${columns}`,
    mysql: () => (now: DateTime.Utc, limit: number, until: DateTime.Utc, token: string) =>
      inTransaction(Effect.gen(function*() {
        const rows = yield* sql<QueueRow>`SELECT ${columns} FROM sys_storage_pending_delete
          WHERE dead_at IS NULL AND next_attempt_at <= ${dialect.time(now)}
          ORDER BY next_attempt_at
          LIMIT ${Dialect.limitLiteral(sql, limit)}
          FOR UPDATE SKIP LOCKED`
        if (rows.length === 0) return rows
        yield* sql`UPDATE sys_storage_pending_delete
          SET next_attempt_at = ${dialect.time(until)}, lease_token = ${token}
          WHERE ${sql.in("id", rows.map((row) => row.id))}`
        return rows.map((row) => ({ ...row, next_attempt_at: dialect.time(until), lease_token: token }))
      })),
    orElse: () => (now: DateTime.Utc, limit: number, until: DateTime.Utc, token: string) =>
      sql<QueueRow>`UPDATE sys_storage_pending_delete
        SET next_attempt_at = ${dialect.time(until)}, lease_token = ${token}
        WHERE id IN (
          SELECT id FROM sys_storage_pending_delete
          WHERE dead_at IS NULL AND next_attempt_at <= ${dialect.time(now)}
          ORDER BY next_attempt_at
          LIMIT ${Dialect.limitLiteral(sql, limit)}
        )
        RETURNING ${columns}`
  })

  const idFilter = (ids: ReadonlyArray<string> | undefined) => ids === undefined ? sql`1 = 1` : sql.in("id", ids)

  const byIdChunks = <A>(
    ids: ReadonlyArray<string> | undefined,
    run: (filter: ReturnType<typeof idFilter>) => Effect.Effect<A, SqlError>
  ): Effect.Effect<ReadonlyArray<A>, SqlError> => {
    if (ids === undefined) return Effect.map(run(idFilter(undefined)), (a) => [a])
    if (ids.length === 0) return Effect.succeed([])
    return Effect.forEach(Dialect.chunks(ids, 500), (chunk) => run(idFilter(chunk)))
  }
  const sum = (ns: ReadonlyArray<number>) => ns.reduce((a, b) => a + b, 0)

  return DeleteQueue.of({
    schedule: Effect.fn("DeleteQueue.schedule")(function*(keys: Iterable<string>, reason: DeleteReason) {
      const unique = Array.from(new Set(Array.from(keys).filter((key) => key !== "")))
      if (unique.length === 0) return
      const current = yield* DateTime.now
      const now = dialect.time(current)
      // The ids of the whole batch at once (one clock reading, one random fill).
      const ids = uuidv7Batch(unique.length, DateTime.toEpochMillis(current))
      const rows: Array<InsertRow> = unique.map((key, index) => ({
        id: ids[index]!,
        object_key: key,
        upload_id: "",
        reason,
        attempts: 0,
        next_attempt_at: now,
        created_at: now
      }))
      yield* insertAll(rows)
    }),

    enqueue: Effect.fn("DeleteQueue.enqueue")((items: ReadonlyArray<PendingDelete>) =>
      insertAll(items.map((item) => ({
        id: item.id,
        object_key: item.key,
        upload_id: item.uploadId,
        reason: item.reason,
        attempts: item.attempts,
        next_attempt_at: dialect.time(item.nextAttemptAt),
        created_at: dialect.time(item.createdAt)
      })))
    ),

    lease: Effect.fn("DeleteQueue.lease")(function*(now: DateTime.Utc, limit: number, leaseDuration) {
      const until = DateTime.addDuration(now, Duration.decode(leaseDuration))
      const token = yield* uuidv7
      const rows = yield* leaseRows(now, limit, until, token)
      return rows.map(fromRow)
    }),

    renew: Effect.fn("DeleteQueue.renew")((leaseToken: string, ids: ReadonlyArray<string>, until: DateTime.Utc) =>
      ids.length === 0 ? Effect.succeed(new Set<string>()) : inTransaction(Effect.gen(function*() {
        const held = new Set<string>()
        for (const chunk of Dialect.chunks(ids, 500)) {
          yield* sql`UPDATE sys_storage_pending_delete SET next_attempt_at = ${dialect.time(until)}
            WHERE lease_token = ${leaseToken} AND dead_at IS NULL AND ${sql.in("id", chunk)}`
          const rows = yield* sql<{ id: string }>`SELECT id FROM sys_storage_pending_delete
            WHERE lease_token = ${leaseToken} AND dead_at IS NULL AND ${sql.in("id", chunk)}`
          for (const row of rows) held.add(row.id)
        }
        return held as ReadonlySet<string>
      }))
    ),

    release: Effect.fn("DeleteQueue.release")((leaseToken: string, ids: ReadonlyArray<string>, now: DateTime.Utc) =>
      Effect.asVoid(
        byIdChunks(
          ids,
          (filter) =>
            sql`UPDATE sys_storage_pending_delete SET next_attempt_at = ${dialect.time(now)}, lease_token = NULL
          WHERE lease_token = ${leaseToken} AND dead_at IS NULL AND ${filter}`
        )
      )
    ),

    done: Effect.fn("DeleteQueue.done")((ids: Iterable<string>) =>
      Effect.asVoid(
        byIdChunks(Array.from(new Set(ids)), (filter) => sql`DELETE FROM sys_storage_pending_delete WHERE ${filter}`)
      )
    ),

    defer: Effect.fn("DeleteQueue.defer")((id: string, nextAt: DateTime.Utc, lastError?: string) =>
      Effect.asVoid(sql`UPDATE sys_storage_pending_delete
        SET attempts = attempts + 1, next_attempt_at = ${dialect.time(nextAt)},
            last_error = ${lastError ?? null}, lease_token = NULL
        WHERE id = ${id} AND dead_at IS NULL`)
    ),

    deadLetter: Effect.fn("DeleteQueue.deadLetter")((id: string, lastError: string, now: DateTime.Utc) =>
      Effect.map(
        dialect.affectedRows(sql`UPDATE sys_storage_pending_delete
          SET attempts = attempts + 1, dead_at = ${dialect.time(now)}, last_error = ${lastError}, lease_token = NULL
          WHERE id = ${id} AND dead_at IS NULL`),
        (n) => n > 0
      )
    ),

    listDeadLetters: Effect.fn("DeleteQueue.listDeadLetters")((options) =>
      Effect.map(
        sql<QueueRow>`SELECT ${columns} FROM sys_storage_pending_delete
          WHERE dead_at IS NOT NULL ORDER BY dead_at, id LIMIT ${Dialect.limitLiteral(sql, options?.limit ?? 1000)}`,
        (rows) => rows.map(fromRow)
      )
    ),

    requeueDeadLetters: Effect.fn("DeleteQueue.requeueDeadLetters")((now: DateTime.Utc, ids?: ReadonlyArray<string>) =>
      Effect.map(
        byIdChunks(ids, (filter) =>
          dialect.affectedRows(sql`UPDATE sys_storage_pending_delete
            SET dead_at = NULL, attempts = 0, next_attempt_at = ${dialect.time(now)}, lease_token = NULL
            WHERE dead_at IS NOT NULL AND ${filter}`)),
        sum
      )
    ),

    purgeDeadLetters: Effect.fn("DeleteQueue.purgeDeadLetters")((ids?: ReadonlyArray<string>) =>
      Effect.map(
        byIdChunks(ids, (filter) =>
          dialect.affectedRows(sql`DELETE FROM sys_storage_pending_delete WHERE dead_at IS NOT NULL AND ${filter}`)),
        sum
      )
    ),

    findByKeys: Effect.fn("DeleteQueue.findByKeys")((keys: Iterable<string>) =>
      Effect.map(
        Effect.forEach(
          Dialect.chunks(Array.from(new Set(keys)), 500),
          (chunk) =>
            sql<QueueRow>`SELECT ${columns} FROM sys_storage_pending_delete WHERE ${sql.in("object_key", chunk)}`
        ),
        (pages) => pages.flat().map(fromRow)
      )
    ),

    get: Effect.fn("DeleteQueue.get")((id: string) =>
      Effect.map(
        sql<QueueRow>`SELECT ${columns} FROM sys_storage_pending_delete WHERE id = ${id}`,
        (rows) => Option.map(Option.fromNullable(rows[0]), fromRow)
      )
    ),

    stats: Effect.fn("DeleteQueue.stats")((now: DateTime.Utc) =>
      Effect.map(
        sql<StatsRow>`SELECT
            SUM(CASE WHEN dead_at IS NULL THEN 1 ELSE 0 END) AS depth,
            SUM(CASE WHEN dead_at IS NULL AND next_attempt_at <= ${dialect.time(now)} THEN 1 ELSE 0 END) AS due,
            SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END) AS dead,
            MIN(CASE WHEN dead_at IS NULL AND next_attempt_at <= ${dialect.time(now)} THEN next_attempt_at END)
              AS oldest_due
          FROM sys_storage_pending_delete`,
        (rows) => {
          const row = rows[0]
          return {
            depth: Dialect.readNumber(row?.depth),
            due: Dialect.readNumber(row?.due),
            dead: Dialect.readNumber(row?.dead),
            oldestDue: row?.oldest_due == null ? Option.none() : Option.some(dialect.readTime(row.oldest_due))
          }
        }
      )
    )
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<DeleteQueue, never, SqlClient.SqlClient> = Layer.effect(DeleteQueue, make)

// ---- internal ----

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/**
 * Timestamps as ISO 8601 text (the same instants, to the millisecond): `pg`
 * turns a Date inside an array parameter into local-time text, about 1.4 µs
 * each, while an ISO string is copied as is. Rows of one batch usually share
 * one Date, so it is formatted once.
 */
const isoTimes = (times: ReadonlyArray<Date | string>): Array<string> => {
  let last: Date | undefined
  let lastText = ""
  return times.map((time) => {
    if (typeof time === "string") return time
    if (time !== last) {
      last = time
      lastText = time.toISOString()
    }
    return lastText
  })
}

/**
 * `count` UUIDv7s of the same millisecond, laid out as `uuidv7FromMillis`
 * lays out one (48 bits of time, version 7, variant 10, random bits), with
 * one random fill for the whole batch.
 */
const uuidv7Batch = (count: number, millis: number): Array<string> => {
  let ms = Math.max(0, Math.floor(millis))
  const time = new Array<string>(6)
  for (let i = 5; i >= 0; i--) {
    time[i] = hex[ms % 256]!
    ms = Math.floor(ms / 256)
  }
  const prefix = `${time[0]}${time[1]}${time[2]}${time[3]}-${time[4]}${time[5]}-`
  const random = randomFillSync(new Uint8Array(count * 10))
  const ids = new Array<string>(count)
  for (let i = 0, o = 0; i < count; i++, o += 10) {
    ids[i] = prefix +
      hex[(random[o]! & 0x0f) | 0x70] + hex[random[o + 1]!] + "-" +
      hex[(random[o + 2]! & 0x3f) | 0x80] + hex[random[o + 3]!] + "-" +
      hex[random[o + 4]!] + hex[random[o + 5]!] + hex[random[o + 6]!] +
      hex[random[o + 7]!] + hex[random[o + 8]!] + hex[random[o + 9]!]
  }
  return ids
}

type PendingDeleteFields = ConstructorParameters<typeof PendingDelete>[0]

const deleteReasons: ReadonlySet<unknown> = new Set(DeleteReason.literals)

const isUtc = (value: unknown): boolean => DateTime.isDateTime(value) && DateTime.isUtc(value)

/** What `PendingDelete`'s schema checks, for the rows a lease returns. */
const isValidRow = (fields: PendingDeleteFields): boolean =>
  typeof fields.id === "string" &&
  typeof fields.key === "string" &&
  typeof fields.uploadId === "string" &&
  deleteReasons.has(fields.reason) &&
  Number.isSafeInteger(fields.attempts) && fields.attempts >= 0 &&
  isUtc(fields.nextAttemptAt) &&
  isUtc(fields.createdAt) &&
  (fields.lastError === undefined || typeof fields.lastError === "string") &&
  (fields.leaseToken === undefined || typeof fields.leaseToken === "string") &&
  (fields.deadAt === undefined || isUtc(fields.deadAt))

type InsertRow = {
  readonly id: string
  readonly object_key: string
  readonly upload_id: string
  readonly reason: DeleteReason
  readonly attempts: number
  readonly next_attempt_at: Date | string
  readonly created_at: Date | string
}

interface QueueRow {
  readonly id: string
  readonly object_key: string
  readonly upload_id: string
  readonly reason: DeleteReason
  readonly attempts: unknown
  readonly next_attempt_at: unknown
  readonly created_at: unknown
  readonly last_error: string | null
  readonly lease_token: string | null
  readonly dead_at: unknown
}

interface StatsRow {
  readonly depth: unknown
  readonly due: unknown
  readonly dead: unknown
  readonly oldest_due: unknown
}
