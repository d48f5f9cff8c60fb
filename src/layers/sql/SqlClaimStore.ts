/**
 * `ClaimStore` over the `SqlClient` in context.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { withTransaction } from "../../internal/transaction.js"
import { AccessDenied, ClaimAlreadyExists, ClaimNotFound, TooManyPendingUploads } from "../../schema/Errors.js"
import { isAnonymous, UploadClaim } from "../../schema/Models.js"
import { ClaimStore } from "../../services/ClaimStore.js"
import * as Dialect from "./Dialect.js"

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<ClaimStore["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const transaction = withTransaction(sql)
  const dialect = Dialect.make(sql)
  const inTransaction = Dialect.withRetriedTransaction(sql, dialect)
  const columns = sql.literal(
    "id, created_at, created_by, object_key, upload_id, size, content_type, original_filename, status, public, part_size, part_count, expires_at"
  )
  const fromRow = (row: ClaimRow) =>
    new UploadClaim({
      id: row.id,
      createdAt: dialect.readTime(row.created_at),
      createdBy: row.created_by,
      key: row.object_key,
      uploadId: row.upload_id,
      size: Dialect.readNumber(row.size),
      contentType: row.content_type,
      originalFilename: row.original_filename,
      status: row.status,
      public: Dialect.readBool(row.public),
      partSize: Dialect.readNumber(row.part_size),
      partCount: Dialect.readNumber(row.part_count),
      expiresAt: dialect.readTime(row.expires_at)
    })
  const select = (rows: Effect.Effect<ReadonlyArray<ClaimRow>, SqlError>) => Effect.map(rows, (rs) => rs.map(fromRow))

  // Upserting the owner's lock row takes an exclusive row lock on every
  // dialect, which serializes count-then-insert per owner until commit.
  const lockOwner = sql.onDialectOrElse({
    mysql: () => (owner: string) =>
      sql`INSERT INTO sys_storage_owner_lock (owner) VALUES (${owner})
          ON DUPLICATE KEY UPDATE owner = owner`,
    orElse: () => (owner: string) =>
      sql`INSERT INTO sys_storage_owner_lock (owner) VALUES (${owner})
          ON CONFLICT (owner) DO UPDATE SET owner = excluded.owner`
  })

  const create = (claim: UploadClaim) =>
    sql`INSERT INTO sys_storage_upload_claim (${columns}) VALUES (
      ${claim.id}, ${dialect.time(claim.createdAt)}, ${claim.createdBy}, ${claim.key}, ${claim.uploadId},
      ${claim.size}, ${claim.contentType}, ${claim.originalFilename}, ${claim.status}, ${dialect.bool(claim.public)},
      ${claim.partSize}, ${claim.partCount}, ${dialect.time(claim.expiresAt)}
    )`.pipe(
      Effect.asVoid,
      Effect.catchIf(dialect.isUniqueViolation, () =>
        Effect.fail(
          new ClaimAlreadyExists({ message: `an upload claim with id ${claim.id} or key ${claim.key} exists` })
        ))
    )

  const countPendingByOwner = (owner: string) =>
    Effect.map(
      sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM sys_storage_upload_claim
        WHERE created_by = ${owner} AND status = 'pending'`,
      (rows) => Dialect.readNumber(rows[0]?.n)
    )

  const deleteByIds = (ids: Iterable<string>) =>
    Effect.forEach(
      Dialect.chunks(Array.from(new Set(ids)), 500),
      (chunk) => sql`DELETE FROM sys_storage_upload_claim WHERE ${sql.in("id", chunk)}`,
      { discard: true }
    )

  const getBy = (column: "id" | "object_key", value: string) =>
    select(sql<ClaimRow>`SELECT ${columns} FROM sys_storage_upload_claim WHERE ${sql(column)} = ${value}`).pipe(
      Effect.flatMap((rows) => rows.length > 0 ? Effect.succeed(rows[0]!) : Effect.fail(new ClaimNotFound()))
    )

  return ClaimStore.of({
    create: Effect.fn("ClaimStore.create")(create),

    createWithinCap: Effect.fn("ClaimStore.createWithinCap")((claim: UploadClaim, maxPending: number) =>
      inTransaction(Effect.gen(function*() {
        yield* lockOwner(claim.createdBy)
        const pending = yield* countPendingByOwner(claim.createdBy)
        if (pending >= maxPending) {
          return yield* new TooManyPendingUploads({
            message: `at most ${maxPending} pending uploads per user; finish or abort one first`
          })
        }
        yield* create(claim)
      }))
    ),

    updateUploadId: Effect.fn("ClaimStore.updateUploadId")(function*(id: string, uploadId: string) {
      const n = yield* dialect.affectedRows(sql`UPDATE sys_storage_upload_claim SET upload_id = ${uploadId}
        WHERE id = ${id} AND status = 'pending'`)
      if (n === 0) return yield* new ClaimNotFound()
    }),

    markUploaded: Effect.fn("ClaimStore.markUploaded")(function*(id: string) {
      const n = yield* dialect.affectedRows(sql`UPDATE sys_storage_upload_claim SET status = 'uploaded'
        WHERE id = ${id} AND status = 'pending'`)
      if (n === 0) return yield* new ClaimNotFound()
    }),

    get: Effect.fn("ClaimStore.get")((id: string) => getBy("id", id)),

    getByKey: Effect.fn("ClaimStore.getByKey")((key: string) => getBy("object_key", key)),

    findByKeys: Effect.fn("ClaimStore.findByKeys")((keys: Iterable<string>) =>
      Effect.map(
        Effect.forEach(
          Dialect.chunks(Array.from(new Set(keys)), 500),
          (chunk) =>
            select(sql<ClaimRow>`SELECT ${columns} FROM sys_storage_upload_claim WHERE ${sql.in("object_key", chunk)}`)
        ),
        (pages) => pages.flat()
      )
    ),

    countPendingByOwner: Effect.fn("ClaimStore.countPendingByOwner")(countPendingByOwner),

    consume: Effect.fn("ClaimStore.consume")(function*(key: string) {
      const n = yield* dialect.affectedRows(sql`DELETE FROM sys_storage_upload_claim
        WHERE object_key = ${key} AND status = 'uploaded'`)
      if (n === 0) return yield* new ClaimNotFound()
    }),

    consumeMany: Effect.fn("ClaimStore.consumeMany")(function*(principal, keys) {
      const unique = Array.from(new Set(Array.from(keys).filter((key) => key !== "")))
      if (unique.length === 0) return
      if (isAnonymous(principal)) return yield* new AccessDenied({ message: "an anonymous user cannot adopt uploads" })
      // A transaction of its own (a savepoint inside the caller's), so a
      // partial match is undone even if the caller forgets to roll back.
      yield* transaction(Effect.gen(function*() {
        let matched = 0
        for (const chunk of Dialect.chunks(unique, 500)) {
          matched += yield* dialect.affectedRows(sql`DELETE FROM sys_storage_upload_claim
            WHERE ${sql.in("object_key", chunk)} AND status = 'uploaded' AND created_by = ${principal.id}`)
        }
        if (matched !== unique.length) {
          return yield* new ClaimNotFound({
            message:
              `matched ${matched} of ${unique.length} uploads: each must be an upload of yours that was completed`
          })
        }
      }))
    }),

    scanExpired: Effect.fn("ClaimStore.scanExpired")((now: DateTime.Utc, limit: number) =>
      select(sql<ClaimRow>`SELECT ${columns} FROM sys_storage_upload_claim
        WHERE status = 'pending' AND expires_at < ${dialect.time(now)}
        ORDER BY expires_at LIMIT ${Dialect.limitLiteral(sql, limit)}`)
    ),

    scanUnadopted: Effect.fn("ClaimStore.scanUnadopted")((cutoff: DateTime.Utc, limit: number) =>
      select(sql<ClaimRow>`SELECT ${columns} FROM sys_storage_upload_claim
        WHERE status = 'uploaded' AND expires_at < ${dialect.time(cutoff)}
        ORDER BY expires_at LIMIT ${Dialect.limitLiteral(sql, limit)}`)
    ),

    deleteById: Effect.fn("ClaimStore.deleteById")((id: string) => deleteByIds([id])),

    deleteByIds: Effect.fn("ClaimStore.deleteByIds")(deleteByIds),

    deleteIfPending: Effect.fn("ClaimStore.deleteIfPending")((id: string) =>
      Effect.map(
        dialect.affectedRows(sql`DELETE FROM sys_storage_upload_claim WHERE id = ${id} AND status = 'pending'`),
        (n) => n > 0
      )
    ),

    deleteIfPendingExpired: Effect.fn("ClaimStore.deleteIfPendingExpired")(
      (snapshot: UploadClaim, cutoff: DateTime.Utc) =>
        Effect.map(
          dialect.affectedRows(sql`DELETE FROM sys_storage_upload_claim
            WHERE id = ${snapshot.id} AND object_key = ${snapshot.key} AND upload_id = ${snapshot.uploadId}
            AND status = 'pending' AND expires_at < ${dialect.time(cutoff)}`),
          (n) => n > 0
        )
    ),

    markUploadedIfPendingExpired: Effect.fn("ClaimStore.markUploadedIfPendingExpired")(
      (snapshot: UploadClaim, cutoff: DateTime.Utc) =>
        Effect.map(
          dialect.affectedRows(sql`UPDATE sys_storage_upload_claim SET status = 'uploaded'
            WHERE id = ${snapshot.id} AND object_key = ${snapshot.key} AND upload_id = ${snapshot.uploadId}
            AND status = 'pending' AND expires_at < ${dialect.time(cutoff)}`),
          (n) => n > 0
        )
    ),

    deleteIfUploadedBefore: Effect.fn("ClaimStore.deleteIfUploadedBefore")(
      (snapshot: UploadClaim, cutoff: DateTime.Utc) =>
        Effect.map(
          dialect.affectedRows(sql`DELETE FROM sys_storage_upload_claim
            WHERE id = ${snapshot.id} AND object_key = ${snapshot.key}
            AND status = 'uploaded' AND expires_at < ${dialect.time(cutoff)}`),
          (n) => n > 0
        )
    ),

    totals: Effect.map(
      sql<{ status: string; n: unknown; bytes: unknown }>`SELECT status, COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes
        FROM sys_storage_upload_claim GROUP BY status`,
      (rows) => {
        const of = (status: string) => rows.find((row) => row.status === status)
        return {
          pendingCount: Dialect.readNumber(of("pending")?.n),
          pendingBytes: Dialect.readNumber(of("pending")?.bytes),
          uploadedCount: Dialect.readNumber(of("uploaded")?.n),
          uploadedBytes: Dialect.readNumber(of("uploaded")?.bytes)
        }
      }
    ).pipe(Effect.withSpan("ClaimStore.totals")),

    list: Effect.fn("ClaimStore.list")((options) => {
      const filters = [
        ...(options.owner === undefined ? [] : [sql`created_by = ${options.owner}`]),
        ...(options.status === undefined ? [] : [sql`status = ${options.status}`])
      ]
      return select(sql<ClaimRow>`SELECT ${columns} FROM sys_storage_upload_claim
        ${filters.length === 0 ? sql`` : sql`WHERE ${sql.and(filters)}`}
        ORDER BY created_at DESC, id DESC LIMIT ${Dialect.limitLiteral(sql, options.limit)}`)
    })
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<ClaimStore, never, SqlClient.SqlClient> = Layer.effect(ClaimStore, make)

// ---- internal ----

interface ClaimRow {
  readonly id: string
  readonly created_at: unknown
  readonly created_by: string
  readonly object_key: string
  readonly upload_id: string
  readonly size: unknown
  readonly content_type: string
  readonly original_filename: string
  readonly status: "pending" | "uploaded"
  readonly public: unknown
  readonly part_size: unknown
  readonly part_count: unknown
  readonly expires_at: unknown
}
