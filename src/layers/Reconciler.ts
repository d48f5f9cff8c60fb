/**
 * The reconciler: compares what the bucket holds with what the database
 * knows, and reports (or, with `apply`, cleans up) the difference.
 *
 * One run makes two passes:
 *
 * 1. **Objects.** The bucket listing (key order) is merge-joined with the
 *    file registry's live records (`FileRegistry.liveAfter`, byte order of
 *    keys), one page of each at a time. A key on one side only is checked
 *    in batches against the claims (any status), the delete queue (live or
 *    dead-lettered) and the registry again (it may have changed since its
 *    page was read):
 *    - an object nobody knows is an **unknown object**; with `apply` it is
 *      queued for deletion with reason `orphaned`, through the normal queue
 *      (the delete worker deletes it);
 *    - a live record (status `uploaded` or `claimed`) whose object is gone,
 *      and whose key is not queued for deletion (the worker deletes the
 *      object before it marks the record), is a **missing object**. It is
 *      only reported, never "fixed": the record may be referenced by
 *      business data, and only the application can decide what to do.
 * 2. **Multipart sessions.** Each open session is checked against the
 *    claims: a session no pending claim carries (same key and upload id),
 *    and no delete-queue row carries either (the worker aborts those), is an
 *    **orphan session**; with `apply` it is aborted at once through
 *    `abortMultipart`. Not through the queue: the worker would also delete
 *    the object under that key, which may be a real, registered object.
 *
 * Objects, sessions and records younger than the grace window (1 hour by
 * default: object `lastModified`, session `initiated`, record `uploadedAt`)
 * are never reported: their upload may be in flight. Memory stays bounded
 * by the page size: the listing is never held whole.
 *
 * The merge needs both sides in the same order. Every backend lists in
 * UTF-8 byte order (S3 does; the memory and filesystem backends sort with
 * `Buffer.compare`), and so does the registry on every dialect; a listing
 * out of order fails the run with `ListingOutOfOrder` rather than report
 * (and delete) wrongly.
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { compareKeys } from "../internal/objectStorage.js"
import type { InvalidObjectKey, StorageBackendError } from "../schema/Errors.js"
import type { FileRecord, FileStatus } from "../schema/Models.js"
import { ClaimStore } from "../services/ClaimStore.js"
import { DeleteQueue } from "../services/DeleteQueue.js"
import { FileRegistry } from "../services/FileRegistry.js"
import { type MultipartUploadSummary, ObjectStorage, type ObjectSummary } from "../services/ObjectStorage.js"

/**
 * What to reconcile and how.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconcileOptions {
  /** Queue unknown objects for deletion and abort orphan sessions (default false: a dry run). */
  readonly apply?: boolean | undefined
  /** Only keys under this prefix (default: the whole bucket). */
  readonly prefix?: string | undefined
  /** Anything younger than this is never reported (default 1 hour). */
  readonly grace?: Duration.DurationInput | undefined
  /** Keys per registry page and per database check (default 1,000). */
  readonly pageSize?: number | undefined
  /** Findings kept as examples in the report, per kind (default 20). */
  readonly sampleSize?: number | undefined
  /** Called after each page, with the counts so far. */
  readonly onProgress?: ((progress: ReconcileProgress) => Effect.Effect<void>) | undefined
}

/**
 * The counts so far, handed to `onProgress`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconcileProgress {
  readonly phase: "objects" | "sessions" | "done"
  readonly objectsScanned: number
  readonly sessionsScanned: number
  readonly unknownObjects: number
  readonly orphanSessions: number
  readonly missingObjects: number
}

/**
 * An object nobody knows, as listed.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnknownObject {
  readonly key: string
  readonly size: number
  readonly lastModified: DateTime.Utc
}

/**
 * A live registry record whose object is gone.
 *
 * @since 0.1.0
 * @category models
 */
