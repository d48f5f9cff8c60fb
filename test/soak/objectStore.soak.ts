/**
 * Object-store faults: a fault-injecting proxy in front of Ceph RGW answers
 * 500/503, resets connections (before the request reaches Ceph, and after
 * Ceph did the work but before the answer gets back) and slows requests.
 *
 * (a) A client uploading through the example server (STORAGE_BACKEND=s3
 *     pointed at the proxy) that retries what failed ends with objects
 *     byte-identical to what it sent (SHA-256 of the download through the
 *     server, and of the object read straight from Ceph).
 * (b) The delete worker (in this process, with a short backoff) defers
 *     failed deletes with exponential backoff, never retries a row before
 *     its time, dead-letters a row after the last attempt, deletes every
 *     other queued object exactly once, aborts queued multipart sessions,
 *     and deletes nothing else.
 */
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { randomBytes } from "node:crypto"
import { afterAll, describe, expect, it } from "vitest"
import { DeleteWorker } from "../../src/layers/DeleteWorker.js"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import * as Database from "../../src/layers/sql/Database.js"
import * as SqlEventOutbox from "../../src/layers/sql/SqlEventOutbox.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import { StorageConfig } from "../../src/layers/StorageConfig.js"
import { PendingDelete } from "../../src/schema/Models.js"
import { DeleteQueue } from "../../src/services/DeleteQueue.js"
import { startFaultProxy } from "./support/faultProxy.js"
import { type Outcome, request, sha256, Tally } from "./support/http.js"
import { recordSoak } from "./support/results.js"
import { Rng, seedFor } from "./support/rng.js"
import { missing, servers } from "./support/servers.js"
import { sleep, SoakServer } from "./support/soakServer.js"
import { freshDatabase, s3Backend } from "./support/state.js"

const figures: Array<Record<string, unknown>> = []
afterAll(() => {
  for (const f of figures) console.log(`[soak] object-store figures: ${JSON.stringify(f)}`)
  recordSoak("object store", figures)
})

const ceph = servers().s3.ceph
const pgAdmin = servers().pg
const mib = 1024 * 1024

