/**
 * Crashes: the example server is killed with SIGKILL at random points while
 * clients upload, complete, attach uploads to documents, replace and delete
 * documents, and while the delete worker drains; it is restarted on the same
 * data folder and database. At every kill point, with the process dead and
 * its state frozen, the invariants are checked (see `checkInvariants` and
 * `Workload.check`); after the last one the server is started again, the
 * clients stop, and the queue and the sweeper must leave exactly the
 * referenced objects, byte-identical, with no dead letter.
 */
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { recordSoak } from "./support/results.js"
import { Rng, seedFor } from "./support/rng.js"
import { missing, servers } from "./support/servers.js"
import { sleep, SoakServer } from "./support/soakServer.js"
import {
  type Backend,
  checkInvariants,
  filesystemBackend,
  freshDatabase,
  Inspector,
  s3Backend
} from "./support/state.js"
import { drainAndVerify } from "./support/verify.js"
import { Workload } from "./support/workload.js"

const killPoints = Number(process.env.SOAK_KILL_POINTS ?? 20)

interface Variant {
  readonly name: string
  readonly database: "pg" | "sqlite"
  readonly backend: "filesystem" | "s3"
}

const variants: ReadonlyArray<Variant> = [
  { name: "PostgreSQL + filesystem", database: "pg", backend: "filesystem" },
  { name: "SQLite + filesystem", database: "sqlite", backend: "filesystem" },
  { name: "PostgreSQL + S3 (Ceph)", database: "pg", backend: "s3" }
]

/** The figures of every variant, printed at the end. */
const figures: Array<Record<string, unknown>> = []

afterAll(() => {
  for (const f of figures) console.log(`[soak] crash figures: ${JSON.stringify(f)}`)
  recordSoak("crash", figures)
})