export interface MissingObject {
  readonly key: string
  readonly status: FileStatus
  readonly size: number
  readonly createdBy: string
  readonly uploadedAt: DateTime.Utc
}

/**
 * What a run found and did.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconcileReport {
  /** Whether the findings were acted upon. */
  readonly applied: boolean
  readonly prefix: string
  readonly startedAt: DateTime.Utc
  /** Anything newer than this was within the grace window and left alone. */
  readonly cutoff: DateTime.Utc
  readonly objectsScanned: number
  readonly sessionsScanned: number
  /**
   * Left unchecked because younger than the cutoff: objects without a live
   * registry row (some may be known to a claim or the queue), open
   * sessions, and live registry rows without an object.
   */
  readonly withinGrace: {
    readonly objects: number
    readonly sessions: number
    readonly records: number
  }
  readonly unknownObjects: {
    readonly count: number
    readonly bytes: number
    readonly sample: ReadonlyArray<UnknownObject>
  }
  readonly orphanSessions: {
    readonly count: number
    readonly sample: ReadonlyArray<MultipartUploadSummary>
  }
  /** Reported only, never changed by `apply`. */
  readonly missingObjects: {
    readonly count: number
    readonly sample: ReadonlyArray<MissingObject>
  }
  /** Unknown objects queued for deletion (reason `orphaned`); 0 on a dry run. */
  readonly queued: number
  /** Orphan sessions aborted; 0 on a dry run. */
  readonly aborted: number
  /** Orphan sessions whose abort failed (logged; the next run finds them again). */
  readonly abortFailures: number
}

/**
 * A listing (the bucket's or the registry's) that is not in strictly
 * ascending byte order of keys: a merge over it would be wrong, so the run
 * stops before it reports or deletes anything more.
 *
 * @since 0.1.0
 * @category errors
 */
export class ListingOutOfOrder extends Schema.TaggedError<ListingOutOfOrder>()("ListingOutOfOrder", {
  source: Schema.Literal("objects", "registry"),
  previous: Schema.String,
  key: Schema.String,
  message: Schema.String
}) {}

/**
 * Every way a run can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type ReconcileError = SqlError | StorageBackendError | InvalidObjectKey | ListingOutOfOrder

/**
 * The grace window when none is given.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultGrace: Duration.Duration = Duration.hours(1)

/**
 * @since 0.1.0
 * @category services
 */
