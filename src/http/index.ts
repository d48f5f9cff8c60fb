/**
 * effect-storage's HTTP API (`effect-storage/http`): the `StorageApiGroup`
 * an app adds to its own `HttpApi`, its handlers, bearer authentication, the
 * download ACL, the upload page and Prometheus metrics.
 *
 * @since 0.1.0
 */
export { Authentication, CurrentPrincipal, parseTokens, secretsEqual, TokenResolver } from "./Authentication.js"
export { FileAcl } from "./FileAcl.js"
/** @since 0.1.0 */
export * as DownloadLinks from "./DownloadLinks.js"
export { StorageApi, StorageApiGroup } from "./StorageApi.js"
/** @since 0.1.0 */
export { CompanionApiGroup } from "./CompanionApi.js"
export { DirectApiGroup, DirectStorageApi } from "./DirectApi.js"
/** @since 0.1.0 */
export * as CompanionHandlers from "./CompanionHandlers.js"
/** @since 0.1.0 */
export * as Sessions from "./Sessions.js"
export * as StorageHandlers from "./StorageHandlers.js"
/** @since 0.1.0 */
export * as DirectHandlers from "./DirectHandlers.js"
/** @since 0.1.0 */
export * as RequestBody from "./RequestBody.js"
/** @since 0.1.0 */
export * as Download from "./Download.js"
/** @since 0.1.0 */
export * as UploadPage from "./UploadPage.js"
/** @since 0.1.0 */
export * as Prometheus from "./Prometheus.js"
/** @since 0.1.0 */
export * as Tus from "./Tus.js"
/** @since 0.1.0 */
export * as Redaction from "./Redaction.js"
