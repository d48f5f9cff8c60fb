/**
 * Plants a bucket and a database that disagree in every way the reconciler
 * knows, in given numbers, and answers what it should find.
 *
 * Keys mix ASCII, upper case, spaces, accents, CJK, a fullwidth letter
 * (U+FF21) and an emoji (U+1F600): UTF-16 code-unit order and UTF-8 byte
 * order disagree between the last two, so a merge in the wrong order would
 * show up as registered objects reported both unknown and missing.
 */
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { PendingDelete } from "../../src/schema/Models.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { makeClaim } from "../support/fixtures.js"
import { insertRecords, type RecordRow } from "./support.js"

/** How many of each. */
export interface OldPlan {
  /** Objects with a live registry row (two thirds `uploaded`, the rest `adopted`). */
  readonly registered: number
  /** Objects of pending claims (completed on the backend, not yet marked). */
  readonly pendingClaims: number
  /** Objects of uploaded claims without a registry row. */
  readonly uploadedClaims: number
  /** Objects queued for deletion, live rows. */
  readonly queuedLive: number
  /** Objects queued for deletion, dead-lettered rows. */
  readonly queuedDead: number
  /** Objects nobody knows. */
  readonly unknown: number
  /** Of `unknown`, how many have a registry row marked deleted (before the run). */
  readonly unknownWithDeletedRecord: number
  /** Live registry rows without an object. */
  readonly missing: number
  /** Live registry rows without an object, queued for deletion (not reported). */
  readonly missingQueued: number
  /** Deleted registry rows without an object (not reported). */
  readonly deletedWithoutObject: number
  /** Open multipart uploads nobody carries. */
  readonly orphanSessions: number
  /** Open multipart uploads of pending claims carrying their upload id. */
  readonly claimedSessions: number
  /** Open multipart uploads whose key has a pending claim with another upload id (orphans too). */
  readonly otherUploadIdSessions: number
  /** Open multipart uploads queued for deletion with their upload id. */
  readonly queuedSessions: number
}

/** What was planted, for the assertions. */
export interface Planted {
  readonly objects: number
  readonly unknownKeys: Set<string>
  readonly unknownBytes: number
  readonly missingKeys: Set<string>
  readonly orphanSessions: Set<string>
  readonly knownSessions: Set<string>
}

const variants = ["a", "B", "é", "z z", "日本", "😀", "\uFF21", "a-b", "Z", "ü"]

/** Keys spread over the variants so that every kind interleaves with the others. */
export const keyMaker = (root: string) => {
  let n = 0
  return (kind: string) => {
    const i = n++
    return `${root}${variants[i % variants.length]}/${(i * 7919 % 100_003).toString(36)}-${kind}-${i}.bin`
  }
}

const sizeOf = (key: string) => 1 + (key.length % 7)

const sessionId = (key: string, uploadId: string) => `${key} ${uploadId}`

const job = (key: string, uploadId: string, now: DateTime.Utc, id: string) =>
  new PendingDelete({ id, key, uploadId, reason: "deleted", attempts: 0, nextAttemptAt: now, createdAt: now })

/**
 * Plants `plan` with registry and queue times `at`; the objects and
 * sessions get the backend's own time (the caller controls it).
 */