export class Reconciler extends Effect.Service<Reconciler>()("effect-storage/Reconciler", {
  effect: Effect.gen(function*() {
    const objects = yield* ObjectStorage
    const registry = yield* FileRegistry
    const claims = yield* ClaimStore
    const queue = yield* DeleteQueue

    /** One run; see the module documentation. */
    const run: (options?: ReconcileOptions) => Effect.Effect<ReconcileReport, ReconcileError> = Effect.fn(
      "Reconciler.run"
    )(function*(options: ReconcileOptions = {}) {
      const settings = resolve(options)
      const startedAt = yield* DateTime.now
      const cutoff = DateTime.subtractDuration(startedAt, settings.grace)
      const tally = makeTally(settings.sampleSize)
      const progress = (phase: ReconcileProgress["phase"]) =>
        options.onProgress === undefined ? Effect.void : options.onProgress(tally.progress(phase))

      // ---- pass 1: objects against the registry ----

      /** Object-only keys: unknown unless a claim, a queue row or a (new) record knows them. */
      const checkObjects = (candidates: ReadonlyArray<ObjectSummary>) =>
        Effect.gen(function*() {
          if (candidates.length === 0) return
          const keys = candidates.map((o) => o.key)
          const known = new Set<string>()
          for (const claim of yield* claims.findByKeys(keys)) known.add(claim.key)
          for (const row of yield* queue.findByKeys(keys)) known.add(row.key)
          for (const record of yield* registry.lookup(keys)) {
            // Registered since its page was read, or deleted (and the object
            // with it) since the listing passed it.
            if (record.status !== "deleted" || isAfter(record.deletedAt, startedAt)) known.add(record.key)
          }
          const unknown = candidates.filter((o) => !known.has(o.key))
          tally.unknown(unknown)
          if (settings.apply && unknown.length > 0) {
            yield* queue.schedule(unknown.map((o) => o.key), "orphaned")
            tally.queued(unknown.length)
          }
        })

      /** Record-only keys: missing unless being deleted, no longer live, or there after all. */
      const checkRecords = (candidates: ReadonlyArray<FileRecord>) =>
        Effect.gen(function*() {
          if (candidates.length === 0) return
          const keys = candidates.map((r) => r.key)
          const queued = new Set((yield* queue.findByKeys(keys)).map((row) => row.key))
          const live = new Set(
            (yield* registry.lookup(keys)).filter((r) => r.status !== "deleted").map((r) => r.key)
          )
          const suspects = candidates.filter((r) => !queued.has(r.key) && live.has(r.key))
          // A listing is not a snapshot: confirm each suspect before reporting it.
          const gone = yield* Effect.filter(suspects, (r) =>
            objects.statObject(r.key).pipe(
              Effect.as(false),
              Effect.catchTag("ObjectNotFound", () => Effect.succeed(true))
            ), { concurrency: 8 })
          tally.missing(gone)
        })

      // The listing and the registry, each checked to be in order, merged by key.
      const merged = inKeyOrder("objects", objects.listObjects(settings.prefix), (o: ObjectSummary) => o.key).pipe(
        Stream.map((o) => [o.key, o] as const),
        Stream.zipAllSortedByKeyWith({
          other: inKeyOrder("registry", registryRecords(registry, settings.prefix, settings.pageSize), (r) => r.key)
            .pipe(Stream.map((r) => [r.key, r] as const)),
          onSelf: (o): Entry => ({ object: o, record: undefined }),
          onOther: (r): Entry => ({ object: undefined, record: r }),
          onBoth: (o, r): Entry => ({ object: o, record: r }),
          order: keyOrder
        })
      )
      let objectCandidates: Array<ObjectSummary> = []
      let recordCandidates: Array<FileRecord> = []
      yield* Stream.runForEachChunk(merged, (chunk) =>
        Effect.gen(function*() {
          for (const [, { object, record }] of chunk) {
            if (object !== undefined) {
              tally.objectScanned()
              if (record === undefined) {
                if (isAfter(object.lastModified, cutoff)) tally.youngObject()
                else objectCandidates.push(object)
              }
              if (tally.objectsScanned % settings.pageSize === 0) yield* progress("objects")
            } else if (record !== undefined) {
              if (isAfter(record.uploadedAt, cutoff)) tally.youngRecord()
              else recordCandidates.push(record)
            }
            // One-sided keys are checked against the database a page at a time.
            if (objectCandidates.length >= settings.pageSize) {
              yield* checkObjects(objectCandidates)
              objectCandidates = []
            }
            if (recordCandidates.length >= settings.pageSize) {
              yield* checkRecords(recordCandidates)
              recordCandidates = []
            }
          }
        }))
      yield* checkObjects(objectCandidates)
      yield* checkRecords(recordCandidates)
      yield* progress("objects")

      // ---- pass 2: multipart sessions against the claims ----

      if (Option.isSome(objects.multipart)) {
        const multipart = objects.multipart.value
        const checkSessions = (page: ReadonlyArray<MultipartUploadSummary>) =>
          Effect.gen(function*() {
            tally.sessionsScanned(page.length)
            const old = page.filter((s) => !isAfter(s.initiated, cutoff))
            tally.youngSessions(page.length - old.length)
            if (old.length === 0) return
            const keys = old.map((s) => s.key)
            const carried = new Set<string>()
            for (const claim of yield* claims.findByKeys(keys)) {
              if (claim.status === "pending") carried.add(sessionId(claim.key, claim.uploadId))
            }
            for (const row of yield* queue.findByKeys(keys)) carried.add(sessionId(row.key, row.uploadId))
            const orphans = old.filter((s) => !carried.has(sessionId(s.key, s.uploadId)))
            tally.orphans(orphans)
            if (settings.apply) {
              yield* Effect.forEach(orphans, (session) =>
                multipart.abortMultipart({ key: session.key, uploadId: session.uploadId }).pipe(
                  Effect.matchCauseEffect({
                    onSuccess: () =>
                      Effect.sync(() => tally.aborted()),
                    onFailure: (cause) =>
                      Effect.zipRight(
                        Effect.logWarning(
                          `could not abort multipart upload ${session.uploadId} of ${session.key}`,
                          cause
                        ),
                        Effect.sync(() => tally.abortFailed())
                      )
                  })
                ), { concurrency: 8, discard: true })
            }
            yield* progress("sessions")
          })
        yield* multipart.listMultipartUploads(settings.prefix).pipe(
          Stream.grouped(settings.pageSize),
          Stream.runForEach((page) => checkSessions(Chunk.toReadonlyArray(page)))
        )
      }
      yield* progress("done")

      return tally.report({ applied: settings.apply, prefix: settings.prefix ?? "", startedAt, cutoff })
    })

    return {
      /**
       * One reconciliation: a dry run unless `apply` is set. Fails only on
       * database or backend errors (a failed abort is counted and logged)
       * and on a listing out of order.
       */
      run
    } as const
  })
}) {}