for (const variant of variants) {
  const title = `crash: kill -9 the example server (${variant.name})`
  const pgUrl = servers().pg
  const ceph = servers().s3.ceph
  if (variant.database === "pg" && pgUrl === undefined) {
    missing(title, "PostgreSQL")
    continue
  }
  if (variant.backend === "s3" && ceph === undefined) {
    missing(title, "Ceph RGW (S3)")
    continue
  }

  describe(title, () => {
    it(`survives ${killPoints} kill points and loses nothing`, async () => {
      const seed = seedFor(title)
      const rng = new Rng(seed)
      const cleanups: Array<() => Promise<void>> = []
      try {
        const database = variant.database === "pg" ? await freshDatabase("pg", pgUrl!) : undefined
        if (database !== undefined) cleanups.push(database.drop)
        const bucket = `es-soak-${randomBytes(5).toString("hex")}`
        const s3 = variant.backend === "s3" ? { ...ceph!, bucket } : undefined
        const partSize = variant.backend === "s3" ? 5 * 1024 * 1024 : 64 * 1024
        const env: Record<string, string> = {
          STORAGE_PART_SIZE: String(partSize),
          STORAGE_DELETE_INTERVAL: "1s",
          STORAGE_SWEEP_INTERVAL: "1s",
          STORAGE_CLAIM_TTL: "4s",
          // Rows leased by a killed worker come back after this.
          STORAGE_LEASE_WINDOW: "3s",
          ...(database === undefined ? {} : { DATABASE_URL: database.url }),
          ...(s3 === undefined ? {} : {
            STORAGE_BACKEND: "s3",
            S3_ENDPOINT: s3.endpoint,
            S3_BUCKET: s3.bucket,
            S3_REGION: "us-east-1",
            S3_ACCESS_KEY_ID: s3.accessKeyId,
            S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
            S3_FORCE_PATH_STYLE: "true",
            S3_CREATE_BUCKET: "true"
          })
        }
        const server = await SoakServer.start({ env, name: title })
        cleanups.push(() => server.dispose())
        let backend: Backend
        if (s3 !== undefined) {
          const b = s3Backend(s3)
          cleanups.push(b.destroy)
          backend = b
        } else {
          backend = filesystemBackend(server.root)
        }
        const inspector = new Inspector(database?.url ?? `sqlite:${join(server.dir, "storage.db")}`, backend)
        cleanups.push(() => inspector.dispose())

        const workload = new Workload({
          url: server.url,
          rng: rng.fork(),
          partSize,
          smallMax: variant.backend === "s3" ? 200_000 : 3 * partSize,
          multipartShare: variant.backend === "s3" ? 0.1 : 0.3,
          clientsPerUser: 2
        })
        const problems: Array<string> = []
        const modes = { load: 0, drain: 0, startup: 0 }
        let killsWithQueue = 0
        let killsWithPendingClaims = 0
        let maxObjects = 0
        workload.start()
        for (let point = 1; point <= killPoints; point++) {
          const roll = rng.next()
          if (roll < 0.2 && point > 1) {
            // Right after start-up: the worker's and sweeper's first runs.
            modes.startup++
            await sleep(rng.int(0, 300))
          } else if (roll < 0.5 && point > 1) {
            // While the worker drains what a burst of deletions queued.
            modes.drain++
            await sleep(rng.int(300, 1200))
            await workload.bulkDelete(rng.int(3, 10))
            await sleep(rng.int(0, 1100))
          } else {
            modes.load++
            await sleep(rng.int(300, 2500))
          }
          await server.kill9()
          await workload.pause()
          const snapshot = await inspector.snapshot()
          const found = [...checkInvariants(snapshot), ...workload.check(snapshot)]
          if ([...snapshot.queue.values()].some((rows) => rows.some((r) => !r.dead))) killsWithQueue++
          if ([...snapshot.claims.values()].some((c) => c.status === "pending")) killsWithPendingClaims++
          maxObjects = Math.max(maxObjects, snapshot.objects.size)
          for (const p of found) problems.push(`kill point ${point}: ${p}`)
          expect(problems, `seed ${seed}`).toEqual([])
          await server.launch()
          workload.unpause()
        }

        // The clients stop; the sweeper reaps what they abandoned and the
        // worker drains the queue.
        await workload.stop()
        const final = await drainAndVerify(server.url, inspector, workload, `seed ${seed}`)
        // Sessions left only by inits that a kill cut short (claim written,
        // session opened, upload id never recorded): at most one per init
        // whose answer was lost.
        const initsCut = workload.tally.count((k) => k.startsWith("POST /storage/uploads network"))
        const figure = {
          variant: variant.name,
          seed,
          killPoints,
          modes,
          killsWithQueue,
          killsWithPendingClaims,
          requests: workload.tally.total,
          networkFailures: workload.tally.count((k) => k.endsWith(" network")),
          uploadsCompleted: [...workload.uploads.values()].filter((u) => u.completed === "yes").length,
          uploadsMaybe: [...workload.uploads.values()].filter((u) => u.completed === "maybe").length,
          documents: final.documents,
          objectsAtEnd: final.objectsAtEnd,
          maxObjects,
          verifiedSha256: final.verifiedSha256,
          sessionsLeft: final.sessionsLeft,
          initsCut,
          tempFilesLeft: final.tempFilesLeft,
          restartMillisAvg: Math.round(server.startMillis.reduce((a, b) => a + b, 0) / server.startMillis.length),
          drainMillis: final.drainMillis,
          lost: final.lost,
          leaked: final.leaked
        }
        figures.push(figure)
        expect(final.problems, `seed ${seed}`).toEqual([])
        expect(final.sessionsLeft, "multipart sessions left").toBeLessThanOrEqual(initsCut)
        console.log(`[soak] ${title}: ${workload.tally}`)
        for (const note of workload.notes) console.log(`[soak] note: ${note}`)
        expect(workload.findings, `seed ${seed}`).toEqual([])
      } finally {
        for (const cleanup of cleanups.reverse()) await cleanup().catch((e) => console.warn(`[soak] cleanup: ${e}`))
      }
    }, 400_000)
  })
}
