/**
 * The `Files` facade: what business code calls when a record that
 * references uploaded files is created, updated or deleted.
 *
 * Every method joins the caller's transaction (they only run statements
 * through the stores, which look the transaction up in the fiber), so call
 * them inside the `sql.withTransaction` that writes the business record:
 *
 * ```ts
 * const createDocument = (principal: Principal, doc: Document) =>
 *   sql.withTransaction(Effect.gen(function*() {
 *     const files = yield* Files
 *     yield* files.onCreateOf(Document, principal, doc) // adopt, or fail and roll back
 *     yield* insertDocument(doc)
 *   }))
 * ```
 *
 * - An adoption (`onCreate`, the new keys of `onUpdate`) either adopts every
 *   key or fails with `ClaimNotFound` / `AccessDenied` and changes nothing
 *   (`consumeMany` runs in a savepoint of its own); then let the business
 *   transaction roll back.
 * - Deletions are queued with `DeleteScheduler`: the objects are removed by
 *   the delete worker after the business transaction commits, never before,
 *   and never if it rolls back.
 * - One `FileClaimed` event per adopted key is published through
 *   `StorageEvents` in the same transaction. A failing publish fails the
 *   method (an outbox write that failed must not commit an adoption without
 *   its event).
 *
 * Keys are trimmed and empty ones ignored everywhere. The methods open no
 * transaction of their own beyond `consumeMany`'s savepoint: a failure part
 * way (a `SqlError` after the adoption) leaves the caller's transaction with
 * half a change, which the caller must roll back, as with any failed write.
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Schema from "effect/Schema"
import type { AccessDenied, ClaimNotFound } from "../schema/Errors.js"
import { FileClaimed } from "../schema/Events.js"
import type { Principal } from "../schema/Models.js"
import { ClaimConsumer } from "../services/ClaimConsumer.js"
import { DeleteScheduler } from "../services/DeleteScheduler.js"
import { StorageEvents } from "../services/StorageEvents.js"
import * as FileRefs from "./files/FileRefs.js"
import { UrlKeyMapper, type UrlKeyMapperShape } from "./files/UrlKeyMapper.js"
import * as StorageMetrics from "./StorageMetrics.js"

/**
 * The hooks of one schema, from `Files.forSchema`: the schema's file
 * references are compiled once, when this is made.
 *
 * @since 0.1.0
 * @category models
 */
export interface FilesFor<A> {
  /** The references in a value (URLs of rich text and Markdown not yet mapped). */
  readonly refs: (value: A | null | undefined) => ReadonlyArray<FileRefs.FileRef>
  /**
   * The object keys a value references, each once: uploaded-file values as
   * they are, rich-text and Markdown URLs through the `UrlKeyMapper`
   * (rejected URLs dropped).
   */
  readonly keys: (value: A | null | undefined) => ReadonlyArray<string>
  /** `Files.onCreate` with the keys of `value`; `null` / `undefined` is a no-op. */
  readonly onCreate: (
    principal: Principal,
    value: A | null | undefined
  ) => Effect.Effect<void, ClaimNotFound | AccessDenied | SqlError>
  /**
   * `Files.onUpdate` with the keys of both values: a missing old value is a
   * pure create, a missing new value queues every old key as `replaced`.
   */
  readonly onUpdate: (
    principal: Principal,
    oldValue: A | null | undefined,
    newValue: A | null | undefined
  ) => Effect.Effect<void, ClaimNotFound | AccessDenied | SqlError>
  /** `Files.onDelete` with the keys of `value`; `null` / `undefined` is a no-op. */
  readonly onDelete: (value: A | null | undefined) => Effect.Effect<void, SqlError>
}

/**
 * Options of `Files.forSchema`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ForSchemaOptions {
  /** Maps rich-text and Markdown URLs of this schema (default: the `UrlKeyMapper` of the `Files` layer). */
  readonly urlKeyMapper?: UrlKeyMapperShape | undefined
}

