/**
 * `reconcile` over 10,000 objects on a real S3 server (Ceph RGW), against
 * SQLite and PostgreSQL, with planted orphans of every kind and young
 * objects inside the grace window; then `--apply`, a second run that finds
 * nothing new, a drain, and a third run.
 *
 * S3 stamps objects and sessions with the server's clock, so the grace
 * window is the time since a boundary: everything old is planted before
 * it, the young things two seconds after it.
 */
import { DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { assert, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { inject } from "vitest"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { missingServer } from "../support/databases.js"
import type { S3Server } from "../support/probe.js"
import { keyMaker, type OldPlan, openSessions, plantOld, plantYoung, sessionIds } from "./plant.js"
import { cliLayers, describeEachCliDialect, freshUrl, queuedKeys, runCli, runJson, storesAt } from "./support.js"

const plan: OldPlan = {
  registered: 9_000,
  pendingClaims: 200,
  uploadedClaims: 100,
  queuedLive: 150,
  queuedDead: 50,
  unknown: 400,
  unknownWithDeletedRecord: 50,
  missing: 40,
  missingQueued: 10,
  deletedWithoutObject: 20,
  orphanSessions: 5,
  claimedSessions: 2,
  otherUploadIdSessions: 1,
  queuedSessions: 1
}

const young = { unknown: 100, sessions: 2, missing: 10 }

const keysOf = (sample: ReadonlyArray<{ key: string }>) => new Set(sample.map((s) => s.key))

/** A backend on a new bucket, emptied and removed with the scope. */
const scratchBucket = (server: S3Server) =>
  Effect.gen(function*() {
    const bucket = `es-cli-${randomBytes(6).toString("hex")}`
    const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }
    const storage = yield* S3ObjectStorage.make({
      bucket,
      endpoint: server.endpoint,
      region: "us-east-1",
      credentials,
      forcePathStyle: true,
      createBucket: true
    })
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const multipart = Option.getOrThrow(storage.multipart)
        yield* multipart.listMultipartUploads().pipe(
          Stream.runForEach((u) => multipart.abortMultipart(u))
        )
        const keys = yield* Stream.runCollect(Stream.map(storage.listObjects(), (o) => o.key))
        yield* storage.deleteObjects(keys)
        yield* Effect.promise(async () => {
          const client = new S3Client({
            endpoint: server.endpoint,
            region: "us-east-1",
            forcePathStyle: true,
            credentials
          })
          await client.send(new DeleteBucketCommand({ Bucket: bucket }))
          client.destroy()
        })
      }).pipe(Effect.orDie)
    )
    return storage
  })

const server = inject("servers").s3.ceph

if (server === undefined) {
  missingServer("reconcile (S3, 10,000 objects)", "S3 (Ceph RGW)")
} else {
  describeEachCliDialect("reconcile (S3 on Ceph RGW, 10,000 objects)", (dialect) => {
    it.scopedLive(
      "exact findings, --apply, nothing new on a second run, clean after a drain",
      () =>
        Effect.gen(function*() {
          const url = yield* freshUrl(dialect)
          const storage = yield* scratchBucket(server)
          const layers = cliLayers(url, storage, { deleteBatchSize: 200, deleteConcurrency: 32 })
          const inStores = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
            effect.pipe(Effect.provideService(ObjectStorage, storage), Effect.provide(storesAt(url)))
          const nextKey = keyMaker("files/")
          const timings: Record<string, number> = {}
          const timed = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
            Effect.gen(function*() {
              const start = Date.now()
              const a = yield* effect
              timings[name] = Date.now() - start
              return a
            })

          const old = DateTime.subtract(yield* DateTime.now, { hours: 1 })
          const planted = yield* timed("plant 9,900 objects", inStores(plantOld(plan, nextKey, old, 96)))
          yield* Effect.sleep("2 seconds")
          const boundary = Date.now()
          yield* Effect.sleep("2 seconds")
          const fresh = yield* inStores(plantYoung(young, nextKey, yield* DateTime.now))
          assert.strictEqual(planted.objects + fresh.objects, 10_000)
          const grace = () => `${Date.now() - boundary}ms`

          const report = yield* timed(
            "reconcile (dry run)",
            runJson(["reconcile", "--grace", grace(), "--sample", "1000"], layers)
          )
          assert.deepInclude(report, {
            applied: false,
            objectsScanned: 10_000,
            sessionsScanned: 11,
            withinGrace: { objects: 100, sessions: 2, records: 10 },
            queued: 0,
            aborted: 0
          })
          assert.strictEqual(report.unknownObjects.count, 400)
          assert.strictEqual(report.unknownObjects.bytes, planted.unknownBytes)
          assert.deepStrictEqual(keysOf(report.unknownObjects.sample), planted.unknownKeys)
          assert.strictEqual(report.orphanSessions.count, 6)
          assert.deepStrictEqual(sessionIds(report.orphanSessions.sample), planted.orphanSessions)
          assert.strictEqual(report.missingObjects.count, 40)
          assert.deepStrictEqual(keysOf(report.missingObjects.sample), planted.missingKeys)

          // Smaller pages, same answer; the progress line reaches the end.
          const paged = yield* timed(
            "reconcile (page size 100, progress)",
            runCli(["reconcile", "--grace", grace(), "--page-size", "100", "--json", "--progress"], layers)
          )
          assert.strictEqual(paged.code, 0)
          const pagedReport = JSON.parse(paged.stdout)
          assert.strictEqual(pagedReport.unknownObjects.count, 400)
          assert.strictEqual(pagedReport.orphanSessions.count, 6)
          assert.strictEqual(pagedReport.missingObjects.count, 40)
          assert.match(
            paged.stderr,
            /reconcile 10,000 objects, 11 sessions; unknown 400, orphan sessions 6, missing 40/
          )

          // --apply queues exactly the unknown objects and aborts the orphan sessions.
          const applied = yield* timed(
            "reconcile --apply",
            runJson(["reconcile", "--apply", "--grace", grace()], layers)
          )
          assert.deepInclude(applied, { applied: true, queued: 400, aborted: 6, abortFailures: 0 })
          assert.deepStrictEqual(yield* inStores(queuedKeys("orphaned")), planted.unknownKeys)
          assert.deepStrictEqual(yield* inStores(openSessions), new Set([...planted.knownSessions, ...fresh.sessions]))

          const second = yield* timed("second reconcile", runJson(["reconcile", "--apply", "--grace", grace()], layers))
          assert.deepInclude(second, {
            objectsScanned: 10_000,
            withinGrace: { objects: 100, sessions: 2, records: 10 },
            queued: 0,
            aborted: 0
          })
          assert.strictEqual(second.unknownObjects.count, 0)
          assert.strictEqual(second.orphanSessions.count, 0)
          assert.strictEqual(second.missingObjects.count, 40)

          // The worker deletes the queued objects; the bucket then agrees with the database.
          const drained = yield* timed("drain", runJson(["drain"], layers))
          assert.deepInclude(drained, { deleted: 400 + 150 + 10 + 1, deferred: 0, deadLettered: 0 })
          const third = yield* timed("third reconcile", runJson(["reconcile", "--grace", grace()], layers))
          assert.strictEqual(third.objectsScanned, 10_000 - 400 - 150)
          assert.strictEqual(third.unknownObjects.count, 0)
          assert.strictEqual(third.orphanSessions.count, 0)
          assert.strictEqual(third.missingObjects.count, 40)
          console.info(`[reconcile S3 ${dialect}] ${JSON.stringify(timings)}`)
        }),
      300_000
    )
  })
}
