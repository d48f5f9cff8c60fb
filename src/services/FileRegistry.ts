/**
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { DeleteReason, FileRecord, FileStatus, UploadClaim } from "../schema/Models.js"

/**
 * The file registry (`sys_storage_file`): one row per completed upload,
 * written by the flows in the transactions that complete it (`Uploads` and
 * the sweeper's recovery call `recordUploaded`), adopt it (`ClaimConsumer`
 * calls `markAdopted`) and delete it (the delete worker calls
 * `markDeleted`). Every method joins the caller's transaction.
 *
 * @since 0.1.0
 * @category tags
 */
export class FileRegistry extends Context.Tag("effect-storage/FileRegistry")<FileRegistry, {
  /**
   * Registers the upload of a claim just marked uploaded, with the claim's
   * owner, name, type and size. Idempotent: a key registered already keeps
   * its record.
   */
  readonly recordUploaded: (claim: UploadClaim, at: DateTime.Utc) => Effect.Effect<void, SqlError>

  /**
   * Marks the records of `keys` adopted, those still `uploaded`. Run it in
   * the transaction that adopts them, after the ownership check.
   */
  readonly markAdopted: (keys: ReadonlyArray<string>, at: DateTime.Utc) => Effect.Effect<void, SqlError>

  /** The records of `keys` that exist (at most 1,000 keys per call is sensible). */
  readonly lookup: (keys: Iterable<string>) => Effect.Effect<ReadonlyArray<FileRecord>, SqlError>

  /** The record of one key. */
  readonly get: (key: string) => Effect.Effect<Option.Option<FileRecord>, SqlError>

  /**
   * Marks objects deleted, with the reason; the first writer wins (a record
   * already deleted keeps its first reason). Unknown keys are ignored.
   */
  readonly markDeleted: (
    entries: ReadonlyArray<{ readonly key: string; readonly reason: DeleteReason }>,
    at: DateTime.Utc
  ) => Effect.Effect<void, SqlError>

  /** Records, newest first, optionally one owner's or one status's. */
  readonly list: (options: {
    readonly owner?: string | undefined
    readonly status?: FileStatus | undefined
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<FileRecord>, SqlError>

  /**
   * Records not deleted, in byte order of their keys, after `afterKey`: a
   * page of a walk over the registry that holds one page at a time.
   */
  readonly liveAfter: (afterKey: string, limit: number) => Effect.Effect<ReadonlyArray<FileRecord>, SqlError>

  /** Counts and bytes per status. */
  readonly totals: Effect.Effect<
    Readonly<Record<FileStatus, { readonly count: number; readonly bytes: number }>>,
    SqlError
  >
}>() {}
