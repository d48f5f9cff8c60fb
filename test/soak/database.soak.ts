/**
 * Database faults: the database server (PostgreSQL, then MariaDB) is stopped
 * under load for a few seconds and started again. Every request during the
 * outage must answer, within its timeout, a clean JSON error (503
 * `ServiceUnavailable`), never hang or reset the connection; the server
 * process stays up; and once the database is back, its fibers (delete
 * worker, sweeper) recover by themselves: uploads succeed again, the queue
 * drains, abandoned uploads are reaped, and nothing is lost.
 *
 * The database servers are started again in `finally` and `afterAll`,
 * whatever happens.
 */
import { afterAll, describe, expect, it } from "vitest"
import { request } from "./support/http.js"
import { recordSoak } from "./support/results.js"
import { Rng, seedFor } from "./support/rng.js"
import {
  canRestartMariadb,
  canRestartPostgres,
  missing,
  portAnswers,
  servers,
  startMariadb,
  startPostgres,
  stopMariadb,
  stopPostgres
} from "./support/servers.js"
import { sleep, SoakServer } from "./support/soakServer.js"
import { filesystemBackend, freshDatabase, Inspector } from "./support/state.js"
import { drainAndVerify } from "./support/verify.js"
import { tokenOf, Workload } from "./support/workload.js"

const outageMillis = 4000
const requestTimeoutMs = 10_000

interface Target {
  readonly name: string
  readonly dialect: "pg" | "mysql"
  readonly admin: string | undefined
  readonly canRestart: () => boolean
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  readonly port: number
}

const targets: ReadonlyArray<Target> = [
  {
    name: "PostgreSQL",
    dialect: "pg",
    admin: servers().pg,
    canRestart: canRestartPostgres,
    stop: stopPostgres,
    start: startPostgres,
    port: 5432
  },
  {
    name: "MariaDB",
    dialect: "mysql",
    admin: servers().mysql,
    canRestart: canRestartMariadb,
    stop: stopMariadb,
    start: startMariadb,
    port: 3306
  }
]

const figures: Array<Record<string, unknown>> = []

afterAll(async () => {
  // Whatever happened, leave the shared servers running.
  for (const target of targets) {
    if (target.canRestart() && !(await portAnswers(target.port))) await target.start()
  }
  for (const f of figures) console.log(`[soak] database outage figures: ${JSON.stringify(f)}`)
  recordSoak("database outage", figures)
})

/** One whole upload (init, one part, complete) with bounded requests; answers whether it succeeded. */
const uploadOnce = async (url: string, rng: Rng): Promise<boolean> => {
  const data = rng.bytes(rng.int(1, 5000))
  const opened = await request(url, "POST", "/storage/uploads", {
    token: tokenOf.alice,
    json: { filename: "probe.bin", size: data.length },
    timeoutMs: requestTimeoutMs
  })
  if (opened.kind !== "response" || opened.status !== 201) return false
  const part = await request(url, "PUT", `/storage/uploads/${opened.json.claimId}/parts/1`, {
    token: tokenOf.alice,
    body: data,
    timeoutMs: requestTimeoutMs
  })
  if (part.kind !== "response" || part.status !== 200) return false
  const done = await request(url, "POST", `/storage/uploads/${opened.json.claimId}/complete`, {
    token: tokenOf.alice,
    timeoutMs: requestTimeoutMs
  })
  return done.kind === "response" && done.status === 200
}

for (const target of targets) {
  const title = `database outage: ${target.name} stopped under load`
  if (target.admin === undefined) {
    missing(title, target.name)
    continue
  }
  if (!target.canRestart()) {
    missing(title, `a ${target.name} server this machine can stop and start`)
    continue
  }

  describe(title, () => {
    it("answers 503 during the outage, never hangs or crashes, and recovers by itself", async () => {
      const seed = seedFor(title)
      const rng = new Rng(seed)
      const cleanups: Array<() => Promise<void>> = []
      try {
        const database = await freshDatabase(target.dialect, target.admin!)
        cleanups.push(database.drop)
        const server = await SoakServer.start({
          name: title,
          env: {
            DATABASE_URL: database.url,
            STORAGE_PART_SIZE: "64KiB",
            STORAGE_DELETE_INTERVAL: "1s",
            STORAGE_SWEEP_INTERVAL: "1s",
            STORAGE_CLAIM_TTL: "4s",
            STORAGE_LEASE_WINDOW: "3s"
          }
        })
        cleanups.push(() => server.dispose())
        const workload = new Workload({
          url: server.url,
          rng: rng.fork(),
          partSize: 64 * 1024,
          smallMax: 3 * 64 * 1024,
          multipartShare: 0.2,
          clientsPerUser: 2,
          timeoutMs: requestTimeoutMs,
          networkIsFinding: true
        })
        workload.start()
        await sleep(2000)
        expect(workload.tally.count((k) => / 20[01] /.test(k + " ")), "requests succeed before the outage")
          .toBeGreaterThan(0)

        // The outage.
        const before = new Map(workload.tally.counts)
        const outageStart = Date.now()
        try {
          await target.stop()
          await sleep(outageMillis)
        } finally {
          await target.start()
        }
        const downMillis = Date.now() - outageStart
        const during = new Map(workload.tally.counts)
        let unavailable = 0
        for (const [key, n] of during) if (key.endsWith(" 503")) unavailable += n - (before.get(key) ?? 0)

        // Back: a whole upload must succeed again, without any restart of ours.
        const backAt = Date.now()
        let recovered = false
        while (!recovered && Date.now() - backAt < 30_000) {
          recovered = await uploadOnce(server.url, rng)
          if (!recovered) await sleep(200)
        }
        const recoveryMillis = Date.now() - backAt
        expect(recovered, "uploads succeed again after the database is back").toBe(true)
        // An upload abandoned after the outage, for the sweeper to reap.
        const abandoned = await request(server.url, "POST", "/storage/uploads", {
          token: tokenOf.bob,
          json: { filename: "abandoned.bin", size: 10 },
          timeoutMs: requestTimeoutMs
        })
        expect(abandoned.kind === "response" && abandoned.status).toBe(201)
        await sleep(3000)
        await workload.stop()

        expect(server.alive, "the server process stays up").toBe(true)
        expect(server.exits, "the server process never exited").toEqual([])
        expect(workload.findings, `seed ${seed}`).toEqual([])
        expect(unavailable, "requests during the outage answered 503").toBeGreaterThan(0)

        const inspector = new Inspector(database.url, filesystemBackend(server.root))
        cleanups.push(() => inspector.dispose())
        const final = await drainAndVerify(server.url, inspector, workload, `seed ${seed}`, 30_000)
        expect(server.alive, "the server process stays up").toBe(true)
        const figure = {
          database: target.name,
          seed,
          downMillis,
          requests: workload.tally.total,
          answered503: unavailable,
          recoveryMillis,
          fiberRetriesLogged: (server.log().match(/run failed; retrying/g) ?? []).length,
          drainMillis: final.drainMillis,
          objectsAtEnd: final.objectsAtEnd,
          verifiedSha256: final.verifiedSha256,
          lost: final.lost,
          leaked: final.leaked
        }
        figures.push(figure)
        expect(final.problems, `seed ${seed}`).toEqual([])
        console.log(`[soak] ${title}: ${workload.tally}`)
      } finally {
        if (!(await portAnswers(target.port))) await target.start()
        for (const cleanup of cleanups.reverse()) await cleanup().catch((e) => console.warn(`[soak] cleanup: ${e}`))
      }
    }, 180_000)
  })
}
