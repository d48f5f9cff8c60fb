/**
 * Clients of several example servers behind one address (the round-robin
 * proxy): they open uploads, send parts, resume an upload whose part request
 * was cut (read the parts list back, send what is missing), complete, abort,
 * abandon, adopt uploads into documents and delete documents. Every request
 * whose outcome is unknown (a 502 or a cut connection: the server may have
 * been killed before or after doing it) is retried when that is safe, or
 * recorded as unknown; what was acknowledged is recorded as such, for the
 * final judgement (see `judge` in multiServer.soak.ts).
 */
import { type Outcome, request, routeOf, sha256, Tally } from "./http.js"
import type { Rng } from "./rng.js"
import { sleep } from "./soakServer.js"
import { tokenOf, type User } from "./workload.js"

export interface SharedUpload {
  readonly key: string
  readonly claimId: string
  readonly owner: User
  readonly sha: string
  readonly size: number
  readonly partCount: number
  /**
   * What the client knows: still `sending`; `completed` (acknowledged);
   * `aborted` (acknowledged); `abandoned` on purpose; `unknown` (a complete
   * or abort never answered, or a definite refusal such as an expired
   * claim): the sweeper recovers or reaps it.
   */
  state: "sending" | "completed" | "aborted" | "abandoned" | "unknown"
  /** Sent in a document create (whatever its outcome). */
  adoptAttempted: boolean
  /** The document that adopted it (acknowledged). */
  doc: string | undefined
  /** Its document's deletion: acknowledged, unknown, or none. */
  dropped: "no" | "yes" | "maybe"
}

export interface SharedDoc {
  readonly id: string
  readonly owner: User
  readonly files: ReadonlyArray<string>
  state: "live" | "busy" | "deleted" | "unknown"
}

export interface SharedClientsOptions {
  readonly url: string
  readonly rng: Rng
  readonly clients: number
  readonly partSize: number
  /** Share of uploads of several parts (the rest fit in one). */
  readonly multipartShare: number
  /** The most parts of a multi-part upload. */
  readonly maxParts: number
  /** Largest one-part upload. */
  readonly smallMax: number
}

/** Statuses that are answers (not findings) for these clients. */
const acceptable = new Set([200, 201, 204, 403, 404, 409, 410, 422, 429, 502, 503])

/** Whether the outcome leaves unknown whether the request took effect. */
const unknownOutcome = (o: Outcome) => o.kind !== "response" || o.status === 502 || o.status === 503

export class SharedClients {
  readonly uploads = new Map<string, SharedUpload>()
  readonly docs = new Map<string, SharedDoc>()
  readonly tally = new Tally()
  /** Answers that should never happen. */
  readonly findings: Array<string> = []
  readonly counts = {
    initsCut: 0,
    /** Uploads that read their parts list back after a cut part request and went on. */
    uploadsResumed: 0,
    /** Parts sent again because the list read back lacked them. */
    partsResent: 0,
    /** Parts whose request was cut but that the list showed recorded (not sent again). */
    partsCutButRecorded: 0,
    /** Completes retried after an unknown outcome, and then acknowledged. */
    completesRetried: 0,
    /** Document deletions retried after an unknown outcome, answered 404: the first one took effect. */
    deletesFoundDone: 0,
    adoptionsUnknown: 0
  }
  private stopped = false
  private loops: Array<Promise<void>> = []
  private counter = 0

  constructor(readonly options: SharedClientsOptions) {}

  start(): void {
    for (let i = 0; i < this.options.clients; i++) {
      this.loops.push(this.loop(i % 2 === 0 ? "alice" : "bob", this.options.rng.fork()))
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.loops)
  }

  private async send(method: string, path: string, user: User, options: { json?: unknown; body?: Uint8Array } = {}) {
    const outcome = await request(this.options.url, method, path, {
      token: tokenOf[user],
      ...options,
      timeoutMs: 30_000
    })
    const route = routeOf(method, path)
    this.tally.add(route, outcome)
    if (outcome.kind === "timeout") this.findings.push(`${route}: no answer within 30 s`)
    if (outcome.kind === "response" && !acceptable.has(outcome.status)) {
      this.findings.push(`${route}: ${outcome.status} ${outcome.text.slice(0, 300)}`)
    }
    return outcome
  }