if (ceph === undefined) {
  missing("object-store faults", "Ceph RGW (S3)")
} else {
  describe("object-store faults: a fault-injecting proxy in front of Ceph", () => {
    it("(a) uploads retried by the client through the example server are byte-identical", async () => {
      const seed = seedFor("object-store faults (a)")
      const rng = new Rng(seed)
      const bucket = `es-soak-${randomBytes(5).toString("hex")}`
      const direct = s3Backend({ ...ceph, bucket })
      const proxy = await startFaultProxy(ceph.endpoint, rng.fork(), {
        error: 0.15,
        reset: 0.05,
        resetAfter: 0.08,
        slow: 0.1,
        slowMillis: [100, 600]
      })
      let server: SoakServer | undefined
      try {
        await direct.client.send(new CreateBucketCommand({ Bucket: bucket }))
        server = await SoakServer.start({
          name: "example server over the fault proxy",
          env: {
            STORAGE_BACKEND: "s3",
            S3_ENDPOINT: proxy.url,
            S3_BUCKET: bucket,
            S3_REGION: "us-east-1",
            S3_ACCESS_KEY_ID: ceph.accessKeyId,
            S3_SECRET_ACCESS_KEY: ceph.secretAccessKey,
            S3_FORCE_PATH_STYLE: "true",
            STORAGE_PART_SIZE: "5MiB",
            // Long enough that no retry meets an expired claim.
            STORAGE_CLAIM_TTL: "10m"
          }
        })
        const tally = new Tally()
        const sizes = [
          1,
          1000,
          100_000,
          5 * mib - 1,
          5 * mib,
          5 * mib + 1,
          11 * mib + 123,
          rng.int(1, 3 * mib),
          rng.int(5 * mib, 12 * mib),
          rng.int(1, 200_000)
        ]
        const results: Array<{ key: string; sha: string; size: number }> = []
        // Two uploads at a time; rounds of these sizes until enough faults
        // met the uploads (a one-part upload is a single S3 request, so one
        // round may see only a handful).
        const faultsSoFar = () => proxy.stats.error + proxy.stats.reset + proxy.stats.resetAfter + proxy.stats.slow
        for (let round = 0; round === 0 || (round < 6 && faultsSoFar() < 20); round++) {
          for (let i = 0; i < sizes.length; i += 2) {
            const batch = sizes.slice(i, i + 2).map(async (size) => {
              const data = rng.bytes(size)
              const key = await uploadWithRetries(server!.url, data, tally)
              results.push({ key, sha: sha256(data), size })
            })
            await Promise.all(batch)
          }
        }
        const during = { ...proxy.stats }
        // Downloads go through the proxy too: retried until whole.
        const mismatches: Array<string> = []
        const lost = new Set<string>()
        for (const r of results) {
          const viaServer = await retry(
            () => request(server!.url, "GET", `/storage/files/${r.key}`, { token: "tokenA", timeoutMs: 60_000 }),
            (o) => o.kind === "response" && o.status === 200,
            tally,
            "GET /storage/files/*"
          )
          if (viaServer.kind !== "response" || sha256(viaServer.body) !== r.sha) {
            mismatches.push(`${r.key} (${r.size} bytes) through the server`)
            lost.add(r.key)
          }
          const stored = await direct.client.send(new GetObjectCommand({ Bucket: bucket, Key: r.key }))
          const bytes = new Uint8Array(await stored.Body!.transformToByteArray())
          if (sha256(bytes) !== r.sha) {
            mismatches.push(`${r.key} (${r.size} bytes) in Ceph: ${bytes.length} bytes`)
            lost.add(r.key)
          }
        }
        const injected = during.error + during.reset + during.resetAfter + during.slow
        figures.push({
          part: "a",
          seed,
          uploads: results.length,
          bytes: results.reduce((n, r) => n + r.size, 0),
          s3Requests: Object.values(during).reduce((a, b) => a + b, 0),
          faults: during,
          clientSaw: tally.toString(),
          verifiedSha256: results.length - lost.size,
          lost: lost.size
        })
        expect(mismatches).toEqual([])
        expect(server.alive).toBe(true)
        expect(injected, "faults were injected").toBeGreaterThanOrEqual(20)
      } finally {
        await server?.dispose()
        await proxy.close()
        await direct.destroy()
      }
    }, 300_000)

    if (pgAdmin === undefined) {
      missing("(b) the delete worker against the fault proxy", "PostgreSQL")
      return
    }

    it("(b) the delete worker defers with backoff, dead-letters as specified, and deletes nothing else", async () => {
      const seed = seedFor("object-store faults (b)")
      const rng = new Rng(seed)
      const bucket = `es-soak-${randomBytes(5).toString("hex")}`
      const direct = s3Backend({ ...ceph, bucket })
      const database = await freshDatabase("pg", pgAdmin)
      const proxy = await startFaultProxy(ceph.endpoint, rng.fork(), {
        error: 0.2,
        reset: 0.08,
        resetAfter: 0.1,
        slow: 0.1,
        slowMillis: [50, 300]
      })
      // Every request for these keys fails; in a batch delete, these keys fail on their own.
      proxy.rule((_, path) => path.includes("/del/doomed/"), {
        error: 1,
        reset: 0,
        resetAfter: 0,
        slow: 0,
        slowMillis: [0, 0]
      })
      proxy.failKeys((key) => key.startsWith("del/doomed/"), async (bucketName, keys) => {
        if (keys.length === 0) return
        await direct.client.send(
          new DeleteObjectsCommand({
            Bucket: bucketName,
            Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true }
          })
        )
      })
      const maxAttempts = 4
      const base = 200
      const cap = 5000
      const runtime = ManagedRuntime.make(
        DeleteWorker.Default.pipe(
          Layer.provideMerge(Layer.mergeAll(
            SqlStores.layer,
            SqlEventOutbox.layer,
            S3ObjectStorage.layer({
              bucket,
              endpoint: proxy.url,
              region: "us-east-1",
              forcePathStyle: true,
              credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey }
            }),
            StorageConfig.layer({
              deleteMaxAttempts: maxAttempts,
              backoffBase: `${base} millis`,
              backoffCap: `${cap} millis`,
              leaseWindow: "20 seconds",
              deleteBatchSize: 25,
              deleteConcurrency: 8
            })
          )),
          Layer.provideMerge(Database.layerFromUrl(database.url)),
          // The worker logs every failed delete; the figures say enough.
          Layer.provideMerge(Logger.minimumLogLevel(LogLevel.Error))
        )
      )
      try {
        await direct.client.send(new CreateBucketCommand({ Bucket: bucket }))
        const put = (key: string, body: Uint8Array) =>
          direct.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
        const ok = Array.from({ length: 40 }, (_, i) => `del/ok/${i}.bin`)
        const doomed = Array.from({ length: 4 }, (_, i) => `del/doomed/${i}.bin`)
        const keepers = Array.from({ length: 12 }, (_, i) => `keep/${i}.bin`)
        const keeperSha = new Map<string, string>()
        for (const key of [...ok, ...doomed]) await put(key, rng.bytes(rng.int(1, 5000)))
        for (const key of keepers) {
          const body = rng.bytes(rng.int(1, 5000))
          keeperSha.set(key, sha256(body))
          await put(key, body)
        }
        // Open multipart sessions queued with their upload id (a swept upload).
        const sessions: Array<{ key: string; uploadId: string }> = []
        for (let i = 0; i < 3; i++) {
          const key = `del/mp/${i}.bin`
          const created = await direct.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
          await direct.client.send(
            new UploadPartCommand({
              Bucket: bucket,
              Key: key,
              UploadId: created.UploadId!,
              PartNumber: 1,
              Body: rng.bytes(1000)
            })
          )
          sessions.push({ key, uploadId: created.UploadId! })
        }

        await runtime.runPromise(Effect.gen(function*() {
          const queue = yield* DeleteQueue
          const now = yield* DateTime.now
          yield* queue.schedule([...ok, ...doomed], "deleted")
          yield* queue.enqueue(sessions.map((s, i) =>
            new PendingDelete({
              id: `mp-${i}-${randomBytes(4).toString("hex")}`,
              key: s.key,
              uploadId: s.uploadId,
              reason: "claim_expired",
              attempts: 0,
              nextAttemptAt: now,
              createdAt: now
            })
          ))
        }))

        type Row = {
          object_key: string
          attempts: number
          next_attempt_at: unknown
          dead_at: unknown
          last_error: string | null
        }
        const rows = () =>
          runtime.runPromise(
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              sql<
                Row
              >`SELECT object_key, attempts, next_attempt_at, dead_at, last_error FROM sys_storage_pending_delete`)
          )
        const millis = (value: unknown) => value instanceof Date ? value.getTime() : Date.parse(String(value))

        // Two workers drain at once, each in a loop, while an observer
        // records every deferral of the doomed rows.
        const deferrals = new Map<
          string,
          Array<{ attempts: number; nextAt: number; seenAfter: number; seenAt: number }>
        >()
        let stop = false
        const worker = async () => {
          while (!stop) {
            await runtime.runPromise(Effect.flatMap(DeleteWorker, (w) => w.runOnce)).catch(() => {})
            await sleep(rng.int(10, 60))
          }
        }
        const observer = async () => {
          const last = new Map<string, number>()
          let previous = Date.now()
          while (!stop) {
            const seenAt = Date.now()
            for (const row of await rows()) {
              if (!row.object_key.startsWith("del/doomed/")) continue
              const attempts = Number(row.attempts)
              if (attempts !== (last.get(row.object_key) ?? 0) && row.dead_at === null) {
                const list = deferrals.get(row.object_key) ?? []
                list.push({ attempts, nextAt: millis(row.next_attempt_at), seenAfter: previous, seenAt })
                deferrals.set(row.object_key, list)
              }
              last.set(row.object_key, attempts)
            }
            previous = seenAt
            await sleep(20)
          }
        }
        const started = Date.now()
        const loops = [worker(), worker(), observer()]
        let live = Infinity
        while (live > 0 && Date.now() - started < 60_000) {
          await sleep(200)
          live = (await rows()).filter((r) => r.dead_at === null).length
        }
        stop = true
        await Promise.all(loops)
        const drainMillis = Date.now() - started
        expect(live, "the queue drains (dead letters aside)").toBe(0)

        const final = await rows()
        // Dead letters: exactly the doomed rows, after exactly maxAttempts attempts.
        const dead = final.filter((r) => r.dead_at !== null)
        expect(dead.map((r) => r.object_key).sort()).toEqual([...doomed].sort())
        for (const row of dead) {
          expect(Number(row.attempts), `${row.object_key} attempts`).toBe(maxAttempts)
          expect(row.last_error).toBe("transient")
        }
        // Deferrals: attempts 1..maxAttempts-1, each with the backoff of its
        // attempt (base doubled, ±20% jitter), and no request for the key
        // between a deferral and its due time.
        const tolerance = 150
        for (const key of doomed) {
          const list = deferrals.get(key) ?? []
          expect(list.map((d) => d.attempts), `${key} deferrals`).toEqual([1, 2, 3])
          for (const d of list) {
            const expected = Math.min(cap, base * 2 ** (d.attempts - 1))
            expect(d.nextAt - d.seenAt, `${key} delay after attempt ${d.attempts}`).toBeLessThanOrEqual(1.2 * expected)
            expect(d.nextAt - d.seenAfter, `${key} delay after attempt ${d.attempts}`).toBeGreaterThanOrEqual(
              0.8 * expected - tolerance
            )
            const early = proxy.log.filter((r) =>
              (r.path.includes(key) || r.keys?.includes(key) === true) && r.at > d.seenAt && r.at < d.nextAt - 5
            )
            expect(early.map((r) => `${r.method} at ${r.at}`), `${key} retried before its time`).toEqual([])
          }
        }
        // Events: one FileDeleted per deleted row, one dead letter per doomed row.
        const events = await runtime.runPromise(SqlEventOutbox.take(10_000))
        const deletedEvents = events.filter((e) => e.event._tag === "storage.file.deleted").map((e) =>
          (e.event as { key: string }).key
        )
        expect(deletedEvents.sort()).toEqual([...ok, ...sessions.map((s) => s.key)].sort())
        const deadEvents = events.filter((e) => e.event._tag === "storage.delete.dead_letter")
        expect(deadEvents.length).toBe(doomed.length)

        // The backend: queued objects gone, sessions aborted, the rest intact.
        const objects = await direct.objects()
        // Counted from the final state, recorded before the checks below.
        const leftBehind = ok.filter((k) => objects.has(k))
        const wronglyDeleted = [...keepers, ...doomed].filter((k) => !objects.has(k))
        figures.push({
          part: "b",
          seed,
          queued: ok.length + doomed.length + sessions.length,
          deleted: ok.length + sessions.length - leftBehind.length,
          deadLettered: dead.length,
          s3Requests: proxy.log.length,
          faults: { ...proxy.stats },
          drainMillis,
          wronglyDeleted: wronglyDeleted.length
        })
        expect(leftBehind, "queued objects left").toEqual([])
        expect(wronglyDeleted, "kept and dead-lettered objects are still there").toEqual([])
        const open = await direct.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
        expect((open.Uploads ?? []).map((u) => u.Key), "sessions left open").toEqual([])
        for (const key of keepers) {
          await direct.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
          const got = await direct.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
          expect(sha256(new Uint8Array(await got.Body!.transformToByteArray())), key).toBe(keeperSha.get(key))
        }
        expect(
          proxy.log.filter((r) => r.path.includes("/keep/") || r.keys?.some((k) => k.startsWith("keep/")) === true),
          "requests touching objects never queued"
        ).toEqual([])
      } finally {
        await runtime.dispose()
        await proxy.close()
        await direct.destroy()
        await database.drop().catch(() => {})
      }
    }, 120_000)
  })
}

