/**
 * `FileRegistry` over the `SqlClient` in context.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type DeleteReason, FileRecord, type FileStatus, type UploadClaim } from "../../schema/Models.js"
import { FileRegistry } from "../../services/FileRegistry.js"
import * as Dialect from "./Dialect.js"

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<FileRegistry["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const dialect = Dialect.make(sql)
  const columns = sql.literal(
    "id, object_key, created_by, original_filename, content_type, size, public, status, started_at, uploaded_at, adopted_at, deleted_at, delete_reason"
  )
  const fromRow = (row: FileRow) =>
    new FileRecord({
      id: row.id,
      key: row.object_key,
      createdBy: row.created_by,
      originalFilename: row.original_filename,
      contentType: row.content_type,
      size: Dialect.readNumber(row.size),
      public: Dialect.readBool(row.public),
      status: row.status,
      startedAt: dialect.readTime(row.started_at),
      uploadedAt: dialect.readTime(row.uploaded_at),
      ...(row.adopted_at == null ? {} : { adoptedAt: dialect.readTime(row.adopted_at) }),
      ...(row.deleted_at == null ? {} : { deletedAt: dialect.readTime(row.deleted_at) }),
      ...(row.delete_reason == null ? {} : { deleteReason: row.delete_reason })
    })
  const select = (rows: Effect.Effect<ReadonlyArray<FileRow>, SqlError>) => Effect.map(rows, (rs) => rs.map(fromRow))
  const keepFirst = sql.onDialectOrElse({
    mysql: () => sql.literal("ON DUPLICATE KEY UPDATE status = sys_storage_file.status"),
    orElse: () => sql.literal("ON CONFLICT (object_key) DO NOTHING")
  })

  return FileRegistry.of({
    recordUploaded: Effect.fn("FileRegistry.recordUploaded")((claim: UploadClaim, at: DateTime.Utc) =>
      sql`INSERT INTO sys_storage_file
        (id, object_key, created_by, original_filename, content_type, size, public, status, started_at, uploaded_at)
        VALUES (${claim.id}, ${claim.key}, ${claim.createdBy}, ${claim.originalFilename}, ${claim.contentType},
          ${claim.size}, ${dialect.bool(claim.public)}, 'uploaded', ${dialect.time(claim.createdAt)}, ${
        dialect.time(at)
      })
        ${keepFirst}`.pipe(Effect.asVoid)
    ),

    markAdopted: Effect.fn("FileRegistry.markAdopted")(function*(keys: ReadonlyArray<string>, at: DateTime.Utc) {
      for (const chunk of Dialect.chunks(keys, 500)) {
        yield* sql`UPDATE sys_storage_file SET status = 'adopted', adopted_at = ${dialect.time(at)}
          WHERE ${sql.in("object_key", chunk)} AND status = 'uploaded'`
      }
    }),

    lookup: Effect.fn("FileRegistry.lookup")((keys: Iterable<string>) =>
      Effect.map(
        Effect.forEach(
          Dialect.chunks(Array.from(new Set(keys)), 500),
          (chunk) => select(sql<FileRow>`SELECT ${columns} FROM sys_storage_file WHERE ${sql.in("object_key", chunk)}`)
        ),
        (pages) => pages.flat()
      )
    ),

    get: Effect.fn("FileRegistry.get")((key: string) =>
      Effect.map(
        select(sql<FileRow>`SELECT ${columns} FROM sys_storage_file WHERE object_key = ${key}`),
        (rows) => Option.fromNullable(rows[0])
      )
    ),

    markDeleted: Effect.fn("FileRegistry.markDeleted")(
      function*(entries: ReadonlyArray<{ readonly key: string; readonly reason: DeleteReason }>, at: DateTime.Utc) {
        // One statement per reason: a batch usually has one or two.
        const byReason = new Map<DeleteReason, Array<string>>()
        for (const { key, reason } of entries) {
          const keys = byReason.get(reason)
          if (keys === undefined) byReason.set(reason, [key])
          else keys.push(key)
        }
        for (const [reason, keys] of byReason) {
          for (const chunk of Dialect.chunks(keys, 500)) {
            yield* sql`UPDATE sys_storage_file
              SET status = 'deleted', deleted_at = ${dialect.time(at)}, delete_reason = ${reason}
              WHERE ${sql.in("object_key", chunk)} AND status <> 'deleted'`
          }
        }
      }
    ),

    list: Effect.fn("FileRegistry.list")((options) => {
      const filters = [
        ...(options.owner === undefined ? [] : [sql`created_by = ${options.owner}`]),
        ...(options.status === undefined ? [] : [sql`status = ${options.status}`])
      ]
      return select(sql<FileRow>`SELECT ${columns} FROM sys_storage_file
        ${filters.length === 0 ? sql`` : sql`WHERE ${sql.and(filters)}`}
        ORDER BY uploaded_at DESC, id DESC LIMIT ${Dialect.limitLiteral(sql, options.limit)}`)
    }),

    liveAfter: Effect.fn("FileRegistry.liveAfter")((afterKey: string, limit: number) =>
      select(sql<FileRow>`SELECT ${columns} FROM sys_storage_file
        WHERE object_key > ${afterKey} AND status <> 'deleted'
        ORDER BY object_key LIMIT ${Dialect.limitLiteral(sql, limit)}`)
    ),

    totals: Effect.map(
      sql<
        { status: FileStatus; n: unknown; bytes: unknown }
      >`SELECT status, COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes
        FROM sys_storage_file GROUP BY status`,
      (rows) => {
        const of = (status: FileStatus) => {
          const row = rows.find((r) => r.status === status)
          return { count: Dialect.readNumber(row?.n), bytes: Dialect.readNumber(row?.bytes) }
        }
        return { uploaded: of("uploaded"), adopted: of("adopted"), deleted: of("deleted") }
      }
    ).pipe(Effect.withSpan("FileRegistry.totals"))
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<FileRegistry, never, SqlClient.SqlClient> = Layer.effect(FileRegistry, make)

// ---- internal ----

interface FileRow {
  readonly id: string
  readonly object_key: string
  readonly created_by: string
  readonly original_filename: string
  readonly content_type: string
  readonly size: unknown
  readonly public: unknown
  readonly status: FileStatus
  readonly started_at: unknown
  readonly uploaded_at: unknown
  readonly adopted_at: unknown
  readonly deleted_at: unknown
  readonly delete_reason: DeleteReason | null
}
