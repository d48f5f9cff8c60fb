/**
 * `reconcile` on the memory and filesystem backends, in-process, against
 * SQLite and PostgreSQL: every kind of finding in exact numbers, the grace
 * window, paging, prefixes, `--apply`, a listing out of order.
 *
 * The memory backend stamps objects and sessions with the Effect clock, so
 * these suites move the TestClock: old things are planted at 0, young ones
 * two hours later, and the run happens then (grace 1 hour by default).
 */
import { assert, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import { Reconciler } from "../../src/layers/Reconciler.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { allDialects } from "../support/databases.js"
import { makeClaim } from "../support/fixtures.js"
import { keyMaker, type OldPlan, openSessions, plantOld, plantYoung, sessionIds } from "./plant.js"
import {
  cliLayers,
  describeEachCliDialect,
  freshUrl,
  insertRecords,
  queuedKeys,
  runCli,
  runJson,
  storesAt
} from "./support.js"

const plan: OldPlan = {
  registered: 30,
  pendingClaims: 3,
  uploadedClaims: 2,
  queuedLive: 3,
  queuedDead: 2,
  unknown: 6,
  unknownWithDeletedRecord: 2,
  missing: 4,
  missingQueued: 2,
  deletedWithoutObject: 2,
  orphanSessions: 2,
  claimedSessions: 2,
  otherUploadIdSessions: 1,
  queuedSessions: 1
}

const young = { unknown: 3, sessions: 2, missing: 2 }

const keysOf = (sample: ReadonlyArray<{ key: string }>) => new Set(sample.map((s) => s.key))

describeEachCliDialect("reconcile (memory backend)", (dialect) => {
  it.scoped(
    "finds unknown objects, orphan uploads and missing objects in exact numbers; --apply acts on them",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const storage = yield* MemoryObjectStorage.make()
        const layers = cliLayers(url, storage, { deleteBatchSize: 7 })
        const inStores = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          effect.pipe(Effect.provideService(ObjectStorage, storage), Effect.provide(storesAt(url)))
        const nextKey = keyMaker("m/")

        const planted = yield* inStores(plantOld(plan, nextKey, yield* DateTime.now))
        yield* TestClock.adjust("2 hours")
        const fresh = yield* inStores(plantYoung(young, nextKey, yield* DateTime.now))

        const report = yield* runJson(["reconcile", "--sample", "100"], layers)
        assert.deepInclude(report, {
          applied: false,
          prefix: "",
          objectsScanned: planted.objects + fresh.objects,
          sessionsScanned: 8,
          withinGrace: { objects: 3, sessions: 2, records: 2 },
          queued: 0,
          aborted: 0,
          abortFailures: 0
        })
        assert.strictEqual(report.cutoff, DateTime.formatIso(DateTime.unsafeMake(3600_000)))
        assert.strictEqual(report.unknownObjects.count, 6)
        assert.strictEqual(report.unknownObjects.bytes, planted.unknownBytes)
        assert.deepStrictEqual(keysOf(report.unknownObjects.sample), planted.unknownKeys)
        assert.strictEqual(report.orphanSessions.count, 3)
        assert.deepStrictEqual(sessionIds(report.orphanSessions.sample), planted.orphanSessions)
        assert.strictEqual(report.missingObjects.count, 4)
        assert.deepStrictEqual(keysOf(report.missingObjects.sample), planted.missingKeys)

        // Paging changes nothing; the sample is bounded.
        assert.deepStrictEqual(yield* runJson(["reconcile", "--sample", "100", "--page-size", "3"], layers), report)
        const small = yield* runJson(["reconcile", "--sample", "2", "--page-size", "1"], layers)
        assert.strictEqual(small.unknownObjects.count, 6)
        assert.lengthOf(small.unknownObjects.sample, 2)
        assert.lengthOf(small.missingObjects.sample, 2)

        // A shorter grace reports the young ones too; a longer one nothing.
        const short = yield* runJson(["reconcile", "--grace", "0s"], layers)
        assert.deepInclude(short, { withinGrace: { objects: 0, sessions: 0, records: 0 } })
        assert.strictEqual(short.unknownObjects.count, 9)
        assert.strictEqual(short.orphanSessions.count, 5)
        assert.strictEqual(short.missingObjects.count, 6)
        const long = yield* runJson(["reconcile", "--grace", "3h"], layers)
        assert.strictEqual(long.unknownObjects.count + long.orphanSessions.count + long.missingObjects.count, 0)

        // The human report.
        const human = yield* runCli(["reconcile"], layers)
        assert.strictEqual(human.code, 0)
        assert.include(human.stdout, "Reconciliation (dry run) of the whole bucket; grace 1h")
        assert.match(human.stdout, /unknown objects +6 \(\d+ B\): --apply queues them for deletion \(reason orphaned\)/)
        assert.match(human.stdout, /orphan multipart uploads +3: --apply aborts them/)
        assert.match(
          human.stdout,
          /missing objects +4: registry rows whose object is gone \(reported only, never changed\)/
        )
        assert.include(human.stdout, "\nUnknown objects (first 6):\nKEY")
        assert.strictEqual((yield* runCli(["reconcile", "--fail-on-findings"], layers)).code, 3)
        assert.strictEqual((yield* runCli(["reconcile", "--grace", "3h", "--fail-on-findings"], layers)).code, 0)

        // --apply: the unknown objects are queued (reason orphaned), the orphan sessions aborted.
        const applied = yield* runJson(["reconcile", "--apply"], layers)
        assert.deepInclude(applied, { applied: true, queued: 6, aborted: 3, abortFailures: 0 })
        assert.deepStrictEqual(yield* inStores(queuedKeys("orphaned")), planted.unknownKeys)
        assert.deepStrictEqual(
          yield* inStores(openSessions),
          new Set([...planted.knownSessions, ...fresh.sessions])
        )
        for (const key of planted.unknownKeys) assert.isFalse(yield* Effect.isFailure(storage.statObject(key)))

        // A second run finds nothing new; missing objects are never "fixed".
        const second = yield* runJson(["reconcile", "--apply"], layers)
        assert.deepInclude(second, { queued: 0, aborted: 0 })
        assert.strictEqual(second.unknownObjects.count, 0)
        assert.strictEqual(second.orphanSessions.count, 0)
        assert.strictEqual(second.missingObjects.count, 4)

        // The worker deletes what was queued; the bucket then agrees with the database.
        const drained = yield* runJson(["drain"], layers)
        assert.strictEqual(drained.deleted, 6 + plan.queuedLive + plan.missingQueued + plan.queuedSessions)
        for (const key of planted.unknownKeys) assert.isTrue(yield* Effect.isFailure(storage.statObject(key)))
        const third = yield* runJson(["reconcile"], layers)
        assert.strictEqual(third.objectsScanned, planted.objects + fresh.objects - 6 - plan.queuedLive)
        assert.strictEqual(third.unknownObjects.count, 0)
        assert.strictEqual(third.orphanSessions.count, 0)
        assert.strictEqual(third.missingObjects.count, 4)
      }),
    60_000
  )

  it.scoped(
    "a prefix limits every pass to the keys under it, the prefix itself included",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const storage = yield* MemoryObjectStorage.make()
        const layers = cliLayers(url, storage)
        const now = yield* DateTime.now
        for (const key of ["doc", "docs", "docs/1", "docs/2", "docsX", "e/1", "dod"]) {
          yield* storage.putObject({ key, body: new Uint8Array(1) })
        }
        const multipart = Option.getOrThrow(storage.multipart)
        yield* multipart.initMultipart({ key: "docs/session" })
        yield* multipart.initMultipart({ key: "x/session" })
        yield* insertRecords([
          { key: "docs", status: "uploaded", size: 1, uploadedAt: now },
          { key: "docs/2", status: "adopted", size: 1, uploadedAt: now },
          { key: "docs/gone", status: "uploaded", size: 1, uploadedAt: now },
          { key: "dod", status: "uploaded", size: 1, uploadedAt: now },
          { key: "doe", status: "uploaded", size: 1, uploadedAt: now }
        ]).pipe(Effect.provide(storesAt(url)))
        yield* TestClock.adjust("2 hours")

        const docs = yield* runJson(["reconcile", "--prefix", "docs", "--page-size", "1"], layers)
        assert.deepInclude(docs, { prefix: "docs", objectsScanned: 4, sessionsScanned: 1 })
        assert.deepStrictEqual(keysOf(docs.unknownObjects.sample), new Set(["docs/1", "docsX"]))
        assert.deepStrictEqual(keysOf(docs.missingObjects.sample), new Set(["docs/gone"]))
        assert.strictEqual(docs.orphanSessions.count, 1)
        const all = yield* runJson(["reconcile"], layers)
        assert.deepStrictEqual(keysOf(all.unknownObjects.sample), new Set(["doc", "docs/1", "docsX", "e/1"]))
        assert.deepStrictEqual(keysOf(all.missingObjects.sample), new Set(["docs/gone", "doe"]))
        assert.strictEqual(all.orphanSessions.count, 2)
        const applied = yield* runJson(["reconcile", "--prefix", "docs/", "--apply"], layers)
        assert.deepInclude(applied, { queued: 1, aborted: 1 })
        assert.deepStrictEqual(
          yield* queuedKeys("orphaned").pipe(Effect.provide(storesAt(url))),
          new Set(["docs/1"])
        )
      }),
    60_000
  )

  it.scoped(
    "a listing out of byte order stops the run before it reports or queues anything",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const inner = yield* MemoryObjectStorage.make()
        for (const key of ["a", "b", "c"]) yield* inner.putObject({ key, body: new Uint8Array(1) })
        const reversed = {
          ...inner,
          listObjects: (prefix?: string) =>
            Stream.unwrap(
              Effect.map(Stream.runCollect(inner.listObjects(prefix)), (all) => Stream.fromIterable([...all].reverse()))
            )
        }
        yield* Effect.provide(Effect.void, storesAt(url))
        yield* TestClock.adjust("2 hours")
        const result = yield* runCli(["reconcile", "--apply"], cliLayers(url, reversed))
        assert.strictEqual(result.code, 1)
        assert.include(result.stderr, "ListingOutOfOrder")
        assert.include(result.stderr, `"b" came after "c"`)
        assert.strictEqual((yield* queuedKeys("orphaned").pipe(Effect.provide(storesAt(url)))).size, 0)
      }),
    60_000
  )

  it.scoped("Reconciler.run reports progress once per page and at the end", () =>
    Effect.gen(function*() {
      const url = yield* freshUrl(dialect)
      const storage = yield* MemoryObjectStorage.make()
      for (let i = 0; i < 25; i++) {
        yield* storage.putObject({ key: `p/${String(i).padStart(2, "0")}`, body: new Uint8Array(1) })
      }
      yield* TestClock.adjust("2 hours")
      const seen: Array<string> = []
      const report = yield* Effect.flatMap(Reconciler, (r) =>
        r.run({
          pageSize: 10,
          onProgress: (p) => Effect.sync(() => void seen.push(`${p.phase}:${p.objectsScanned}:${p.unknownObjects}`))
        })).pipe(
          Effect.provide(Reconciler.Default),
          Effect.provideService(ObjectStorage, storage),
          Effect.provide(storesAt(url))
        )
      assert.strictEqual(report.unknownObjects.count, 25)
      assert.deepStrictEqual(seen, ["objects:10:0", "objects:20:10", "objects:25:25", "done:25:25"])
    }), 60_000)
  // MySQL/MariaDB too: its binary collation must give the same byte order.
}, allDialects)