  private async loop(user: User, rng: Rng): Promise<void> {
    while (!this.stopped) {
      const roll = rng.next()
      try {
        if (roll < 0.55) await this.upload(user, rng)
        else if (roll < 0.8) await this.adopt(user, rng)
        else await this.deleteSome(user, rng)
      } catch (error) {
        this.findings.push(`client error: ${error}`)
      }
      await sleep(rng.int(0, 30))
    }
  }

  private async upload(user: User, rng: Rng): Promise<void> {
    const { maxParts, multipartShare, partSize, smallMax } = this.options
    const size = rng.chance(multipartShare)
      ? partSize * rng.int(1, maxParts - 1) + rng.int(1, Math.min(partSize, 300_000))
      : rng.int(1, smallMax)
    const data = rng.bytes(size)
    const opened = await this.send("POST", "/storage/uploads", user, { json: { filename: `f${size}.bin`, size } })
    if (unknownOutcome(opened)) {
      this.counts.initsCut++
      return
    }
    if (opened.kind !== "response" || opened.status !== 201) return
    const ticket = opened.json as { claimId: string; key: string; partSize: number; partCount: number }
    const upload: SharedUpload = {
      key: ticket.key,
      claimId: ticket.claimId,
      owner: user,
      sha: sha256(data),
      size,
      partCount: ticket.partCount,
      state: "sending",
      adoptAttempted: false,
      doc: undefined,
      dropped: "no"
    }
    this.uploads.set(upload.key, upload)
    const part = (n: number) => data.subarray((n - 1) * ticket.partSize, n * ticket.partSize)
    if (!(await this.sendParts(upload, part, rng))) return
    if (rng.chance(0.04)) {
      upload.state = "abandoned" // every part sent, never completed: the sweeper's
      return
    }
    if (rng.chance(0.06)) return this.abort(upload)
    await this.complete(upload)
  }

  /**
   * Sends every part; after a cut request, reads the parts list back and
   * sends only what is missing. Answers whether all parts are recorded.
   */
  private async sendParts(upload: SharedUpload, part: (n: number) => Uint8Array, rng: Rng): Promise<boolean> {
    let missing = Array.from({ length: upload.partCount }, (_, i) => i + 1)
    let resumed = false
    for (let round = 0; round < 8; round++) {
      let cut: number | undefined
      for (const n of missing) {
        if (rng.chance(0.02)) {
          upload.state = "abandoned"
          return false
        }
        const sent = await this.send("PUT", `/storage/uploads/${upload.claimId}/parts/${n}`, upload.owner, {
          body: part(n)
        })
        if (unknownOutcome(sent)) {
          cut = n
          break
        }
        if (sent.kind === "response" && sent.status !== 200) {
          upload.state = "unknown" // refused for good (expired, swept): the sweeper's
          return false
        }
      }
      if (cut === undefined) return true
      // The resume: what did the servers record?
      if (!resumed) this.counts.uploadsResumed++
      resumed = true
      await sleep(200)
      const listed = await this.listParts(upload)
      if (listed === undefined) break
      if (listed.has(cut)) this.counts.partsCutButRecorded++
      missing = Array.from({ length: upload.partCount }, (_, i) => i + 1).filter((n) => !listed.has(n))
      this.counts.partsResent += missing.filter((n) => n <= cut).length
      if (missing.length === 0) return true
    }
    upload.state = "unknown"
    return false
  }

