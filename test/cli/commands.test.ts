/**
 * The CLI's commands, run in-process against SQLite and PostgreSQL: migrate,
 * status, dead-letters list/requeue/purge, claims list, sweep and drain,
 * with their JSON and human outputs and exit codes.
 */
import { assert, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import { PendingDelete } from "../../src/schema/Models.js"
import { ClaimConsumer } from "../../src/services/ClaimConsumer.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { FileRegistry } from "../../src/services/FileRegistry.js"
import { completeClaim, makeClaim, unique } from "../support/fixtures.js"
import { cliLayers, describeEachCliDialect, freshUrl, runCli, runJson, storesAt } from "./support.js"

const minutes = (n: number) => n * 60_000

const job = (
  key: string,
  nextAttemptAt: DateTime.Utc,
  fields: Partial<ConstructorParameters<typeof PendingDelete>[0]> = {}
) =>
  new PendingDelete({
    id: unique("job"),
    key,
    uploadId: "",
    reason: "deleted",
    attempts: 0,
    nextAttemptAt,
    createdAt: nextAttemptAt,
    ...fields
  })

describeEachCliDialect("CLI commands", (dialect) => {
  it.scopedLive(
    "migrate creates the tables once; other commands refuse an unmigrated database",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const layers = cliLayers(url, yield* MemoryObjectStorage.make())

        const refused = yield* runCli(["status"], layers)
        assert.strictEqual(refused.code, 5)
        assert.include(refused.stderr, "run `effect-storage migrate` first")
        assert.strictEqual(refused.stdout, "")

        const first = yield* runJson<{ applied: Array<{ name: string }>; current: Array<unknown> }>(["migrate"], layers)
        assert.deepStrictEqual(first.applied.map((m) => m.name), [
          "create_storage_tables",
          "create_event_outbox",
          "create_file_registry",
          "registry_adopted",
          "create_upload_tail"
        ])
        const again = yield* runJson<{ applied: Array<unknown>; current: Array<unknown> }>(["migrate"], layers)
        assert.deepStrictEqual(again.applied, [])
        assert.strictEqual(again.current.length, 5)
        const human = yield* runCli(["migrate"], layers)
        assert.strictEqual(human.code, 0)
        assert.strictEqual(human.stdout, "Schema up to date (5 migrations).\n")
        assert.strictEqual((yield* runCli(["status"], layers)).code, 0)
      }),
    60_000
  )

  it.scopedLive(
    "status: queue depth, due rows and the oldest, dead letters, claims and registry with bytes",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const layers = cliLayers(url, yield* MemoryObjectStorage.make())
        const now = yield* DateTime.now
        const ago = (ms: number) => DateTime.subtract(now, { millis: ms })
        yield* Effect.gen(function*() {
          const queue = yield* DeleteQueue
          const claims = yield* ClaimStore
          yield* queue.enqueue([
            job("q/due-1", ago(minutes(10))),
            job("q/due-2", ago(minutes(3))),
            job("q/due-3", ago(minutes(1))),
            job("q/later-1", DateTime.add(now, { minutes: 30 })),
            job("q/later-2", DateTime.add(now, { minutes: 60 }))
          ])
          const dead = job("q/dead", ago(minutes(20)))
          yield* queue.enqueue([dead])
          yield* queue.deadLetter(dead.id, "access_denied", now)
          yield* claims.create(makeClaim({ size: 100 }))
          yield* claims.create(makeClaim({ size: 200 }))
          const uploaded = makeClaim({ size: 1000 })
          yield* claims.create(uploaded)
          yield* completeClaim(uploaded)
          const adopted = makeClaim({ size: 5000 })
          yield* claims.create(adopted)
          yield* completeClaim(adopted)
          yield* (yield* ClaimConsumer).consumeMany({ id: adopted.createdBy }, [adopted.key])
        }).pipe(Effect.provide(storesAt(url)))

        const status = yield* runJson(["status"], layers)
        assert.deepInclude(status.queue, { depth: 5, due: 3, dead: 1 })
        assert.strictEqual(status.queue.oldestDue, DateTime.formatIso(ago(minutes(10))))
        assert.isAtLeast(status.queue.oldestDueAgeSeconds, 600)
        assert.isBelow(status.queue.oldestDueAgeSeconds, 660)
        assert.deepStrictEqual(status.claims, {
          pending: { count: 2, bytes: 300 },
          unadopted: { count: 1, bytes: 1000 }
        })
        assert.deepStrictEqual(status.registry, {
          uploaded: { count: 1, bytes: 1000 },
          adopted: { count: 1, bytes: 5000 },
          deleted: { count: 0, bytes: 0 }
        })

        const human = yield* runCli(["status"], layers)
        assert.strictEqual(human.code, 0)
        assert.match(
          human.stdout,
          /^Delete queue\n {2}depth +5\n {2}due +3\n {2}oldest due +\S+Z \(10m( \d+s)? ago\)\n {2}dead letters +1\n/
        )
        assert.include(human.stdout, "Claims\n  pending    2 (300 B)\n  unadopted  1 (1000 B)\n")
        assert.include(human.stdout, "  adopted   1 (4.9 KiB)\n")
      }),
    60_000
  )

  it.scopedLive(
    "dead-letters: list, requeue by id, purge by id or --all with --yes; usage errors exit 2",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const layers = cliLayers(url, yield* MemoryObjectStorage.make())
        const now = yield* DateTime.now
        const jobs = [0, 1, 2, 3].map((i) => job(`dl/${i}.bin`, DateTime.subtract(now, { minutes: 10 - i })))
        yield* Effect.gen(function*() {
          const queue = yield* DeleteQueue
          yield* queue.enqueue([...jobs, job("dl/live.bin", now)])
          for (const [i, j] of jobs.entries()) {
            yield* queue.deadLetter(
              j.id,
              i === 0 ? "access_denied" : "bucket_not_found",
              DateTime.add(now, { seconds: i })
            )
          }
        }).pipe(Effect.provide(storesAt(url)))

        const listed = yield* runJson<Array<{ id: string; key: string; attempts: number; lastError: string }>>(
          ["dead-letters", "list"],
          layers
        )
        assert.deepStrictEqual(listed.map((row) => row.id), jobs.map((j) => j.id))
        assert.deepInclude(listed[0]!, { key: "dl/0.bin", attempts: 1, lastError: "access_denied" })
        assert.lengthOf(yield* runJson(["dead-letters", "list", "--limit", "2"], layers), 2)
        const table = yield* runCli(["dead-letters", "list"], layers)
        assert.match(table.stdout, /^ID +KEY +REASON +ATTEMPTS +DEAD SINCE +LAST ERROR\n/)
        assert.include(table.stdout, "dl/3.bin")

        for (const args of [["requeue"], ["purge"], ["requeue", "--all", "--id", jobs[0]!.id], ["purge", "--all"]]) {
          const wrong = yield* runCli(["dead-letters", ...args], layers)
          assert.strictEqual(wrong.code, 2, args.join(" "))
          assert.match(wrong.stderr, /^usage: /)
        }
        assert.strictEqual((yield* runCli(["dead-letters"], layers)).code, 2)

        assert.deepStrictEqual(yield* runJson(["dead-letters", "requeue", "--id", jobs[0]!.id], layers), {
          requeued: 1
        })
        assert.deepStrictEqual(
          yield* runJson(["dead-letters", "purge", "--id", jobs[1]!.id, "--id", jobs[2]!.id], layers),
          { purged: 2 }
        )
        assert.deepStrictEqual(yield* runJson(["dead-letters", "purge", "--all", "--yes"], layers), { purged: 1 })
        assert.deepStrictEqual(yield* runJson(["dead-letters", "list"], layers), [])
        const requeued = yield* Effect.flatMap(DeleteQueue, (q) => q.get(jobs[0]!.id)).pipe(
          Effect.provide(storesAt(url))
        )
        assert.strictEqual(Option.getOrThrow(requeued).attempts, 0)
        assert.isUndefined(Option.getOrThrow(requeued).deadAt)
        const status = yield* runJson(["status"], layers)
        assert.deepInclude(status.queue, { depth: 2, dead: 0 })
        assert.strictEqual(
          (yield* runCli(["dead-letters", "requeue", "--all"], layers)).stdout,
          "Requeued 0 dead letter(s); the delete worker retries them now.\n"
        )
      }),
    60_000
  )

  it.scopedLive(
    "claims list: newest first, by owner and status, limited; a bad status is a usage error",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const layers = cliLayers(url, yield* MemoryObjectStorage.make())
        const now = yield* DateTime.now
        const at = (m: number) => DateTime.add(now, { minutes: m })
        const a1 = makeClaim({ createdBy: "alice", createdAt: at(-30), expiresAt: at(-10) })
        const a2 = makeClaim({ createdBy: "alice", createdAt: at(-20), expiresAt: at(60) })
        const b1 = makeClaim({ createdBy: "bob", createdAt: at(-10), expiresAt: at(60), size: 2048 })
        yield* Effect.gen(function*() {
          const claims = yield* ClaimStore
          for (const claim of [a1, a2, b1]) yield* claims.create(claim)
          yield* completeClaim(a2)
        }).pipe(Effect.provide(storesAt(url)))

        const ids = (rows: ReadonlyArray<{ id: string }>) => rows.map((row) => row.id)
        assert.deepStrictEqual(ids(yield* runJson(["claims", "list"], layers)), [b1.id, a2.id, a1.id])
        assert.deepStrictEqual(ids(yield* runJson(["claims", "list", "--owner", "alice"], layers)), [a2.id, a1.id])
        assert.deepStrictEqual(ids(yield* runJson(["claims", "list", "--status", "uploaded"], layers)), [a2.id])
        assert.deepStrictEqual(
          ids(yield* runJson(["claims", "list", "--owner", "alice", "--status", "pending"], layers)),
          [a1.id]
        )
        assert.deepStrictEqual(ids(yield* runJson(["claims", "list", "--limit", "1"], layers)), [b1.id])
        const [first] = yield* runJson(["claims", "list", "--limit", "1"], layers)
        assert.deepInclude(first, { key: b1.key, owner: "bob", status: "pending", size: 2048 })

        const table = yield* runCli(["claims", "list"], layers)
        assert.match(table.stdout, /^ID +KEY +OWNER +STATUS +SIZE +CREATED +EXPIRES\n/)
        assert.include(table.stdout, "pending (expired)")
        assert.include(table.stdout, "2.0 KiB")
        assert.strictEqual((yield* runCli(["claims", "list", "--status", "done"], layers)).code, 2)
        assert.strictEqual((yield* runCli(["claims", "list", "--limit", "many"], layers)).code, 2)
      }),
    60_000
  )

  it.scopedLive(
    "sweep: one run recovers an assembled upload and queues an abandoned one",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const storage = yield* MemoryObjectStorage.make({ partSize: 5 })
        const layers = cliLayers(url, storage, { sweepInterval: "1 second" })
        const now = yield* DateTime.now
        const expired = DateTime.subtract(now, { hours: 1 })
        // Assembled on the backend, but the completion's bookkeeping never ran.
        const multipart = Option.getOrThrow(storage.multipart)
        const assembledKey = `priv/${unique("assembled")}.bin`
        const session = yield* multipart.initMultipart({ key: assembledKey })
        const part = yield* multipart.putPart({ ...session, partNumber: 1, body: new Uint8Array([1, 2, 3]) })
        yield* multipart.completeMultipart({ ...session, parts: [{ partNumber: 1, etag: part.etag }] })
        const assembled = makeClaim({ key: assembledKey, uploadId: session.uploadId, size: 3, expiresAt: expired })
        const abandoned = makeClaim({ expiresAt: expired })
        const fresh = makeClaim({ expiresAt: DateTime.add(now, { hours: 1 }) })
        yield* Effect.gen(function*() {
          const claims = yield* ClaimStore
          for (const claim of [assembled, abandoned, fresh]) yield* claims.create(claim)
        }).pipe(Effect.provide(storesAt(url)))

        assert.deepStrictEqual(yield* runJson(["sweep"], layers), {
          scanned: 2,
          recovered: 1,
          removed: 1,
          skipped: 0,
          orphansReclaimed: 0
        })
        const after = yield* Effect.gen(function*() {
          const claims = yield* ClaimStore
          const queue = yield* DeleteQueue
          return {
            assembled: (yield* claims.get(assembled.id)).status,
            abandoned: yield* Effect.exit(claims.get(abandoned.id)),
            queued: (yield* queue.findByKeys([abandoned.key])).map((row) => row.reason),
            registered: Option.isSome(yield* (yield* FileRegistry).get(assembledKey))
          }
        }).pipe(Effect.provide(storesAt(url)))
        assert.strictEqual(after.assembled, "uploaded")
        assert.isTrue(after.abandoned._tag === "Failure")
        assert.deepStrictEqual(after.queued, ["claim_expired"])
        assert.isTrue(after.registered)
        const again = yield* runCli(["sweep"], layers)
        assert.strictEqual(again.code, 0)
        assert.match(again.stdout, /^Sweep finished\n {2}expired claims scanned +0\n/)
      }),
    60_000
  )

  it.scopedLive(
    "drain: one run deletes every due object, marks the registry, and shows progress on stderr",
    () =>
      Effect.gen(function*() {
        const url = yield* freshUrl(dialect)
        const storage = yield* MemoryObjectStorage.make()
        const layers = cliLayers(url, storage, { deleteBatchSize: 50 })
        const registered = makeClaim()
        const keys = [registered.key, ...Array.from({ length: 249 }, (_, i) => `drain/${i}.bin`)]
        for (const key of keys) yield* storage.putObject({ key, body: new Uint8Array([7]) })
        yield* storage.putObject({ key: "drain/later.bin", body: new Uint8Array([7]) })
        const now = yield* DateTime.now
        yield* Effect.gen(function*() {
          const claims = yield* ClaimStore
          const queue = yield* DeleteQueue
          yield* claims.create(registered)
          yield* completeClaim(registered)
          yield* queue.schedule(keys, "replaced")
          yield* queue.enqueue([job("drain/later.bin", DateTime.add(now, { hours: 1 }))])
        }).pipe(Effect.provide(storesAt(url)))

        const result = yield* runCli(["drain", "--json", "--progress"], layers)
        assert.strictEqual(result.code, 0, result.stderr)
        assert.deepStrictEqual(JSON.parse(result.stdout), {
          batches: 5,
          leased: 250,
          deleted: 250,
          deferred: 0,
          deadLettered: 0
        })
        assert.match(result.stderr, /drain \[#+\] 100% 250\/250 deleted 250/)
        for (const key of keys) assert.isTrue(yield* storage.statObject(key).pipe(Effect.isFailure), key)
        assert.isFalse(yield* storage.statObject("drain/later.bin").pipe(Effect.isFailure))
        const record = yield* Effect.flatMap(FileRegistry, (r) => r.get(registered.key)).pipe(
          Effect.provide(storesAt(url))
        )
        assert.deepInclude(Option.getOrThrow(record), { status: "deleted", deleteReason: "replaced" })
        const status = yield* runJson(["status"], layers)
        assert.deepInclude(status.queue, { depth: 1, due: 0 })

        const quiet = yield* runCli(["drain"], layers)
        assert.strictEqual(quiet.code, 0)
        assert.strictEqual(quiet.stderr, "")
        assert.match(quiet.stdout, /^Drain finished\n {2}batches +0\n {2}rows leased +0\n/)
      }),
    60_000
  )
})
