/**
 * Clients of the example server that upload, complete, attach uploads to
 * documents, replace and delete documents, and abort, concurrently, while
 * the server may be killed under them; and what they know afterwards: what
 * was acknowledged, and what may or may not have happened (a request whose
 * answer was lost).
 */
import { type Outcome, request, routeOf, sha256, Tally } from "./http.js"
import type { Rng } from "./rng.js"
import { sleep } from "./soakServer.js"
import type { Snapshot } from "./state.js"

export type User = "alice" | "bob"
export const tokenOf: Record<User, string> = { alice: "tokenA", bob: "tokenB" }

export interface UploadRecord {
  readonly key: string
  readonly claimId: string
  readonly owner: User
  readonly sha: string
  readonly size: number
  /** "maybe": the complete's answer was lost (or never came). */
  completed: "no" | "yes" | "maybe"
  /** Sent in a document write (whatever its outcome). */
  attachAttempted: boolean
  /** A document write that drops it was sent (whatever its outcome). */
  dropRequested: boolean
}

export interface DocRecord {
  readonly id: string
  readonly owner: User
  /** The files of the last acknowledged write. */
  files: Array<string>
  /** A write whose outcome is unknown happened since. */
  uncertain: boolean
  deleted: boolean
  /** A client is writing it now (two clients never race on one document). */
  busy: boolean
}

export interface WorkloadOptions {
  readonly url: string
  readonly rng: Rng
  readonly partSize: number
  /** Sizes of uploads: [min, max] for most, and a share of multi-part ones. */
  readonly smallMax: number
  readonly multipartShare: number
  readonly clientsPerUser: number
  /** Bound of every request (default 20 s): no answer within it is a finding (a hang). */
  readonly timeoutMs?: number
  /** Whether a refused or reset connection is a finding (the server must stay up). */
  readonly networkIsFinding?: boolean
}

/** Statuses a request may answer without being a finding. */
const acceptable = new Set([200, 201, 204, 403, 404, 409, 410, 422, 429, 503])

export class Workload {
  readonly uploads = new Map<string, UploadRecord>()
  readonly docs = new Map<string, DocRecord>()
  readonly tally = new Tally()
  /** Answers that should never happen (5xx other than 503, timeouts, unexpected statuses). */
  readonly findings: Array<string> = []
  /** Refusals worth a look that are not findings by themselves. */
  readonly notes: Array<string> = []
  private paused = false
  private resume: (() => void) | undefined
  private resumed: Promise<void> = Promise.resolve()
  private stopped = false
  private inFlight = 0
  private loops: Array<Promise<void>> = []
  private docCounter = 0

  constructor(readonly options: WorkloadOptions) {}

  start(): void {
    for (const user of ["alice", "bob"] as const) {
      for (let i = 0; i < this.options.clientsPerUser; i++) {
        this.loops.push(this.loop(user, this.options.rng.fork()))
      }
    }
  }

  /** New requests wait; resolves when none is in flight (their outcome recorded). */
  async pause(): Promise<void> {
    if (!this.paused) {
      this.paused = true
      this.resumed = new Promise((r) => (this.resume = r))
    }
    await this.settled()
  }

  unpause(): void {
    this.paused = false
    this.resume?.()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.unpause()
    await Promise.all(this.loops)
  }

  async settled(): Promise<void> {
    while (this.inFlight > 0) await sleep(10)
  }

  private async send(method: string, path: string, user: User, options: { json?: unknown; body?: Uint8Array } = {}) {
    while (this.paused && !this.stopped) await this.resumed
    this.inFlight++
    try {
      const outcome = await request(this.options.url, method, path, {
        token: tokenOf[user],
        ...options,
        timeoutMs: this.options.timeoutMs ?? 20_000
      })
      const route = routeOf(method, path)
      this.tally.add(route, outcome)
      if (outcome.kind === "timeout") {
        this.findings.push(`${route}: no answer within ${this.options.timeoutMs ?? 20_000} ms`)
      }
      if (outcome.kind === "network" && this.options.networkIsFinding === true) {
        this.findings.push(`${route}: ${outcome.error}`)
      }
      if (outcome.kind === "response" && !acceptable.has(outcome.status)) {
        this.findings.push(`${route}: ${outcome.status} ${outcome.text.slice(0, 300)}`)
      }
      if (outcome.kind === "response" && outcome.status === 503 && outcome.json?._tag !== "ServiceUnavailable") {
        this.findings.push(`${route}: 503 without a ServiceUnavailable body: ${outcome.text.slice(0, 300)}`)
      }
      return outcome
    } finally {
      this.inFlight--
    }
  }

