/**
 * Several servers: three example servers on one PostgreSQL database and one
 * object store (a Ceph RGW bucket; then a shared filesystem folder), behind
 * a round-robin proxy. Clients upload, resume cut uploads from the parts
 * list, complete, abort, abandon, adopt into documents and delete documents
 * through the proxy, while one server is killed with -9 and restarted (with
 * a part request in flight on it), and later a second one (while the three
 * delete workers drain what a burst of deletions queued). Each server runs
 * its own delete worker and sweeper, and publishes its events to the shared
 * outbox (`STORAGE_EVENTS=outbox`), which is what deletions and adoptions
 * are counted from: an event row exists exactly when its change committed.
 *
 * Judged from the final state, once the queue is drained and every
 * abandoned claim reaped (see `judge`): every acknowledged upload downloads
 * byte-identical; every acknowledged deletion happened exactly once and its
 * object is gone; no key was deleted twice (a sweeper reaping a claim twice,
 * two workers both settling one row) and no kept object was deleted; no
 * object beyond the referenced ones is left; no worker or sweeper run failed.
 */
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnCli } from "../cli/support.js"
import { request, sha256 } from "./support/http.js"
import { recordSoak } from "./support/results.js"
import { Rng, seedFor } from "./support/rng.js"
import { RoundRobinProxy } from "./support/roundRobinProxy.js"
import { missing, servers } from "./support/servers.js"
import { SharedClients, type SharedClients as Clients } from "./support/sharedClients.js"
import { buildExample, sleep, SoakServer } from "./support/soakServer.js"
import {
  type Backend,
  checkInvariants,
  filesystemBackend,
  freshDatabase,
  Inspector,
  s3Backend,
  type Snapshot
} from "./support/state.js"
import { tokenOf } from "./support/workload.js"

interface Variant {
  readonly name: string
  readonly backend: "s3" | "filesystem"
}

const variants: ReadonlyArray<Variant> = [
  { name: "PostgreSQL + Ceph RGW bucket", backend: "s3" },
  { name: "PostgreSQL + shared folder", backend: "filesystem" }
]

const serverCount = 3
/** How long the clients run; the kills happen at about a third and two thirds of it. */
const loadMillis = Number(process.env.SOAK_MULTI_LOAD_MS ?? 30_000)

const figures: Array<Record<string, unknown>> = []

// The compiled example: restarts take seconds, not the tens of seconds tsx needs on a busy machine.
beforeAll(() => buildExample())

afterAll(() => {
  for (const f of figures) console.log(`[soak] multi-server figures: ${JSON.stringify(f)}`)
  recordSoak("several servers", figures)
})

/** Warnings and errors of the servers' logs, by message (Effect's pretty logger: `[time] WARN (#fiber): message`). */
class LogWatch {
  readonly byMessage = new Map<string, number>()
  private partial = ""

  see(chunk: string): void {
    const lines = (this.partial + chunk).split("\n")
    this.partial = lines.pop() ?? ""
    for (const line of lines) {
      const match = /\] (WARN|ERROR|FATAL) \(#\d+\)[^:]*:\s?(.*)$/.exec(line)
      if (match === null) continue
      const label = `${match[1]} ${match[2]!.slice(0, 120)}`
      this.byMessage.set(label, (this.byMessage.get(label) ?? 0) + 1)
    }
  }

  count(predicate: (label: string) => boolean): number {
    let n = 0
    for (const [label, c] of this.byMessage) if (predicate(label)) n += c
    return n
  }
}

/** Counters a server's /metrics shows (its current incarnation), summed over their labels. */
const scrape = async (server: SoakServer) => {
  const counters = { deleted: 0, swept: 0, recovered: 0 }
  const names = {
    storage_objects_deleted_total: "deleted",
    storage_claims_swept_total: "swept",
    storage_claims_recovered_total: "recovered"
  } as const
  const out = await request(server.url, "GET", "/metrics", { timeoutMs: 5000 })
  if (out.kind !== "response" || out.status !== 200) return counters
  for (const line of out.text.split("\n")) {
    const match = /^(\w+)(?:\{[^}]*\})? ([\d.e+]+)$/.exec(line)
    const name = match === null ? undefined : names[match[1] as keyof typeof names]
    if (name !== undefined) counters[name] += Number(match![2])
  }
  return counters
}

/**
 * What each server's workers did, from its metrics: each incarnation is
 * read just before it is killed and at the end, so increments made between
 * that read and the kill are missed: a lower bound.
 */
