/**
 * effect-storage: durable upload bookkeeping for Effect applications.
 *
 * This is the core: models, errors, service tags, their implementations
 * and the flows. Service tags and models are exported by name; each
 * implementation module is exported as a namespace with its layers. The
 * HTTP API is `effect-storage/http`, the operator CLI `effect-storage/cli`.
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
export { FileRegistry } from "./services/FileRegistry.js"
export {
  type Body,
  type ByteRange,
  type CompleteMultipartInput,
  type GetObjectInput,
  type InitMultipartInput,
  type Multipart,
  type MultipartSession,
  type MultipartUploadSummary,
  type ObjectContent,
  ObjectStorage,
  type ObjectSummary,
  type PartInfo,
  type PartRef,
  type PresignedPost,
  type PresignedRequest,
  type Presigner,
  type PutObjectInput,
  type PutPartInput
} from "./services/ObjectStorage.js"
export { UploadPartStore } from "./services/UploadPartStore.js"
export { type UploadTail, UploadTailStore } from "./services/UploadTailStore.js"

// ---- implementations ----
/** @since 0.1.0 */
export * as Database from "./layers/sql/Database.js"
/** @since 0.1.0 */
export * as Migrations from "./layers/sql/Migrations.js"
/** @since 0.1.0 */
export * as SqlStores from "./layers/sql/SqlStores.js"
/** @since 0.1.0 */
export * as SqlFileRegistry from "./layers/sql/SqlFileRegistry.js"
/** @since 0.1.0 */
export * as SqlEventOutbox from "./layers/sql/SqlEventOutbox.js"
/** @since 0.1.0 */
export * as MemoryObjectStorage from "./layers/objects/MemoryObjectStorage.js"
/** @since 0.1.0 */
export * as FileSystemObjectStorage from "./layers/objects/FileSystemObjectStorage.js"
/** @since 0.1.0 */
export * as S3ObjectStorage from "./layers/objects/S3ObjectStorage.js"
export {
  byteSize as byteSizeConfig,
  duration as durationConfig,
  StorageConfig,
  type StorageOverrides,
  type StorageSettings
} from "./layers/StorageConfig.js"
/** @since 0.1.0 */
export { DirectUploads, type FormUploadTicket, type SignedPartRequest } from "./layers/DirectUploads.js"
export * as StorageMetrics from "./layers/StorageMetrics.js"
export * as Telemetry from "./layers/Telemetry.js"
export { type RequestChecksum, type ResumableUpload, TusUploads } from "./layers/TusUploads.js"
export { type CompletedUpload, Uploads, type UploadTicket } from "./layers/Uploads.js"
/** @since 0.1.0 */
export * as DirectUploadSigner from "./layers/DirectUploadSigner.js"
export { StorageEvents } from "./services/StorageEvents.js"
/** @since 0.1.0 */
export { Files, type FilesFor, type ForSchemaOptions } from "./layers/Files.js"
export * as Naming from "./schema/Naming.js"
/** @since 0.1.0 */
export * as FileRefs from "./layers/files/FileRefs.js"
/** @since 0.1.0 */
export { ClaimSweeper, type SweepReport } from "./layers/ClaimSweeper.js"
export { type DeleteReport, DeleteWorker } from "./layers/DeleteWorker.js"
export * as UrlExtractor from "./layers/files/UrlExtractor.js"
export * from "./layers/files/UrlKeyMapper.js"
/** @since 0.1.0 */
export {
  ListingOutOfOrder,
  type ReconcileOptions,
  type ReconcileProgress,
  Reconciler,
  type ReconcileReport
} from "./layers/Reconciler.js"
export * as Storage from "./layers/Storage.js"