export const plantOld = (plan: OldPlan, nextKey: (kind: string) => string, at: DateTime.Utc, concurrency = 64) =>
  Effect.gen(function*() {
    const storage = yield* ObjectStorage
    const claims = yield* ClaimStore
    const queue = yield* DeleteQueue
    const multipart = Option.getOrThrow(storage.multipart)
    const keys = (n: number, kind: string) => Array.from({ length: n }, () => nextKey(kind))

    const registered = keys(plan.registered, "reg")
    const pending = keys(plan.pendingClaims, "pending")
    const uploaded = keys(plan.uploadedClaims, "uploaded")
    const queuedLive = keys(plan.queuedLive, "qlive")
    const queuedDead = keys(plan.queuedDead, "qdead")
    const unknown = keys(plan.unknown, "unknown")
    const missing = keys(plan.missing, "missing")
    const missingQueued = keys(plan.missingQueued, "missingq")
    const deletedWithout = keys(plan.deletedWithoutObject, "gone")
    const objects = [...registered, ...pending, ...uploaded, ...queuedLive, ...queuedDead, ...unknown]

    yield* Effect.forEach(objects, (key) => storage.putObject({ key, body: new Uint8Array(sizeOf(key)) }), {
      concurrency,
      discard: true
    })

    const record = (key: string, status: RecordRow["status"], deletedAt?: DateTime.Utc): RecordRow => ({
      key,
      status,
      size: sizeOf(key),
      uploadedAt: at,
      deletedAt
    })
    yield* insertRecords([
      ...registered.map((key, i) => record(key, i % 3 === 2 ? "adopted" : "uploaded")),
      ...unknown.slice(0, plan.unknownWithDeletedRecord).map((key) => record(key, "deleted", at)),
      ...missing.map((key, i) => record(key, i % 3 === 2 ? "adopted" : "uploaded")),
      ...missingQueued.map((key) => record(key, "uploaded")),
      ...deletedWithout.map((key) => record(key, "deleted", at))
    ])
    for (const key of pending) yield* claims.create(makeClaim({ key, size: sizeOf(key) }))
    for (const key of uploaded) yield* claims.create(makeClaim({ key, size: sizeOf(key), status: "uploaded" }))
    let jobs = 0
    const jobId = () => `plant-${jobs++}-${Math.random().toString(36).slice(2)}`
    yield* queue.enqueue([...queuedLive, ...missingQueued].map((key) => job(key, "", at, jobId())))
    const dead = queuedDead.map((key) => job(key, "", at, jobId()))
    yield* queue.enqueue(dead)
    for (const row of dead) yield* queue.deadLetter(row.id, "access_denied", at)

    // Sessions.
    const orphanSessions = new Set<string>()
    const knownSessions = new Set<string>()
    for (const key of keys(plan.orphanSessions, "session-orphan")) {
      const s = yield* multipart.initMultipart({ key })
      orphanSessions.add(sessionId(s.key, s.uploadId))
    }
    for (const key of keys(plan.claimedSessions, "session-claimed")) {
      const s = yield* multipart.initMultipart({ key })
      yield* claims.create(makeClaim({ key, uploadId: s.uploadId, partCount: 2 }))
      knownSessions.add(sessionId(s.key, s.uploadId))
    }
    for (const key of keys(plan.otherUploadIdSessions, "session-other")) {
      const s = yield* multipart.initMultipart({ key })
      yield* claims.create(makeClaim({ key, uploadId: `${s.uploadId}-other`, partCount: 2 }))
      orphanSessions.add(sessionId(s.key, s.uploadId))
    }
    for (const key of keys(plan.queuedSessions, "session-queued")) {
      const s = yield* multipart.initMultipart({ key })
      yield* queue.enqueue([job(key, s.uploadId, at, jobId())])
      knownSessions.add(sessionId(s.key, s.uploadId))
    }

    return {
      objects: objects.length,
      unknownKeys: new Set(unknown),
      unknownBytes: unknown.reduce((sum, key) => sum + sizeOf(key), 0),
      missingKeys: new Set(missing),
      orphanSessions,
      knownSessions
    } satisfies Planted
  })

/** Young things: unknown objects, sessions nobody carries, live rows without objects. */
export const plantYoung = (
  plan: { readonly unknown: number; readonly sessions: number; readonly missing: number },
  nextKey: (kind: string) => string,
  at: DateTime.Utc,
  concurrency = 64
) =>
  Effect.gen(function*() {
    const storage = yield* ObjectStorage
    const multipart = Option.getOrThrow(storage.multipart)
    const unknown = Array.from({ length: plan.unknown }, () => nextKey("young"))
    yield* Effect.forEach(unknown, (key) => storage.putObject({ key, body: new Uint8Array(sizeOf(key)) }), {
      concurrency,
      discard: true
    })
    const sessions = new Set<string>()
    for (let i = 0; i < plan.sessions; i++) {
      const s = yield* multipart.initMultipart({ key: nextKey("young-session") })
      sessions.add(sessionId(s.key, s.uploadId))
    }
    yield* insertRecords(
      Array.from({ length: plan.missing }, () => nextKey("young-missing")).map((key) => ({
        key,
        status: "uploaded" as const,
        size: sizeOf(key),
        uploadedAt: at
      }))
    )
    return { objects: unknown.length, sessions }
  })

/** The open sessions, as `key uploadId`. */
export const openSessions = Effect.gen(function*() {
  const storage = yield* ObjectStorage
  const out = new Set<string>()
  yield* Stream.runForEach(
    Option.getOrThrow(storage.multipart).listMultipartUploads(),
    (s) => Effect.sync(() => void out.add(sessionId(s.key, s.uploadId)))
  )
  return out
})

/** A sample's sessions as `key uploadId`. */
export const sessionIds = (sample: ReadonlyArray<{ key: string; uploadId: string }>) =>
  new Set(sample.map((s) => sessionId(s.key, s.uploadId)))