class WorkerShares {
  readonly perServer = Array.from({ length: serverCount }, () => ({ deleted: 0, swept: 0, recovered: 0 }))

  async add(index: number, server: SoakServer): Promise<void> {
    const seen = await scrape(server)
    const total = this.perServer[index]!
    total.deleted += seen.deleted
    total.swept += seen.swept
    total.recovered += seen.recovered
  }
}

/** Kills a server with -9 once it is serving a part upload (or after `waitMs`); answers the part requests it cut. */
const killDuringPart = async (
  proxy: RoundRobinProxy,
  index: number,
  server: SoakServer,
  waitMs: number,
  inspector: Inspector
) => {
  const isPart = (r: { method: string; path: string }) => r.method === "PUT" && r.path.includes("/parts/")
  const deadline = Date.now() + waitMs
  while (proxy.busyWith(index, isPart) === 0 && Date.now() < deadline) await sleep(5)
  const inFlight = proxy.busyWith(index, () => true)
  const parts = proxy.busyWith(index, isPart)
  await server.kill9()
  // The queue as the kill left it: rows leased then (by the dead worker among others) wait for their lease to end.
  const queue = await queueNow(inspector)
  return { inFlight, parts, ...queue }
}

const queueNow = async (inspector: Inspector) => {
  const rows = await inspector.sql((sql) =>
    sql<{ live: number | string; leased: number | string }>`
      SELECT COUNT(*) AS live, COUNT(lease_token) AS leased FROM sys_storage_pending_delete WHERE dead_at IS NULL`
  )
  return { queued: Number(rows[0]!.live), leased: Number(rows[0]!.leased) }
}

const leasedRows = async (inspector: Inspector) => (await queueNow(inspector)).leased