// ---- internal ----

interface Settings {
  readonly apply: boolean
  readonly prefix: string | undefined
  readonly grace: Duration.Duration
  readonly pageSize: number
  readonly sampleSize: number
}

const resolve = (options: ReconcileOptions): Settings => {
  const positive = (n: number | undefined, fallback: number) =>
    n !== undefined && Number.isFinite(n) && n > 0 ? Math.floor(n) : fallback
  return {
    apply: options.apply === true,
    prefix: options.prefix === undefined || options.prefix === "" ? undefined : options.prefix,
    grace: options.grace === undefined ? defaultGrace : Duration.decode(options.grace),
    pageSize: positive(options.pageSize, 1000),
    sampleSize: options.sampleSize === undefined ? 20 : Math.max(0, Math.floor(options.sampleSize))
  }
}

const isAfter = (at: DateTime.Utc | undefined, instant: DateTime.Utc): boolean =>
  at !== undefined && DateTime.greaterThan(at, instant)

const sessionId = (key: string, uploadId: string) => `${uploadId}\u0000${key}`

/** One key of the merge: on the bucket's side, the registry's, or both. */
interface Entry {
  readonly object: ObjectSummary | undefined
  readonly record: FileRecord | undefined
}

/** Keys in UTF-8 byte order, as S3 lists them. */
const keyOrder: Order.Order<string> = (a, b) => compareKeys(a, b) as -1 | 0 | 1

/** The stream, failing with `ListingOutOfOrder` at the first key not strictly after the one before. */
const inKeyOrder = <A, E, R>(
  source: ListingOutOfOrder["source"],
  stream: Stream.Stream<A, E, R>,
  keyOf: (a: A) => string
): Stream.Stream<A, E | ListingOutOfOrder, R> =>
  Stream.suspend(() => {
    let previous: string | undefined
    return Stream.mapChunksEffect(stream, (chunk) => {
      for (const a of chunk) {
        const key = keyOf(a)
        if (previous !== undefined && compareKeys(previous, key) >= 0) {
          return Effect.fail(
            new ListingOutOfOrder({
              source,
              previous,
              key,
              message: `the ${source} listing is not in ascending byte order of keys: "${key}" came after "${previous}"`
            })
          )
        }
        previous = key
      }
      return Effect.succeed(chunk)
    })
  })

