/**
 * effect-storage: durable upload bookkeeping for Effect applications.
 *
 * Service tags and models are exported by name; each implementation module
 * is exported as a namespace with its layers.
 *
 * @since 0.1.0
 */

// ---- models, errors, events ----
export * from "./schema/Errors.js"
export * from "./schema/Events.js"
export * from "./schema/Models.js"

// ---- services ----
export { ClaimConsumer } from "./services/ClaimConsumer.js"
export { ClaimStore, type ClaimTotals } from "./services/ClaimStore.js"
export { DeleteQueue, type QueueStats } from "./services/DeleteQueue.js"
export { DeleteScheduler } from "./services/DeleteScheduler.js"
export {
  type Body,
  type ByteRange,
  type Multipart,
  type MultipartUploadSummary,
  type ObjectContent,
  ObjectStorage,
  type ObjectSummary,
  type PartInfo
} from "./services/ObjectStorage.js"
export { UploadPartStore } from "./services/UploadPartStore.js"

// ---- implementations ----
/** @since 0.1.0 */
export * as Database from "./layers/sql/Database.js"
/** @since 0.1.0 */
export * as Migrations from "./layers/sql/Migrations.js"
/** @since 0.1.0 */
export * as SqlStores from "./layers/sql/SqlStores.js"