for (const variant of variants) {
  const title = `several servers: 3 example servers behind a round-robin proxy (${variant.name})`
  const pgUrl = servers().pg
  const ceph = servers().s3.ceph
  if (pgUrl === undefined) {
    missing(title, "PostgreSQL")
    continue
  }
  if (variant.backend === "s3" && ceph === undefined) {
    missing(title, "Ceph RGW (S3)")
    continue
  }

  describe(title, () => {
    it("loses no acknowledged upload, deletes each object once, and the sweepers never fight", async () => {
      const seed = seedFor(title)
      const rng = new Rng(seed)
      const cleanups: Array<() => Promise<void>> = []
      try {
        const database = await freshDatabase("pg", pgUrl)
        cleanups.push(database.drop)
        const partSize = variant.backend === "s3" ? 5 * 1024 * 1024 : 64 * 1024
        let backend: Backend
        let backendEnv: Record<string, string>
        if (variant.backend === "s3") {
          const target = { ...ceph!, bucket: `es-multi-${randomBytes(5).toString("hex")}` }
          const b = s3Backend(target)
          cleanups.push(b.destroy)
          backend = b
          backendEnv = {
            STORAGE_BACKEND: "s3",
            S3_ENDPOINT: target.endpoint,
            S3_BUCKET: target.bucket,
            S3_REGION: "us-east-1",
            S3_ACCESS_KEY_ID: target.accessKeyId,
            S3_SECRET_ACCESS_KEY: target.secretAccessKey,
            S3_FORCE_PATH_STYLE: "true",
            S3_CREATE_BUCKET: "true"
          }
        } else {
          const shared = mkdtempSync(join(tmpdir(), "effect-storage-multi-"))
          cleanups.push(async () => rmSync(shared, { recursive: true, force: true }))
          backend = filesystemBackend(join(shared, "objects"))
          backendEnv = { STORAGE_BACKEND: "filesystem", STORAGE_ROOT: join(shared, "objects") }
        }
        const env = {
          DATABASE_URL: database.url,
          STORAGE_PART_SIZE: String(partSize),
          STORAGE_DELETE_INTERVAL: "1s",
          STORAGE_SWEEP_INTERVAL: "1s",
          STORAGE_CLAIM_TTL: "8s",
          // Rows leased by a killed worker come back after this.
          STORAGE_LEASE_WINDOW: "3s",
          STORAGE_EVENTS: "outbox",
          // One secret for every server, as a deployment shares it: a link signed by one is good on the others.
          STORAGE_LINK_SECRET: randomBytes(32).toString("hex"),
          ...backendEnv
        }
        const logs = new LogWatch()
        // Started together, as a deployment would: they race for the migrations too.
        const fleet = await Promise.all(
          Array.from(
            { length: serverCount },
            (_, i) =>
              SoakServer.start({
                env,
                name: `${title} #${i + 1}`,
                onOutput: (chunk) => logs.see(chunk),
                compiled: true
              })
          )
        )
        for (const server of fleet) cleanups.push(() => server.dispose())
        const proxy = await RoundRobinProxy.start(fleet.map((s) => s.url))
        cleanups.push(() => proxy.close())
        const inspector = new Inspector(database.url, backend)
        cleanups.push(() => inspector.dispose())

        const clients = new SharedClients({
          url: proxy.url,
          rng: rng.fork(),
          clients: 6,
          partSize,
          multipartShare: variant.backend === "s3" ? 0.15 : 0.4,
          maxParts: variant.backend === "s3" ? 2 : 5,
          smallMax: variant.backend === "s3" ? 200_000 : partSize
        })
        const started = Date.now()
        const timeline: Array<string> = []
        const mark = (what: string) => timeline.push(`${Date.now() - started} ms: ${what}`)
        clients.start()

        // Kill 1: a server with a part upload in flight; restarted at once.
        const first = rng.int(0, serverCount - 1)
        await sleep(Math.round(loadMillis / 3) + rng.int(-2000, 2000))
        const shares = new WorkerShares()
        await shares.add(first, fleet[first]!)
        const kill1 = await killDuringPart(proxy, first, fleet[first]!, 8000, inspector)
        mark(`server ${first} killed`)
        const restart1 = fleet[first]!.launch().then(() => mark(`server ${first} up again`))
        // Kill 2: another server, while the workers drain a burst of deletions.
        const second = (first + rng.int(1, serverCount - 1)) % serverCount
        await sleep(Math.max(0, started + Math.round((2 * loadMillis) / 3) - Date.now()))
        await restart1
        await shares.add(second, fleet[second]!)
        const burst = await clients.bulkDelete(rng.int(8, 15))
        mark(`${burst} documents deleted at once`)
        // Killed as soon as a worker holds leased rows (its own, or another's), or after 1.5 s.
        const leaseDeadline = Date.now() + 1500
        while (Date.now() < leaseDeadline && (await leasedRows(inspector)) === 0) await sleep(5)
        const kill2 = await killDuringPart(proxy, second, fleet[second]!, 0, inspector)
        mark(`server ${second} killed`)
        await fleet[second]!.launch()
        mark(`server ${second} up again`)
        await sleep(Math.max(0, started + loadMillis - Date.now()))
        await clients.stop()

        // The three workers drain the queue and the sweepers reap what was abandoned.
        const drainStart = Date.now()
        let depth = await inspector.queueDepth()
        while ((depth.live > 0 || depth.pendingClaims > 0) && Date.now() - drainStart < 60_000) {
          await sleep(250)
          depth = await inspector.queueDepth()
        }
        const drainMillis = Date.now() - drainStart
        expect(depth, `the queue drains and the sweepers reap (seed ${seed})`).toEqual({
          live: 0,
          dead: 0,
          pendingClaims: 0
        })

        for (const [i, server] of fleet.entries()) await shares.add(i, server)
        // What a kill -9 can leave outside every record (a multipart session an
        // init, completion or abort cut short) is what `reconcile --apply` is
        // for, as an operator runs it after a crash: counted before it (and
        // shown), asserted gone after it.
        const sessionsBeforeReconcile = (await inspector.snapshot()).sessions
        const reconcile = await spawnCli(["reconcile", "--apply", "--grace", "0s", "--json"], env)
        expect(reconcile.code, reconcile.stderr).toBe(0)
        const reconciled = JSON.parse(reconcile.stdout) as { orphanSessions?: unknown }
        if (sessionsBeforeReconcile > 0) console.log(`[soak] reconcile found: ${reconcile.stdout}`)
        const final = await inspector.snapshot()
        const events = await inspector.sql((sql) =>
          sql<{ payload: string }>`SELECT payload FROM sys_storage_event_outbox`
        )
        const verdict = await judge(proxy.url, final, events.map((e) => JSON.parse(e.payload)), clients)
        const workerRunFailures = logs.count((l) => /(DeleteWorker|ClaimSweeper) run failed/.test(l))
        const errorLines = logs.count((l) => !l.startsWith("WARN"))
        const leaseWarnings = logs.count((l) => /lease renewal failed|could not give leased rows back/.test(l))
        const uploads = [...clients.uploads.values()]
        const figure = {
          variant: variant.name,
          seed,
          servers: serverCount,
          loadMillis,
          kills: 2,
          killedWithRequestsInFlight: [kill1.inFlight, kill2.inFlight],
          killedWithPartsInFlight: [kill1.parts, kill2.parts],
          queuedAtKill: [kill1.queued, kill2.queued],
          leasedAtKill: [kill1.leased, kill2.leased],
          requests: proxy.requests,
          requestsPerServer: proxy.perServer,
          refusedRerouted: proxy.refusedRerouted,
          requestsCut: proxy.cut,
          uploadsOpened: uploads.length,
          uploadsCompleted: uploads.filter((u) => u.state === "completed").length,
          uploadsResumed: clients.counts.uploadsResumed,
          partsResent: clients.counts.partsResent,
          partsCutButRecorded: clients.counts.partsCutButRecorded,
          completesRetried: clients.counts.completesRetried,
          initsCut: clients.counts.initsCut,
          aborted: uploads.filter((u) => u.state === "aborted").length,
          abandoned: uploads.filter((u) => u.state === "abandoned").length,
          documentsCreated: clients.docs.size,
          documentsDeleted: [...clients.docs.values()].filter((d) => d.state === "deleted").length,
          burstDeleted: burst,
          ...verdict.figures,
          workerSharesLowerBound: shares.perServer,
          workerRunFailures,
          leaseWarnings,
          errorLines,
          warnings: Object.fromEntries(logs.byMessage),
          restartMillis: [fleet[first]!.startMillis.at(-1), fleet[second]!.startMillis.at(-1)],
          drainMillis,
          sessionsBeforeReconcile
        }
        figures.push(figure)
        console.log(`[soak] ${title}: ${clients.tally}`)
        console.log(`[soak] timeline: ${timeline.join("; ")}`)
        if (proxy.slow.length > 0) console.log(`[soak] slow requests (proxy clock): ${JSON.stringify(proxy.slow)}`)
        expect(verdict.problems, `seed ${seed}`).toEqual([])
        expect(clients.findings, `seed ${seed}`).toEqual([])
        // No run of a worker or sweeper failed (a deadlock or serialization conflict between them would
        // fail one), no lease was lost, and no server logged an error.
        expect({ workerRunFailures, leaseWarnings, errorLines }, JSON.stringify(Object.fromEntries(logs.byMessage)))
          .toEqual({ workerRunFailures: 0, leaseWarnings: 0, errorLines: 0 })
        expect(final.sessions, `multipart sessions left after reconcile (${JSON.stringify(reconciled)})`).toBe(0)
        // The exercise happened: both kills cut requests, uploads resumed, the three workers had deletions to do.
        expect(proxy.cut, "requests cut by the kills").toBeGreaterThan(0)
        expect(clients.counts.uploadsResumed, "uploads resumed from the parts list").toBeGreaterThan(0)
        expect(verdict.figures.deletedKeys, "deletions performed").toBeGreaterThan(0)
        // The workers' own counts never exceed the committed deletions (a double count would).
        const counted = shares.perServer.reduce((a, s) => a + s.deleted, 0)
        expect(counted, "deletions the workers counted").toBeLessThanOrEqual(verdict.figures.deletions)
        // Nor do the sweepers' (two sweepers both reaping one claim would): each reaped claim is one
        // claim_expired deletion.
        const swept = shares.perServer.reduce((a, s) => a + s.swept, 0)
        expect(swept, "claims the sweepers counted as reaped").toBeLessThanOrEqual(
          verdict.figures.deletionsByReason.claim_expired ?? 0
        )
      } finally {
        for (const cleanup of cleanups.reverse()) await cleanup().catch((e) => console.warn(`[soak] cleanup: ${e}`))
      }
    }, 240_000)
  })
}