/** Retries on a 5xx answer, a reset or a timeout (never on a 4xx). */
const retry = async (
  attempt: () => Promise<Outcome>,
  done: (o: Outcome) => boolean,
  tally: Tally,
  label: string,
  times = 12
): Promise<Outcome> => {
  let last: Outcome = { kind: "timeout" }
  for (let i = 0; i < times; i++) {
    last = await attempt()
    tally.add(label, last)
    if (done(last)) return last
    if (last.kind === "response" && last.status < 500) return last
    await sleep(Math.min(2000, 100 * 2 ** i))
  }
  return last
}

/** Init, parts, complete, each retried when it fails; answers the key. */
const uploadWithRetries = async (url: string, data: Uint8Array, tally: Tally): Promise<string> => {
  const opened = await retry(
    () =>
      request(url, "POST", "/storage/uploads", {
        token: "tokenA",
        json: { filename: "f.bin", size: data.length },
        timeoutMs: 60_000
      }),
    (o) => o.kind === "response" && o.status === 201,
    tally,
    "POST /storage/uploads"
  )
  if (opened.kind !== "response" || opened.status !== 201) throw new Error(`init failed: ${JSON.stringify(opened)}`)
  const ticket = opened.json as { claimId: string; key: string; partSize: number; partCount: number }
  for (let n = 1; n <= ticket.partCount; n++) {
    const part = data.subarray((n - 1) * ticket.partSize, n * ticket.partSize)
    const sent = await retry(
      () =>
        request(url, "PUT", `/storage/uploads/${ticket.claimId}/parts/${n}`, {
          token: "tokenA",
          body: part,
          timeoutMs: 60_000
        }),
      (o) => o.kind === "response" && o.status === 200,
      tally,
      "PUT /storage/uploads/:id/parts/:n"
    )
    if (sent.kind !== "response" || sent.status !== 200) {
      throw new Error(`part ${n} failed: ${sent.kind === "response" ? `${sent.status} ${sent.text}` : sent.kind}`)
    }
  }
  const done = await retry(
    () => request(url, "POST", `/storage/uploads/${ticket.claimId}/complete`, { token: "tokenA", timeoutMs: 60_000 }),
    (o) => o.kind === "response" && o.status === 200,
    tally,
    "POST /storage/uploads/:id/complete"
  )
  if (done.kind !== "response" || done.status !== 200) {
    throw new Error(`complete failed: ${done.kind === "response" ? `${done.status} ${done.text}` : done.kind}`)
  }
  if (done.json.size !== data.length) throw new Error(`complete answered size ${done.json.size}, sent ${data.length}`)
  return ticket.key
}