  private async listParts(upload: SharedUpload): Promise<Set<number> | undefined> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const out = await this.send("GET", `/storage/uploads/${upload.claimId}/parts`, upload.owner)
      if (out.kind === "response" && out.status === 200) {
        return new Set((out.json.parts as Array<{ partNumber: number }>).map((p) => p.partNumber))
      }
      if (!unknownOutcome(out)) return undefined
      await sleep(300)
    }
    return undefined
  }

  private async complete(upload: SharedUpload): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const done = await this.send("POST", `/storage/uploads/${upload.claimId}/complete`, upload.owner)
      if (done.kind === "response" && done.status === 200) {
        if (done.json?.size !== upload.size) {
          this.findings.push(`complete of ${upload.key} answered size ${done.json?.size}, not ${upload.size}`)
        }
        if (attempt > 0) this.counts.completesRetried++
        upload.state = "completed"
        return
      }
      if (!unknownOutcome(done)) break // refused (an expired claim): the sweeper's
      await sleep(300)
    }
    upload.state = "unknown"
  }

  private async abort(upload: SharedUpload): Promise<void> {
    // Idempotent: retried until answered.
    for (let attempt = 0; attempt < 8; attempt++) {
      const out = await this.send("DELETE", `/storage/uploads/${upload.claimId}`, upload.owner)
      if (out.kind === "response" && out.status === 204) {
        upload.state = "aborted"
        return
      }
      if (!unknownOutcome(out)) {
        this.findings.push(`abort of ${upload.key} answered ${out.kind === "response" ? out.status : out.kind}`)
        break
      }
      await sleep(300)
    }
    upload.state = "unknown"
  }

  private async adopt(user: User, rng: Rng): Promise<void> {
    const free = [...this.uploads.values()].filter((u) =>
      u.owner === user && u.state === "completed" && !u.adoptAttempted
    )
    if (free.length === 0) return
    const chosen = [...new Set([rng.pick(free), rng.pick(free)])]
    for (const u of chosen) u.adoptAttempted = true
    const files = chosen.map((u) => u.key)
    // Not retried: a second create after an unknown first would make a second document.
    const out = await this.send("POST", "/documents", user, { json: { title: `doc ${++this.counter}`, files } })
    if (out.kind === "response" && out.status === 201) {
      this.docs.set(out.json.id, { id: out.json.id, owner: user, files, state: "live" })
      for (const u of chosen) u.doc = out.json.id
    } else if (unknownOutcome(out)) {
      this.counts.adoptionsUnknown++
    } else if (out.kind === "response") {
      this.findings.push(
        `adopting completed uploads ${files.join(", ")} answered ${out.status}: ${out.text.slice(0, 200)}`
      )
    }
  }

  private async deleteSome(user: User, rng: Rng): Promise<void> {
    const live = [...this.docs.values()].filter((d) => d.owner === user && d.state === "live")
    if (live.length === 0) return
    await this.deleteDoc(rng.pick(live))
  }

  /** Deletes up to `n` documents at once (the three workers then have a queue to drain). */
  async bulkDelete(n: number): Promise<number> {
    const live = [...this.docs.values()].filter((d) => d.state === "live").slice(0, n)
    await Promise.all(live.map((d) => this.deleteDoc(d)))
    return live.length
  }

  /** Retried until a definite answer: 204, or 404 after an unknown attempt (the first took effect). */
  private async deleteDoc(doc: SharedDoc): Promise<void> {
    doc.state = "busy"
    const drop = (how: "yes" | "maybe") => {
      for (const key of doc.files) this.uploads.get(key)!.dropped = how
    }
    drop("maybe")
    for (let attempt = 0; attempt < 8; attempt++) {
      const out = await this.send("DELETE", `/documents/${doc.id}`, doc.owner)
      if (out.kind === "response" && (out.status === 204 || (out.status === 404 && attempt > 0))) {
        if (out.status === 404) this.counts.deletesFoundDone++
        doc.state = "deleted"
        return drop("yes")
      }
      if (!unknownOutcome(out)) {
        this.findings.push(`delete of document ${doc.id} answered ${out.kind === "response" ? out.status : out.kind}`)
        break
      }
      await sleep(300)
    }
    doc.state = "unknown"
  }
}