describeEachCliDialect("reconcile (filesystem backend)", (dialect) => {
  it.scoped(
    "old files nobody knows are reported and, with --apply, deleted by the next drain",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const root = mkdtempSync(join(tmpdir(), "effect-storage-reconcile-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
        const storage = yield* FileSystemObjectStorage.make({ root })
        const layers = cliLayers(url, storage)
        const inStores = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          effect.pipe(Effect.provideService(ObjectStorage, storage), Effect.provide(storesAt(url)))
        // File times are real: the test clock follows the wall clock here.
        const realNow = Date.now()
        yield* TestClock.setTime(realNow - 2 * 3600_000)
        const old = DateTime.unsafeMake(realNow - 2 * 3600_000)
        const nextKey = (kind: string) => `f/${kind}-${Math.random().toString(36).slice(2, 8)}.bin`
        const registered = [nextKey("reg"), nextKey("reg"), nextKey("reg")]
        const unknown = [nextKey("unknown"), nextKey("unknown")]
        for (const key of [...registered, ...unknown]) {
          yield* storage.putObject({ key, body: new Uint8Array([1, 2]) })
          utimesSync(join(root, key), (realNow - 2 * 3600_000) / 1000, (realNow - 2 * 3600_000) / 1000)
        }
        yield* storage.putObject({ key: "f/young.bin", body: new Uint8Array([1]) })
        const multipart = Option.getOrThrow(storage.multipart)
        const orphan = yield* multipart.initMultipart({ key: "f/orphan-session.bin" })
        const carried = yield* multipart.initMultipart({ key: "f/carried-session.bin" })
        // The backend stamps sessions with the wall clock: age them in their manifests.
        for (const { uploadId } of [orphan, carried]) {
          const manifest = join(root, ".multipart", uploadId, "manifest.json")
          writeFileSync(
            manifest,
            JSON.stringify({ ...JSON.parse(readFileSync(manifest, "utf8")), initiated: realNow - 2 * 3600_000 })
          )
        }
        yield* inStores(Effect.gen(function*() {
          yield* insertRecords([
            ...registered.map((key) => ({ key, status: "uploaded" as const, size: 2, uploadedAt: old })),
            { key: "f/gone.bin", status: "adopted", size: 9, uploadedAt: old }
          ])
          yield* (yield* ClaimStore).create(makeClaim({ key: carried.key, uploadId: carried.uploadId, partCount: 2 }))
        }))
        yield* multipart.initMultipart({ key: "f/young-session.bin" })
        yield* TestClock.setTime(Date.now())

        const report = yield* runJson(["reconcile", "--apply"], layers)
        assert.deepInclude(report, {
          objectsScanned: 6,
          sessionsScanned: 3,
          withinGrace: { objects: 1, sessions: 1, records: 0 },
          queued: 2,
          aborted: 1
        })
        assert.deepStrictEqual(keysOf(report.unknownObjects.sample), new Set(unknown))
        assert.strictEqual(report.unknownObjects.bytes, 4)
        assert.deepStrictEqual(sessionIds(report.orphanSessions.sample), sessionIds([orphan]))
        assert.deepStrictEqual(keysOf(report.missingObjects.sample), new Set(["f/gone.bin"]))
        assert.deepInclude(report.missingObjects.sample[0], { status: "adopted", size: 9, createdBy: "alice" })

        assert.deepInclude(yield* runJson(["drain"], layers), { deleted: 2 })
        const after = yield* runJson(["reconcile"], layers)
        assert.deepInclude(after, { objectsScanned: 4, sessionsScanned: 2 })
        assert.strictEqual(after.unknownObjects.count + after.orphanSessions.count, 0)
        assert.strictEqual(after.missingObjects.count, 1)
      }),
    60_000
  )
})