  private async loop(user: User, rng: Rng): Promise<void> {
    while (!this.stopped) {
      const roll = rng.next()
      try {
        if (roll < 0.45) await this.upload(user, rng)
        else if (roll < 0.65) await this.attach(user, rng)
        else if (roll < 0.8) await this.update(user, rng)
        else await this.remove(user, rng)
      } catch (error) {
        this.findings.push(`client error: ${error}`)
      }
      await sleep(rng.int(0, 20))
    }
  }

  private async upload(user: User, rng: Rng): Promise<void> {
    const { multipartShare, partSize, smallMax } = this.options
    const size = rng.chance(multipartShare) ? partSize + rng.int(1, Math.min(partSize, 200_000)) : rng.int(1, smallMax)
    const data = rng.bytes(size)
    const opened = await this.send("POST", "/storage/uploads", user, { json: { filename: `f${size}.bin`, size } })
    if (opened.kind !== "response" || opened.status !== 201) return
    const ticket = opened.json as { claimId: string; key: string; partSize: number; partCount: number }
    const record: UploadRecord = {
      key: ticket.key,
      claimId: ticket.claimId,
      owner: user,
      sha: sha256(data),
      size,
      completed: "no",
      attachAttempted: false,
      dropRequested: false
    }
    this.uploads.set(record.key, record)
    for (let n = 1; n <= ticket.partCount; n++) {
      if (rng.chance(0.04)) return // abandoned: the sweeper's
      const part = data.subarray((n - 1) * ticket.partSize, n * ticket.partSize)
      let sent: Outcome | undefined
      for (let attempt = 0; attempt < 3; attempt++) {
        sent = await this.send("PUT", `/storage/uploads/${ticket.claimId}/parts/${n}`, user, { body: part })
        if (sent.kind === "response" && sent.status < 500) break
        await sleep(100)
      }
      if (sent?.kind !== "response" || sent.status !== 200) return
    }
    if (rng.chance(0.03)) return // abandoned with every part sent
    for (let attempt = 0; attempt < 4; attempt++) {
      const done = await this.send("POST", `/storage/uploads/${ticket.claimId}/complete`, user)
      if (done.kind === "response" && done.status === 200) {
        if (done.json?.size !== size) {
          this.findings.push(`complete of ${record.key} answered size ${done.json?.size}, not ${size}`)
        }
        record.completed = "yes"
        break
      }
      if (done.kind === "response" && done.status < 500) {
        this.notes.push(`complete of ${record.key} (attempt ${attempt + 1}): ${done.status} ${done.text.slice(0, 200)}`)
        if (attempt === 0) return // refused: expired or swept
      }
      record.completed = "maybe"
      await sleep(200)
    }
    // An abort after completion must leave the object alone.
    if (record.completed === "yes" && rng.chance(0.1)) {
      const aborted = await this.send("DELETE", `/storage/uploads/${ticket.claimId}`, user)
      if (aborted.kind === "response" && aborted.status !== 204 && aborted.status !== 503) {
        this.findings.push(`abort of a completed upload answered ${aborted.status}`)
      }
    }
  }

  /** Completed uploads of the user not yet sent in a document write. */
  private free(user: User, includeMaybe: boolean) {
    return [...this.uploads.values()].filter((u) =>
      u.owner === user && !u.attachAttempted && (u.completed === "yes" || (includeMaybe && u.completed === "maybe"))
    )
  }

  private certainDocs(user: User) {
    return [...this.docs.values()].filter((d) => d.owner === user && !d.uncertain && !d.deleted && !d.busy)
  }

  private async attach(user: User, rng: Rng): Promise<void> {
    const free = this.free(user, rng.chance(0.3))
    if (free.length === 0) return
    const chosen = [...new Set([rng.pick(free), rng.pick(free)])].slice(0, rng.int(1, 2))
    for (const u of chosen) u.attachAttempted = true
    const files = chosen.map((u) => u.key)
    const out = await this.send("POST", "/documents", user, { json: { title: `doc ${++this.docCounter}`, files } })
    if (out.kind === "response" && out.status === 201) {
      this.docs.set(out.json.id, { id: out.json.id, owner: user, files, uncertain: false, deleted: false, busy: false })
    } else if (out.kind === "response" && out.status === 422 && chosen.every((u) => u.completed === "yes")) {
      this.findings.push(`attaching completed uploads ${files.join(", ")} was refused: ${out.text.slice(0, 200)}`)
    }
  }