interface OutboxEvent {
  readonly _tag: string
  readonly key: string
  readonly reason?: string
}

/**
 * The final judgement, counted from the final state: the database rows,
 * the objects in the store, the outbox's events and downloads through the
 * proxy, against what the clients were told.
 */
const judge = async (url: string, s: Snapshot, events: ReadonlyArray<OutboxEvent>, clients: Clients) => {
  const problems: Array<string> = [...checkInvariants(s)]
  const deletions = new Map<string, Array<string>>()
  const adoptions = new Map<string, number>()
  for (const e of events) {
    if (e._tag === "storage.file.deleted") deletions.set(e.key, [...(deletions.get(e.key) ?? []), e.reason ?? "?"])
    if (e._tag === "storage.file.claimed") adoptions.set(e.key, (adoptions.get(e.key) ?? 0) + 1)
  }
  const uploaded = new Set([...s.claims.values()].filter((c) => c.status === "uploaded").map((c) => c.key))
  const referenced = new Set([...s.docRefs.keys(), ...uploaded])

  // Deleted twice: two committed deletions of one key (a claim reaped twice, a row settled by two workers).
  const doubleDeleted = [...deletions].filter(([, reasons]) => reasons.length > 1)
  for (const [key, reasons] of doubleDeleted) problems.push(`${key} deleted ${reasons.length} times (${reasons})`)
  // Wrongly deleted: a deletion of a key that is still referenced.
  const wronglyDeleted = [...deletions.keys()].filter((k) => referenced.has(k))
  for (const key of wronglyDeleted) problems.push(`${key} is referenced but was deleted (${deletions.get(key)})`)
  // Adopted twice, or a document's file without its adoption.
  const adoptedTwice = [...adoptions].filter(([, n]) => n > 1).length
  const unadopted = [...s.docRefs.keys()].filter((k) => adoptions.get(k) !== 1)
  if (adoptedTwice > 0) problems.push(`${adoptedTwice} keys adopted more than once`)
  for (const key of unadopted) problems.push(`${key} is in a document without exactly one adoption event`)

  // What the clients were told, key by key.
  const mustSurvive: Array<string> = []
  let deletionsMissing = 0
  let unknownsKept = 0
  let unknownsDeleted = 0
  for (const u of clients.uploads.values()) {
    const deleted = deletions.get(u.key)?.length ?? 0
    const there = s.objects.has(u.key)
    const gone = deleted === 1 && !there && !referenced.has(u.key)
    const kept = deleted === 0 && there && referenced.has(u.key)
    if (u.state === "completed" && u.dropped === "no") {
      mustSurvive.push(u.key)
      if (!kept) problems.push(`acknowledged upload ${u.key} did not survive (deleted ${deleted}, object ${there})`)
    } else if (u.state === "aborted" || u.dropped === "yes") {
      if (!gone) {
        deletionsMissing++
        problems.push(`${u.key} (${u.state}, dropped ${u.dropped}): deleted ${deleted} times, object ${there}`)
      }
    } else if (u.state !== "sending") {
      // Unknown outcomes, abandoned uploads (the sweeper recovers or reaps them), dropped by an unknown delete.
      if (kept) {
        unknownsKept++
        mustSurvive.push(u.key)
      } else if (gone) unknownsDeleted++
      else problems.push(`${u.key} (${u.state}, dropped ${u.dropped}) is neither kept nor deleted once`)
    } else problems.push(`${u.key} still sending after the clients stopped`)
  }

  // Every object that must survive downloads byte-identical through the proxy.
  let verifiedSha256 = 0
  let lost = 0
  for (const key of mustSurvive) {
    const u = clients.uploads.get(key)!
    const out = await request(url, "GET", `/storage/files/${key}`, { token: tokenOf[u.owner], timeoutMs: 30_000 })
    if (out.kind === "response" && out.status === 200 && sha256(out.body) === u.sha) verifiedSha256++
    else {
      lost++
      problems.push(
        `download of ${key}: ${out.kind === "response" ? `${out.status}, ${out.body.length} bytes` : out.kind}`
      )
    }
  }
  // Stray: an object nothing references.
  const stray = [...s.objects].filter((k) => !referenced.has(k))
  for (const key of stray) problems.push(`stray object ${key}`)

  const byReason: Record<string, number> = {}
  for (const reasons of deletions.values()) for (const r of reasons) byReason[r] = (byReason[r] ?? 0) + 1
  return {
    problems,
    figures: {
      adopted: [...adoptions.values()].reduce((a, b) => a + b, 0),
      adoptedTwice,
      deletedKeys: deletions.size,
      deletions: [...deletions.values()].reduce((a, r) => a + r.length, 0),
      deletionsByReason: byReason,
      doubleDeleted: doubleDeleted.length,
      deletionsMissing,
      wronglyDeleted: wronglyDeleted.length,
      unknownsKept,
      unknownsDeleted,
      documentsAtEnd: s.docs.size,
      objectsAtEnd: s.objects.size,
      verifiedSha256,
      lost,
      leaked: stray.length,
      sessionsLeft: s.sessions,
      tempFilesLeft: s.tempFiles
    }
  }
}