/**
 * The registry's live records under `prefix`, page by page in byte order:
 * the key equal to the prefix first, then every key after it that still
 * starts with it (in byte order, those are contiguous).
 */
const registryRecords = (
  registry: FileRegistry["Type"],
  prefix: string | undefined,
  pageSize: number
): Stream.Stream<FileRecord, SqlError> =>
  Stream.paginateChunkEffect({ after: prefix ?? "", first: true }, ({ after, first }) =>
    Effect.gen(function*() {
      const exact = first && prefix !== undefined
        ? Option.toArray(yield* registry.get(prefix)).filter((r) => r.status !== "deleted")
        : []
      const rows = yield* registry.liveAfter(after, pageSize)
      const inside = prefix === undefined ? rows : rows.filter((r) => r.key.startsWith(prefix))
      const more = rows.length === pageSize && inside.length === rows.length
      return [
        Chunk.unsafeFromArray([...exact, ...inside]),
        more ? Option.some({ after: rows[rows.length - 1]!.key, first: false }) : Option.none()
      ] as const
    }))

/** Counts and samples, bounded. */
const makeTally = (sampleSize: number) => {
  let objectsScanned = 0
  let sessionsScanned = 0
  let youngObjects = 0
  let youngSessions = 0
  let youngRecords = 0
  let unknownCount = 0
  let unknownBytes = 0
  let orphanCount = 0
  let missingCount = 0
  let queued = 0
  let aborted = 0
  let abortFailures = 0
  const unknownSample: Array<UnknownObject> = []
  const orphanSample: Array<MultipartUploadSummary> = []
  const missingSample: Array<MissingObject> = []
  const keep = <A>(sample: Array<A>, items: ReadonlyArray<A>) => {
    for (const item of items) {
      if (sample.length >= sampleSize) return
      sample.push(item)
    }
  }
  return {
    get objectsScanned() {
      return objectsScanned
    },
    objectScanned: () => void objectsScanned++,
    sessionsScanned: (n: number) => void (sessionsScanned += n),
    youngObject: () => void youngObjects++,
    youngRecord: () => void youngRecords++,
    youngSessions: (n: number) => void (youngSessions += n),
    unknown: (found: ReadonlyArray<ObjectSummary>) => {
      unknownCount += found.length
      for (const o of found) unknownBytes += o.size
      keep(unknownSample, found.map((o) => ({ key: o.key, size: o.size, lastModified: o.lastModified })))
    },
    missing: (found: ReadonlyArray<FileRecord>) => {
      missingCount += found.length
      keep(
        missingSample,
        found.map((r) => ({
          key: r.key,
          status: r.status,
          size: r.size,
          createdBy: r.createdBy,
          uploadedAt: r.uploadedAt
        }))
      )
    },
    orphans: (found: ReadonlyArray<MultipartUploadSummary>) => {
      orphanCount += found.length
      keep(orphanSample, found)
    },
    queued: (n: number) => void (queued += n),
    aborted: () => void aborted++,
    abortFailed: () => void abortFailures++,
    progress: (phase: ReconcileProgress["phase"]): ReconcileProgress => ({
      phase,
      objectsScanned,
      sessionsScanned,
      unknownObjects: unknownCount,
      orphanSessions: orphanCount,
      missingObjects: missingCount
    }),
    report: (
      header: Pick<ReconcileReport, "applied" | "prefix" | "startedAt" | "cutoff">
    ): ReconcileReport => ({
      ...header,
      objectsScanned,
      sessionsScanned,
      withinGrace: { objects: youngObjects, sessions: youngSessions, records: youngRecords },
      unknownObjects: { count: unknownCount, bytes: unknownBytes, sample: unknownSample },
      orphanSessions: { count: orphanCount, sample: orphanSample },
      missingObjects: { count: missingCount, sample: missingSample },
      queued,
      aborted,
      abortFailures
    })
  }
}