  private async update(user: User, rng: Rng): Promise<void> {
    const docs = this.certainDocs(user)
    if (docs.length === 0) return
    const doc = rng.pick(docs)
    doc.busy = true
    try {
      await this.updateDoc(doc, user, rng)
    } finally {
      doc.busy = false
    }
  }

  private async updateDoc(doc: DocRecord, user: User, rng: Rng): Promise<void> {
    const kept = doc.files.filter(() => rng.chance(0.5))
    const extra = this.free(user, false).slice(0, rng.int(0, 1))
    for (const u of extra) u.attachAttempted = true
    const files = [...kept, ...extra.map((u) => u.key)]
    const dropped = doc.files.filter((k) => !files.includes(k))
    for (const key of dropped) this.uploads.get(key)!.dropRequested = true
    const out = await this.send("PUT", `/documents/${doc.id}`, user, { json: { title: "updated", files } })
    if (out.kind === "response" && out.status === 200) {
      doc.files = files
    } else if (out.kind === "response" && out.status < 500) {
      this.findings.push(`update of document ${doc.id} answered ${out.status}: ${out.text.slice(0, 200)}`)
    } else {
      doc.uncertain = true
    }
  }

  private async remove(user: User, rng: Rng): Promise<void> {
    const docs = this.certainDocs(user)
    if (docs.length === 0) return
    await this.removeDoc(rng.pick(docs))
  }

  async removeDoc(doc: DocRecord): Promise<void> {
    doc.busy = true
    try {
      await this.deleteDoc(doc)
    } finally {
      doc.busy = false
    }
  }

  private async deleteDoc(doc: DocRecord): Promise<void> {
    for (const key of doc.files) this.uploads.get(key)!.dropRequested = true
    const out = await this.send("DELETE", `/documents/${doc.id}`, doc.owner)
    if (out.kind === "response" && out.status === 204) doc.deleted = true
    else if (out.kind === "response" && out.status < 500) {
      this.findings.push(`delete of document ${doc.id} answered ${out.status}: ${out.text.slice(0, 200)}`)
    } else doc.uncertain = true
  }

  /** Deletes up to `n` documents at once (to give the worker a queue to drain). */
  async bulkDelete(n: number): Promise<number> {
    const docs = [...this.docs.values()].filter((d) => !d.uncertain && !d.deleted && !d.busy).slice(0, n)
    await Promise.all(docs.map((d) => this.removeDoc(d)))
    return docs.length
  }

  /**
   * What the clients know, checked against a snapshot: answers the problems.
   * (The snapshot's own invariants are `checkInvariants`.)
   */
  check(s: Snapshot): Array<string> {
    const problems: Array<string> = []
    for (const u of this.uploads.values()) {
      if (u.completed !== "yes") continue
      const claim = s.claims.get(u.key)
      if (!u.attachAttempted) {
        if (claim?.status !== "uploaded") {
          problems.push(`completed upload ${u.key} is no longer claimable (claim: ${claim?.status ?? "none"})`)
        }
        if (!s.objects.has(u.key)) problems.push(`completed upload ${u.key} lost its object`)
        continue
      }
      const accounted = s.docRefs.has(u.key) || claim?.status === "uploaded" || s.queue.has(u.key) || u.dropRequested
      if (!accounted) problems.push(`completed upload ${u.key} is neither adopted, claimable nor queued for deletion`)
    }
    for (const d of this.docs.values()) {
      const row = s.docs.get(d.id)
      if (d.deleted) {
        if (row !== undefined) problems.push(`document ${d.id} was deleted (204) but is still there`)
        continue
      }
      if (d.uncertain) continue
      if (row === undefined) {
        problems.push(`document ${d.id} (acknowledged) is gone`)
        continue
      }
      if (JSON.stringify(row.files) !== JSON.stringify(d.files)) {
        problems.push(
          `document ${d.id} has files ${JSON.stringify(row.files)}, acknowledged ${JSON.stringify(d.files)}`
        )
      }
      for (const key of d.files) if (!s.objects.has(key)) problems.push(`file ${key} of document ${d.id} is gone`)
    }
    return problems
  }
}