/**
 * The `Files` facade. Needs `ClaimConsumer`, `DeleteScheduler` and
 * `StorageEvents`; the `UrlKeyMapper` is read when the layer is built
 * (default: `proxyUrlKeyMapper`).
 *
 * ```ts
 * const FilesLive = Files.Default.pipe(
 *   Layer.provide(Layer.mergeAll(SqlStores.layer, StorageEvents.layerLog))
 * )
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class Files extends Effect.Service<Files>()("effect-storage/Files", {
  effect: Effect.gen(function*() {
    const consumer = yield* ClaimConsumer
    const scheduler = yield* DeleteScheduler
    const events = yield* StorageEvents
    const mapper = yield* UrlKeyMapper

    /** One `FileClaimed` event (topic `storage.file.claimed`) per adopted key, in the caller's transaction, and the metric. */
    const publishAdopted = (keys: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        for (const key of keys) yield* events.publish(new FileClaimed({ key }))
        yield* Metric.incrementBy(StorageMetrics.claimsAdopted, keys.length)
      })

    /**
     * Adopts the principal's uploads `keys` for a new record, all or
     * nothing, then publishes one `FileClaimed` per key.
     *
     * Keys are trimmed, empty ones dropped, and de-duplicated: a key
     * referenced twice yields one adoption and one event. No keys: nothing
     * happens, even for an anonymous principal.
     *
     * Fails with `ClaimNotFound` when any key is not an uploaded,
     * unadopted upload of the principal's (missing, still pending, someone
     * else's or adopted already), `AccessDenied` for an anonymous principal;
     * then nothing was adopted and nothing published.
     */
    const onCreate = Effect.fn("Files.onCreate")(function*(principal: Principal, keys: Iterable<string>) {
      const unique = normalize(keys)
      yield* Effect.annotateCurrentSpan("files.adopt", unique.length)
      if (unique.length === 0) return
      yield* consumer.consumeMany(principal, unique)
      yield* publishAdopted(unique)
    })

    /**
     * Moves a record from `oldKeys` to `newKeys`: adopts the keys only in
     * `newKeys` (as `onCreate`; on failure it returns at once, having
     * queued and published nothing), then queues the deletion of the keys
     * only in `oldKeys` with reason `replaced`, then publishes one
     * `FileClaimed` per adopted key. Keys in both are untouched; equal sets
     * are a no-op.
     */
    const onUpdate = Effect.fn("Files.onUpdate")(
      function*(principal: Principal, oldKeys: Iterable<string>, newKeys: Iterable<string>) {
        const before = new Set(normalize(oldKeys))
        const after = normalize(newKeys)
        const afterSet = new Set(after)
        const toAdopt = after.filter((key) => !before.has(key))
        const toDelete = Array.from(before).filter((key) => !afterSet.has(key))
        yield* Effect.annotateCurrentSpan({ "files.adopt": toAdopt.length, "files.delete": toDelete.length })
        if (toAdopt.length > 0) yield* consumer.consumeMany(principal, toAdopt)
        if (toDelete.length > 0) yield* scheduler.schedule(toDelete, "replaced")
        if (toAdopt.length > 0) yield* publishAdopted(toAdopt)
      }
    )

    /**
     * Queues the deletion of `keys` with reason `deleted`, for a record
     * being deleted (idempotent per key and reason). Takes no principal and
     * publishes nothing: check that the caller may delete the record first.
     */
    const onDelete = Effect.fn("Files.onDelete")(function*(keys: Iterable<string>) {
      const unique = normalize(keys)
      yield* Effect.annotateCurrentSpan("files.delete", unique.length)
      if (unique.length === 0) return
      yield* scheduler.schedule(unique, "deleted")
    })

    /**
     * The hooks of a schema whose fields are annotated with `FileRefs`
     * (`uploadedFile`, `richText`, `markdown`). The schema's references are
     * compiled here, once (and cached per schema).
     */
    const forSchema = <A, I, R>(schema: Schema.Schema<A, I, R>, options?: ForSchemaOptions): FilesFor<A> => {
      const extractor = FileRefs.extractor(schema)
      const urlKeyMapper = options?.urlKeyMapper ?? mapper
      const keys = (value: A | null | undefined): ReadonlyArray<string> =>
        extractor.isEmpty || value == null ? [] : FileRefs.keysOf(extractor.refs(value), urlKeyMapper)
      return {
        refs: extractor.refs,
        keys,
        // Values are read when the effect runs, not when it is built.
        onCreate: (principal, value) =>
          Effect.suspend(() => value == null ? Effect.void : onCreate(principal, keys(value))),
        onUpdate: (principal, oldValue, newValue) =>
          Effect.suspend(() =>
            oldValue == null && newValue == null
              ? Effect.void
              : onUpdate(principal, keys(oldValue), keys(newValue))
          ),
        onDelete: (value) => Effect.suspend(() => value == null ? Effect.void : onDelete(keys(value)))
      }
    }

    /** `forSchema(schema).onCreate(principal, value)`. */
    const onCreateOf = <A, I, R>(schema: Schema.Schema<A, I, R>, principal: Principal, value: A | null | undefined) =>
      forSchema(schema).onCreate(principal, value)

    /** `forSchema(schema).onUpdate(principal, oldValue, newValue)`. */
    const onUpdateOf = <A, I, R>(
      schema: Schema.Schema<A, I, R>,
      principal: Principal,
      oldValue: A | null | undefined,
      newValue: A | null | undefined
    ) => forSchema(schema).onUpdate(principal, oldValue, newValue)

    /** `forSchema(schema).onDelete(value)`. */
    const onDeleteOf = <A, I, R>(schema: Schema.Schema<A, I, R>, value: A | null | undefined) =>
      forSchema(schema).onDelete(value)

    return {
      onCreate,
      onUpdate,
      onDelete,
      forSchema,
      onCreateOf,
      onUpdateOf,
      onDeleteOf,
      /** The `UrlKeyMapper` this facade maps rich-text and Markdown URLs with. */
      urlKeyMapper: mapper
    } as const
  })
}) {
  /**
   * `files.forSchema(schema, options)` from the `Files` in context:
   * `const documentFiles = yield* Files.forSchema(Document)`.
   *
   * @since 0.1.0
   * @category accessors
   */
  static readonly forSchema = <A, I, R>(
    schema: Schema.Schema<A, I, R>,
    options?: ForSchemaOptions
  ): Effect.Effect<FilesFor<A>, never, Files> => Effect.map(Files, (files) => files.forSchema(schema, options))
}

// ---- internal ----

/** Trimmed, non-empty, each once, in order. */
const normalize = (keys: Iterable<string>): ReadonlyArray<string> => {
  const out = new Set<string>()
  for (const raw of keys) {
    const key = raw.trim()
    if (key !== "") out.add(key)
  }
  return Array.from(out)
}
