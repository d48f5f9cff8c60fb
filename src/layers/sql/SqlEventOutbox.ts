/**
 * A transactional outbox for storage events: `StorageEvents.publish` writes
 * the event to `sys_storage_event_outbox` through the caller's transaction,
 * so an event exists exactly when the change that caused it committed. A
 * relay of the app's reads it with `take` and removes what it delivered
 * with `acknowledge`.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { uuidv7 } from "../../internal/uuidv7.js"
import { StorageEvent } from "../../schema/Events.js"
import { StorageEvents } from "../../services/StorageEvents.js"
import * as Dialect from "./Dialect.js"

/**
 * An event read from the outbox.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutboxEntry {
  readonly id: string
  readonly event: StorageEvent
  readonly createdAt: DateTime.Utc
}

const encode = Schema.encodeSync(Schema.parseJson(StorageEvent))
const decode = Schema.decodeUnknownSync(Schema.parseJson(StorageEvent))

/**
 * `StorageEvents` writing to the outbox table (created by the migrations of
 * `SqlStores.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<StorageEvents, never, SqlClient.SqlClient> = Layer.effect(
  StorageEvents,
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const dialect = Dialect.make(sql)
    return StorageEvents.of({
      publish: (event) =>
        Effect.gen(function*() {
          const id = yield* uuidv7
          const now = yield* DateTime.now
          yield* sql`INSERT INTO sys_storage_event_outbox (id, topic, payload, created_at)
            VALUES (${id}, ${event._tag}, ${encode(event)}, ${dialect.time(now)})`
        }).pipe(Effect.withSpan("StorageEvents.publish")),
      // One multi-row INSERT per 500 events; the ids (UUIDv7, taken in order) keep their order.
      publishAll: (events) =>
        Effect.gen(function*() {
          const now = dialect.time(yield* DateTime.now)
          const rows: Array<{ id: string; topic: string; payload: string; created_at: unknown }> = []
          for (const event of events) {
            rows.push({ id: yield* uuidv7, topic: event._tag, payload: encode(event), created_at: now })
          }
          for (const chunk of Dialect.chunks(rows, 500)) {
            yield* sql`INSERT INTO sys_storage_event_outbox ${sql.insert(chunk)}`
          }
        }).pipe(Effect.withSpan("StorageEvents.publishAll", { attributes: { count: events.length } }))
    })
  })
)

/**
 * The oldest `limit` events of the outbox, in the order they were written.
 *
 * @since 0.1.0
 * @category outbox
 */
export const take = (limit: number): Effect.Effect<ReadonlyArray<OutboxEntry>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const dialect = Dialect.make(sql)
    const rows = yield* sql<{ id: string; payload: string; created_at: unknown }>`
      SELECT id, payload, created_at FROM sys_storage_event_outbox
      ORDER BY id LIMIT ${Dialect.limitLiteral(sql, limit)}`
    return rows.map((row) => ({ id: row.id, event: decode(row.payload), createdAt: dialect.readTime(row.created_at) }))
  })

/**
 * Removes delivered events.
 *
 * @since 0.1.0
 * @category outbox
 */
export const acknowledge = (ids: ReadonlyArray<string>): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    for (const chunk of Dialect.chunks(ids, 500)) {
      yield* sql`DELETE FROM sys_storage_event_outbox WHERE ${sql.in("id", chunk)}`
    }
  })
