/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { StorageEvent } from "../schema/Events.js"

/**
 * Where storage events go. `publish` is called inside the transaction that
 * causes the event (adoption, the worker's done or dead-letter transaction),
 * so an implementation that writes to an outbox table through the same
 * `SqlClient` commits or rolls back with it.
 *
 * @since 0.1.0
 * @category tags
 */
export class StorageEvents extends Context.Tag("effect-storage/StorageEvents")<StorageEvents, {
  /** Publishes one event inside the caller's transaction. */
  readonly publish: (event: StorageEvent) => Effect.Effect<void, SqlError>

  /**
   * Publishes several events at once, in order (an outbox writes them in one
   * statement). Optional: without it, `publishAll` publishes one by one.
   */
  readonly publishAll?: ((events: ReadonlyArray<StorageEvent>) => Effect.Effect<void, SqlError>) | undefined
}>() {
  /**
   * The default: each event becomes an info log line annotated with the
   * event's fields.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerLog: Layer.Layer<StorageEvents> = Layer.succeed(StorageEvents, {
    publish: (event) => Effect.logInfo(`storage event ${event._tag}`).pipe(Effect.annotateLogs({ ...event }))
  })

  /**
   * Discards every event.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerNoop: Layer.Layer<StorageEvents> = Layer.succeed(StorageEvents, {
    publish: () => Effect.void,
    publishAll: () => Effect.void
  })
}

/**
 * Publishes `events` in order through `events.publishAll` when the
 * implementation has it, else one by one.
 *
 * @since 0.1.0
 * @category publishing
 */
export const publishAll = (
  service: StorageEvents["Type"],
  events: ReadonlyArray<StorageEvent>
): Effect.Effect<void, SqlError> =>
  events.length === 0
    ? Effect.void
    : service.publishAll !== undefined
    ? service.publishAll(events)
    : Effect.forEach(events, service.publish, { discard: true })
