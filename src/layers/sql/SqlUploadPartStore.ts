/**
 * `UploadPartStore` over the `SqlClient` in context.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ClaimNotFound } from "../../schema/Errors.js"
import { UploadPart } from "../../schema/Models.js"
import { UploadPartStore } from "../../services/UploadPartStore.js"
import * as Dialect from "./Dialect.js"

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<UploadPartStore["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const dialect = Dialect.make(sql)

  const onConflict = sql.onDialectOrElse({
    mysql: () =>
      sql.literal(
        "ON DUPLICATE KEY UPDATE etag = VALUES(etag), size = VALUES(size), created_at = VALUES(created_at)"
      ),
    orElse: () =>
      sql.literal(
        "ON CONFLICT (claim_id, part_number) DO UPDATE SET etag = excluded.etag, size = excluded.size, created_at = excluded.created_at"
      )
  })

  return UploadPartStore.of({
    upsert: Effect.fn("UploadPartStore.upsert")((part: UploadPart) =>
      sql`INSERT INTO sys_storage_upload_part (id, claim_id, part_number, etag, size, created_at)
        VALUES (${part.id}, ${part.claimId}, ${part.partNumber}, ${part.etag}, ${part.size}, ${
        dialect.time(part.createdAt)
      })
        ${onConflict}`.pipe(
        Effect.asVoid,
        Effect.catchIf(
          dialect.isForeignKeyViolation,
          () => Effect.fail(new ClaimNotFound({ message: "the upload was aborted or removed" }))
        )
      )
    ),

    listByClaim: Effect.fn("UploadPartStore.listByClaim")((claimId: string) =>
      Effect.map(
        sql<PartRow>`SELECT id, claim_id, part_number, etag, size, created_at FROM sys_storage_upload_part
          WHERE claim_id = ${claimId} ORDER BY part_number`,
        (rows) =>
          rows.map((row) =>
            new UploadPart({
              id: row.id,
              claimId: row.claim_id,
              partNumber: Dialect.readNumber(row.part_number),
              etag: row.etag,
              size: Dialect.readNumber(row.size),
              createdAt: dialect.readTime(row.created_at)
            })
          )
      )
    ),

    deleteByClaim: Effect.fn("UploadPartStore.deleteByClaim")((claimId: string) =>
      Effect.asVoid(sql`DELETE FROM sys_storage_upload_part WHERE claim_id = ${claimId}`)
    )
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<UploadPartStore, never, SqlClient.SqlClient> = Layer.effect(UploadPartStore, make)

// ---- internal ----

interface PartRow {
  readonly id: string
  readonly claim_id: string
  readonly part_number: unknown
  readonly etag: string
  readonly size: unknown
  readonly created_at: unknown
}
