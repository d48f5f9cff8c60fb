/**
 * `UploadTailStore` over the `SqlClient` in context.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type UploadTail, UploadTailStore } from "../../services/UploadTailStore.js"
import * as Dialect from "./Dialect.js"

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<UploadTailStore["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const dialect = Dialect.make(sql)

  return UploadTailStore.of({
    create: Effect.fn("UploadTailStore.create")(function*(claimId: string) {
      const now = dialect.time(yield* DateTime.now)
      yield* sql`INSERT INTO sys_storage_upload_tail (claim_id, upload_offset, tail_key, tail_size, updated_at)
        VALUES (${claimId}, ${0}, ${""}, ${0}, ${now})`
    }),

    get: Effect.fn("UploadTailStore.get")((claimId: string) =>
      Effect.map(
        sql<TailRow>`SELECT claim_id, upload_offset, tail_key, tail_size FROM sys_storage_upload_tail
          WHERE claim_id = ${claimId}`,
        (rows) =>
          Option.map(Option.fromNullable(rows[0]), (row): UploadTail => ({
            claimId: row.claim_id,
            offset: Dialect.readNumber(row.upload_offset),
            tailKey: row.tail_key,
            tailSize: Dialect.readNumber(row.tail_size)
          }))
      )
    ),

    advance: Effect.fn("UploadTailStore.advance")(function*(fromOffset: number, next: UploadTail) {
      const now = dialect.time(yield* DateTime.now)
      const moved = yield* dialect.affectedRows(
        sql`UPDATE sys_storage_upload_tail
          SET upload_offset = ${next.offset}, tail_key = ${next.tailKey}, tail_size = ${next.tailSize},
            updated_at = ${now}
          WHERE claim_id = ${next.claimId} AND upload_offset = ${fromOffset}`
      )
      return moved === 1
    })
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<UploadTailStore, never, SqlClient.SqlClient> = Layer.effect(UploadTailStore, make)

// ---- internal ----

interface TailRow {
  readonly claim_id: string
  readonly upload_offset: unknown
  readonly tail_key: string
  readonly tail_size: unknown
}
