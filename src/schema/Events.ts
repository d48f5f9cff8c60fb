/**
 * The domain events of effect-storage. They are published through the
 * `StorageEvents` service inside the transaction that causes them, so an app
 * that writes them to an outbox table never sees a ghost event.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { DeleteReason } from "./Models.js"

/**
 * A business record adopted an uploaded file. (The topic keeps the name
 * `storage.file.claimed` of the public contract.)
 *
 * @since 0.1.0
 * @category events
 */
export class FileClaimed extends Schema.TaggedClass<FileClaimed>()("storage.file.claimed", {
  key: Schema.String
}) {}

/**
 * The delete worker removed an object (or found it already gone).
 *
 * @since 0.1.0
 * @category events
 */
export class FileDeleted extends Schema.TaggedClass<FileDeleted>()("storage.file.deleted", {
  key: Schema.String,
  reason: DeleteReason
}) {}

/**
 * A delete job kept failing and was dead-lettered. `lastError` is a
 * classification: `access_denied`, `bucket_not_found`, `session_not_found`,
 * `invalid` or `transient`.
 *
 * @since 0.1.0
 * @category events
 */
export class DeleteDeadLettered extends Schema.TaggedClass<DeleteDeadLettered>()("storage.delete.dead_letter", {
  pendingDeleteId: Schema.String,
  key: Schema.String,
  reason: DeleteReason,
  attempts: Schema.Int,
  lastError: Schema.String
}) {}

/**
 * Any storage event.
 *
 * @since 0.1.0
 * @category events
 */
export const StorageEvent = Schema.Union(FileClaimed, FileDeleted, DeleteDeadLettered)

/**
 * @since 0.1.0
 * @category events
 */
export type StorageEvent = typeof StorageEvent.Type
