/**
 * Hostile input against the example server (a separate process, PostgreSQL
 * and the filesystem backend):
 *
 * - a property-based test (fast-check): random sequences of API calls by two
 *   users (and anonymous callers): init (right and wrong sizes, hostile
 *   filenames and content types), parts (right and wrong numbers and sizes),
 *   list, complete, abort, download, and documents created, updated, read
 *   and deleted with their own or the other user's uploads and documents.
 *   A model predicts every answer; after each step: the exact status (no
 *   5xx), no access to the other user's claims, documents or private files,
 *   and the objects on disk match the model (none lost, none leaked);
 * - slow clients (slowloris) are cut off, and do not block others;
 * - endless part bodies are answered early and the server's memory stays flat;
 * - oversized JSON bodies and headers are refused.
 */
import * as fc from "effect/FastCheck"
import * as http from "node:http"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sendEndlessBody } from "../support/endlessBody.js"
import { type Outcome, request, requestRaw, routeOf, sha256, Tally } from "./support/http.js"
import { recordSoak } from "./support/results.js"
import { Rng, seedFor } from "./support/rng.js"
import { missing, servers } from "./support/servers.js"
import { sleep, SoakServer } from "./support/soakServer.js"
import { filesystemBackend, type FreshDatabase, freshDatabase, Inspector } from "./support/state.js"

const partSize = 4096
const maxUploadSize = 40_000
const maxPending = 4
const tokens = { alice: "tokenA", bob: "tokenB" } as const
type User = keyof typeof tokens
const users: ReadonlyArray<User> = ["alice", "bob"]

const pgAdmin = servers().pg

// ---- the model ----

type KeyState = "pending" | "uploaded" | "adopted" | "dropped"

interface MKey {
  readonly key: string
  readonly owner: User
  readonly public: boolean
  state: KeyState
  sha?: string
  /** The bytes of an aborted one-part upload stored at its key: served until the worker deletes them. */
  residue?: string
}

interface MClaim {
  readonly claimId: string
  readonly key: string
  readonly owner: User
  readonly size: number
  readonly partCount: number
  live: boolean
  parts: Map<number, Uint8Array>
}

interface MDoc {
  readonly id: string
  readonly owner: User
  files: Array<string>
  live: boolean
}

class Model {
  readonly keys = new Map<string, MKey>()
  readonly claims = new Map<string, MClaim>()
  readonly docs = new Map<string, MDoc>()

  pending(user: User) {
    return [...this.claims.values()].filter((c) =>
      c.live && c.owner === user && this.keys.get(c.key)!.state === "pending"
    )
      .length
  }

  /** Whether a pending key may hold its object already: a single-request upload stores its one part at the key. */
  storedBeforeComplete(key: string) {
    return [...this.claims.values()].some((c) => c.key === key && c.partCount === 1 && c.parts.has(1))
  }

  /** Whether `user` may adopt `key` now: an uploaded claim of theirs. */
  adoptable(user: User, key: string) {
    const k = this.keys.get(key)
    return k !== undefined && k.owner === user && k.state === "uploaded"
  }

  /**
   * A pending one-part upload of `user` whose part (stored whole at its key)
   * was sent but not completed: a business write that names it settles it
   * (the storage holds the object at the declared size) and adopts it.
   */
  settleable(user: User, key: string) {
    const k = this.keys.get(key)
    if (k === undefined || k.owner !== user || k.state !== "pending") return undefined
    return [...this.claims.values()].find((c) => c.live && c.key === key && c.partCount === 1 && c.parts.has(1))
  }

  /** Adoptable now, or once settled by the write that names it. */
  adoptableInWrite(user: User, key: string) {
    return this.adoptable(user, key) || this.settleable(user, key) !== undefined
  }

  docOf(user: User, id: string) {
    const doc = this.docs.get(id)
    return doc !== undefined && doc.live && doc.owner === user ? doc : undefined
  }

  claimOf(user: User, id: string) {
    const claim = this.claims.get(id)
    return claim !== undefined && claim.live && claim.owner === user ? claim : undefined
  }
}

// ---- actions (generated without the state; resolved against it when run) ----

const filenames: ReadonlyArray<[string, "ok" | "invalid" | "schema"]> = [
  ["a.bin", "ok"],
  ["report.pdf", "ok"],
  ["../../etc/passwd.png", "ok"],
  ["C:\\Users\\x\\y.txt", "ok"],
  ["évil ✓.pdf", "ok"],
  ["  spaced .png  ", "ok"],
  ["noext", "ok"],
  [".hidden", "ok"],
  ["page.html", "ok"],
  ["a".repeat(255), "ok"],
  ["", "invalid"],
  ["..", "invalid"],
  ["dir/", "invalid"],
  ["a\r\nX-Injected: 1.txt", "invalid"],
  ["x\u0000.bin", "invalid"],
  ["b".repeat(256), "invalid"],
  ["c".repeat(1025), "schema"]
]
const contentTypes = [undefined, "image/png", "text/html", "image/svg+xml", "application/pdf", "x".repeat(128)]

type Action =
  | {
    readonly t: "init"
    readonly u: number
    readonly size: number
    readonly sizeMode: number
    readonly name: number
    readonly ct: number
    readonly pub: boolean
  }
  | {
    readonly t: "part"
    readonly u: number
    readonly c: number
    readonly pn: number
    readonly len: number
    readonly at?: number
    readonly number?: number
  }
  | { readonly t: "list" | "complete" | "abort"; readonly u: number; readonly c: number; readonly at?: number }
  | { readonly t: "download"; readonly u: number; readonly k: number; readonly query: boolean }
  | { readonly t: "create"; readonly u: number; readonly ks: ReadonlyArray<number>; readonly bad: number }
  | {
    readonly t: "update"
    readonly u: number
    readonly d: number
    readonly keep: number
    readonly ks: ReadonlyArray<number>
  }
  | { readonly t: "delete" | "get"; readonly u: number; readonly d: number; readonly at?: number }
  | { readonly t: "badToken"; readonly endpoint: number }
  | { readonly t: "finish"; readonly u: number; readonly c: number }

const pick = fc.nat({ max: 1000 })
const user = fc.nat(1)
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant("init" as const),
      u: user,
      size: fc.integer({ min: 1, max: 4 * partSize + 100 }),
      sizeMode: fc.nat(19),
      name: fc.nat(3 * filenames.length),
      ct: fc.nat(2 * contentTypes.length),
      pub: fc.boolean()
    })
  },
  {
    weight: 8,
    arbitrary: fc.record({ t: fc.constant("part" as const), u: user, c: pick, pn: fc.nat(9), len: fc.nat(9) })
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("list" as const), u: user, c: pick }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant("complete" as const), u: user, c: pick }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("abort" as const), u: user, c: pick }) },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant("download" as const), u: fc.nat(2), k: pick, query: fc.boolean() })
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("create" as const),
      u: user,
      ks: fc.array(pick, { maxLength: 3 }),
      bad: fc.nat(9)
    })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("update" as const),
      u: user,
      d: pick,
      keep: fc.nat(7),
      ks: fc.array(pick, { maxLength: 2 })
    })
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("delete" as const), u: user, d: pick }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("get" as const), u: user, d: pick }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("badToken" as const), endpoint: fc.nat(5) }) },
  // Every missing part of a pending upload, then complete: uploads get done.
  { weight: 4, arbitrary: fc.record({ t: fc.constant("finish" as const), u: user, c: pick }) }
)

// ---- the suite ----

let server: SoakServer
let database: FreshDatabase
let inspector: Inspector

const figures: Record<string, unknown> = {}

if (pgAdmin === undefined) {
  missing("hostile input against the example server", "PostgreSQL")
} else {
  describe("hostile input against the example server", () => {
    beforeAll(async () => {
      database = await freshDatabase("pg", pgAdmin)
      server = await SoakServer.start({
        name: "example server (hostile input)",
        env: {
          DATABASE_URL: database.url,
          STORAGE_PART_SIZE: String(partSize),
          STORAGE_MAX_UPLOAD_SIZE: String(maxUploadSize),
          STORAGE_MAX_PENDING_CLAIMS: String(maxPending),
          STORAGE_ALLOW_PUBLIC_UPLOADS: "true",
          STORAGE_CLAIM_TTL: "1h",
          STORAGE_DELETE_INTERVAL: "1s",
          STORAGE_SWEEP_INTERVAL: "1s",
          HTTP_HEADERS_TIMEOUT: "2s",
          HTTP_REQUEST_TIMEOUT: "4s"
        }
      })
      inspector = new Inspector(database.url, filesystemBackend(server.root))
    }, 120_000)

    afterAll(async () => {
      console.log(`[soak] hostile input figures: ${JSON.stringify(figures)}`)
      recordSoak("hostile input", Object.keys(figures).length === 0 ? [] : [figures])
      await inspector?.dispose()
      await server?.dispose()
      await database?.drop().catch(() => {})
    })

    it(
      "random API call sequences by two users match the model: no 5xx, no foreign access, nothing lost or leaked",
      async () => {
        const seed = seedFor("hostile input (property)")
        const rng = new Rng(seed)
        const model = new Model()
        const claimIds: Array<string> = ["bogus-claim", "01a2aaaa-0000-7000-8000-000000000000"]
        const keyList: Array<string> = [
          "priv/2026/01/01/01a2aaaa-0000-7000-8000-000000000000.bin",
          "pub/2026/01/01/01a2aaaa-0000-7000-8000-000000000001.png",
          "pub/../priv/x.bin",
          "priv/%2e%2e/%2e%2e/etc/passwd"
        ]
        const docIds: Array<string> = ["no-such-document"]
        let calls = 0
        let steps = 0
        const statuses = new Map<number, number>()

        const byRoute = new Tally()
        const call = async (
          method: string,
          path: string,
          user: User | undefined,
          options: { json?: unknown; body?: Uint8Array; token?: string } = {}
        ) => {
          calls++
          const token = options.token ?? (user === undefined ? undefined : tokens[user])
          const out = method === "GET" ?
            await requestRaw(server.url, method, path, { token }) :
            await request(server.url, method, path, {
              token: options.token ?? (user === undefined ? undefined : tokens[user]),
              json: options.json,
              body: options.body,
              timeoutMs: 15_000
            })
          if (out.kind === "response") statuses.set(out.status, (statuses.get(out.status) ?? 0) + 1)
          byRoute.add(routeOf(method, path), out)
          return out
        }
        const expectStatus = (out: Outcome, status: number, what: string, tag?: string) => {
          if (out.kind !== "response") {
            throw new Error(`${what}: ${out.kind === "network" ? out.error : "no answer within 15 s"}`)
          }
          if (out.status !== status || (tag !== undefined && out.json?._tag !== tag)) {
            throw new Error(
              `${what}: expected ${status}${tag === undefined ? "" : ` ${tag}`}, got ${out.status} ${
                out.text.slice(0, 300)
              }`
            )
          }
          return out
        }

        /** The objects on disk against the model. */
        const checkStorage = async (what: string) => {
          const objects = await inspector.backend.objects()
          for (const k of model.keys.values()) {
            if ((k.state === "uploaded" || k.state === "adopted") && !objects.has(k.key)) {
              throw new Error(`${what}: lost object ${k.key} (${k.state})`)
            }
          }
          for (const key of objects) {
            const k = model.keys.get(key)
            if (k === undefined || (k.state === "pending" && !model.storedBeforeComplete(key))) {
              throw new Error(`${what}: leaked object ${key} (${k?.state ?? "unknown"})`)
            }
          }
        }

        const run = async (a: Action): Promise<void> => {
          steps++
          const what = JSON.stringify(a).slice(0, 200)
          switch (a.t) {
            case "init": {
              const user = users[a.u]!
              // Mostly valid names and types, so that uploads go through.
              const [filename, nameKind] = filenames[a.name < filenames.length ? a.name : a.name % 10]!
              const size = a.sizeMode === 0 ? 0 : a.sizeMode === 1 ? maxUploadSize + 1 : a.sizeMode === 2 ? 1.5 : a.size
              const contentType = contentTypes[a.ct < contentTypes.length ? a.ct : 0]
              const out = await call("POST", "/storage/uploads", user, {
                json: { filename, size, public: a.pub, ...(contentType === undefined ? {} : { contentType }) }
              })
              if (nameKind === "schema" || (contentType !== undefined && contentType.length > 127)) {
                return void expectStatus(out, 400, what)
              }
              if (size === 0 || size === 1.5) return void expectStatus(out, 422, what, "InvalidUploadSize")
              if (size > maxUploadSize) return void expectStatus(out, 413, what, "UploadTooLarge")
              if (nameKind === "invalid") return void expectStatus(out, 422, what, "InvalidFilename")
              if (model.pending(user) >= maxPending) return void expectStatus(out, 429, what, "TooManyPendingUploads")
              const ok = expectStatus(out, 201, what)
              const ticket = ok.json as { claimId: string; key: string; partSize: number; partCount: number }
              const keyPattern = a.pub
                ? /^pub\/\d{4}\/\d\d\/\d\d\/[0-9a-f-]{36}\.[A-Za-z0-9]+$/
                : /^priv\/\d{4}\/\d\d\/\d\d\/[0-9a-f-]{36}\.[A-Za-z0-9]+$/
              if (!keyPattern.test(ticket.key)) throw new Error(`${what}: key ${ticket.key}`)
              if (ticket.partSize !== partSize || ticket.partCount !== Math.ceil(size / partSize)) {
                throw new Error(`${what}: ticket ${ok.text}`)
              }
              model.claims.set(ticket.claimId, {
                claimId: ticket.claimId,
                key: ticket.key,
                owner: user,
                size,
                partCount: ticket.partCount,
                live: true,
                parts: new Map()
              })
              model.keys.set(ticket.key, { key: ticket.key, owner: user, public: a.pub, state: "pending" })
              claimIds.push(ticket.claimId)
              keyList.push(ticket.key)
              return
            }
            case "part": {
              const user = users[a.u]!
              const claimId = a.at !== undefined ? claimIds[a.at]! : claimFor(user, a.c)
              const owned = model.claimOf(user, claimId)
              const partCount = owned?.partCount ?? 1
              const partNumber = a.number ??
                (a.pn === 0 ? 0 : a.pn === 1 ? partCount + 1 : a.pn === 2 ? "x1" : 1 + (a.pn % partCount))
              const n = typeof partNumber === "number" ? partNumber : 0
              const expected = owned === undefined || n < 1 || n > partCount
                ? 10
                : n < partCount
                ? partSize
                : owned.size - partSize * (partCount - 1)
              const length = a.len === 0 ? Math.max(0, expected - 1) : a.len === 1 ? expected + 1 : expected
              const data = rng.bytes(length)
              const out = await call("PUT", `/storage/uploads/${claimId}/parts/${partNumber}`, user, { body: data })
              if (typeof partNumber === "string") return void expectStatus(out, 400, what)
              if (owned === undefined) return void expectStatus(out, 403, what, "AccessDenied")
              if (model.keys.get(owned.key)!.state !== "pending") {
                return void expectStatus(out, 409, what, "ClaimNotPending")
              }
              if (n < 1 || n > partCount) {
                return void expectStatus(out, 422, what, "PartNumberOutOfRange")
              }
              if (length > expected) {
                return void expectStatus(out, 413, what, "PartTooLarge")
              }
              if (length < expected) return void expectStatus(out, 422, what, "PartTooSmall")
              const ok = expectStatus(out, 200, what)
              if (ok.json?.partNumber !== n || ok.json?.size !== length) throw new Error(`${what}: ${ok.text}`)
              owned.parts.set(n, data)
              return
            }
            case "list": {
              const user = users[a.u]!
              const claimId = claimFor(user, a.c)
              const owned = model.claimOf(user, claimId)
              const out = await call("GET", `/storage/uploads/${claimId}/parts`, user)
              if (owned === undefined) return void expectStatus(out, 403, what, "AccessDenied")
              if (model.keys.get(owned.key)!.state !== "pending") {
                return void expectStatus(out, 409, what, "ClaimNotPending")
              }
              const ok = expectStatus(out, 200, what)
              const wanted = [...owned.parts.entries()].sort(([x], [y]) => x - y).map(([partNumber, d]) => ({
                partNumber,
                size: d.length
              }))
              if (JSON.stringify(ok.json) !== JSON.stringify({ parts: wanted })) {
                throw new Error(`${what}: ${ok.text}`)
              }
              return
            }
            case "complete": {
              const user = users[a.u]!
              const claimId = a.at !== undefined ? claimIds[a.at]! : claimFor(user, a.c)
              const owned = model.claimOf(user, claimId)
              const out = await call("POST", `/storage/uploads/${claimId}/complete`, user)
              if (owned === undefined) {
                return void expectStatus(out, 403, what, "AccessDenied")
              }
              const k = model.keys.get(owned.key)!
              if (k.state === "pending" && owned.parts.size !== owned.partCount) {
                return void expectStatus(out, 422, what, "PartsIncomplete")
              }
              const ok = expectStatus(out, 200, what)
              if (ok.json?.key !== owned.key || ok.json?.size !== owned.size) throw new Error(`${what}: ${ok.text}`)
              if (k.state === "pending") {
                const whole = Buffer.concat([...owned.parts.entries()].sort(([x], [y]) => x - y).map(([, d]) => d))
                k.state = "uploaded"
                k.sha = sha256(whole)
                owned.parts.clear()
              }
              return
            }
            case "abort": {
              const user = users[a.u]!
              const claimId = a.at !== undefined ? claimIds[a.at]! : claimFor(user, a.c)
              const claim = model.claims.get(claimId)
              const out = await call("DELETE", `/storage/uploads/${claimId}`, user)
              if (claim === undefined || !claim.live) return void expectStatus(out, 204, what)
              if (claim.owner !== user) return void expectStatus(out, 403, what, "AccessDenied")
              expectStatus(out, 204, what)
              const k = model.keys.get(claim.key)!
              if (k.state === "pending") {
                claim.live = false
                k.state = "dropped"
                const stored = claim.partCount === 1 ? claim.parts.get(1) : undefined
                if (stored !== undefined) k.residue = sha256(stored)
              }
              return
            }
            case "download": {
              const user = a.u === 2 ? undefined : users[a.u]!
              const key = a.k % 10 < 5 && model.keys.size > 0
                ? [...model.keys.keys()][a.k % model.keys.size]!
                : keyList[a.k % keyList.length]!
              const path = `/storage/files/${key}${
                a.query && user !== undefined ? `?access_token=${tokens[user]}` : ""
              }`
              const out = await call("GET", path, a.query ? undefined : user)
              if (key.includes("..") || key.includes("%")) return void expectStatus(out, 422, what, "InvalidObjectKey")
              const k = model.keys.get(key)
              const isPublic = key.startsWith("pub/")
              const answered = out.kind === "response" ? out.status : -1
              if (isPublic) {
                if (k === undefined || k.state === "pending") return void expectStatus(out, 404, what, "ObjectNotFound")
                // Queued for deletion: there until the worker's next run.
                if (k.state === "dropped" && answered === 404) return
                if (k.state === "dropped" && k.sha === undefined && k.residue !== undefined) {
                  const ok = expectStatus(out, 200, what)
                  if (sha256(ok.body) !== k.residue) throw new Error(`${what}: not the aborted upload's bytes`)
                  return
                }
              } else {
                // `?access_token=` authenticates nobody (signed links replaced it).
                if (user === undefined || a.query) return void expectStatus(out, 401, what, "Unauthenticated")
                // The default ACL: the uploader, from completion until the
                // object is deleted (plus the example's rule: the owner of a
                // document that references it, who is the uploader too).
                if (k === undefined || k.owner !== user || k.sha === undefined) {
                  return void expectStatus(out, 403, what, "AccessDenied")
                }
                // Queued for deletion: readable until the worker deletes it.
                if (k.state === "dropped" && (answered === 403 || answered === 404)) return
              }
              const ok = expectStatus(out, 200, what)
              if (sha256(ok.body) !== k!.sha) throw new Error(`${what}: the bytes differ`)
              const type = ok.headers.get("content-type") ?? ""
              if (/html|xml|javascript|svg/i.test(type) || ok.headers.get("x-content-type-options") !== "nosniff") {
                throw new Error(`${what}: served as ${type}`)
              }
              return
            }
            case "create": {
              const user = users[a.u]!
              const files = a.ks.map((i) => keyFor(user, i))
              if (a.bad === 0) files.push("not-a-key-of-anyone")
              const title = a.bad === 1 ? "" : `doc ${steps}`
              const out = await call("POST", "/documents", user, { json: { title, files } })
              if (title === "") return void expectStatus(out, 400, what)
              if (!files.every((f) => model.adoptableInWrite(user, f))) {
                return void expectStatus(out, 422, what, "ClaimNotFound")
              }
              const ok = expectStatus(out, 201, what)
              for (const f of files) settle(user, f)
              if (JSON.stringify(ok.json.files) !== JSON.stringify(files)) {
                throw new Error(`${what}: ${ok.text}`)
              }
              model.docs.set(ok.json.id, { id: ok.json.id, owner: user, files, live: true })
              for (const f of files) adopt(f)
              docIds.push(ok.json.id)
              return
            }
            case "update": {
              const user = users[a.u]!
              const id = docFor(user, a.d)
              const doc = model.docOf(user, id)
              const kept = (doc?.files ?? []).filter((_, i) => ((a.keep >> i) & 1) === 1)
              const files = [...kept, ...a.ks.map((i) => keyFor(user, i))]
              const out = await call("PUT", `/documents/${id}`, user, { json: { title: "updated", files } })
              if (doc === undefined) return void expectStatus(out, 404, what, "DocumentNotFound")
              const added = [...new Set(files)].filter((f) => !doc.files.includes(f))
              if (!added.every((f) => model.adoptableInWrite(user, f))) {
                return void expectStatus(out, 422, what, "ClaimNotFound")
              }
              expectStatus(out, 200, what)
              for (const f of added) settle(user, f)
              for (const f of added) {
                adopt(f)
              }
              for (const f of new Set(doc.files)) {
                if (!files.includes(f)) drop(f)
              }
              doc.files = files
              return
            }
            case "delete": {
              const user = users[a.u]!
              const id = a.at !== undefined ? docIds[a.at]! : docFor(user, a.d)
              const doc = model.docOf(user, id)
              const out = await call("DELETE", `/documents/${id}`, user)
              if (doc === undefined) return void expectStatus(out, 404, what, "DocumentNotFound")
              expectStatus(out, 204, what)
              doc.live = false
              for (const f of new Set(doc.files)) drop(f)
              return
            }
            case "get": {
              const user = users[a.u]!
              const id = docFor(user, a.d)
              const doc = model.docOf(user, id)
              const out = await call("GET", `/documents/${id}`, user)
              if (doc === undefined) return void expectStatus(out, 404, what, "DocumentNotFound")
              const ok = expectStatus(out, 200, what)
              if (JSON.stringify(ok.json.files) !== JSON.stringify(doc.files)) throw new Error(`${what}: ${ok.text}`)
              return
            }
            case "finish": {
              // Every missing part of one of the user's pending uploads, right, then complete.
              const user = users[a.u]!
              const own = [...model.claims.values()].filter((c) =>
                c.live && c.owner === user && model.keys.get(c.key)!.state === "pending"
              )
              if (own.length === 0) return
              const claim = own[a.c % own.length]!
              const claimIndex = claimIds.indexOf(claim.claimId)
              for (let n = 1; n <= claim.partCount; n++) {
                if (!claim.parts.has(n)) {
                  await run({ t: "part", u: a.u, c: 0, pn: 3, len: 3, at: claimIndex, number: n })
                }
              }
              return run({ t: "complete", u: a.u, c: 0, at: claimIndex })
            }
            case "badToken": {
              const claimId = claimIds[claimIds.length - 1]!
              const endpoints: Array<[string, string]> = [
                ["POST", "/storage/uploads"],
                ["PUT", `/storage/uploads/${claimId}/parts/1`],
                ["POST", `/storage/uploads/${claimId}/complete`],
                ["DELETE", `/storage/uploads/${claimId}`],
                ["POST", "/documents"],
                ["GET", `/documents/${docIds[docIds.length - 1]}`]
              ]
              const [method, path] = endpoints[a.endpoint]!
              const json = method === "POST" ? { filename: "x.bin", size: 1, title: "t", files: [] } : undefined
              const out = await call(method, path, undefined, {
                token: "not-a-token",
                ...(json === undefined ? {} : { json }),
                ...(method === "PUT" ? { body: new Uint8Array(1) } : {})
              })
              return void expectStatus(out, 401, what, "Unauthenticated")
            }
          }
        }

        /** Mostly the user's own live claims, sometimes any claim ever seen or a bogus one. */
        const claimFor = (user: User, i: number) => {
          const own = [...model.claims.values()].filter((c) => c.live && c.owner === user).map((c) => c.claimId)
          if (i % 10 < 7 && own.length > 0) return own[i % own.length]!
          return claimIds[i % claimIds.length]!
        }
        /** Mostly keys the user may adopt, sometimes any key ever seen (foreign, pending, dropped, hostile). */
        const keyFor = (user: User, i: number) => {
          const mine = [...model.keys.values()].filter((k) => model.adoptable(user, k.key)).map((k) => k.key)
          if (i % 10 < 6 && mine.length > 0) return mine[i % mine.length]!
          return keyList[i % keyList.length]!
        }
        /** Mostly the user's own live documents. */
        const docFor = (user: User, i: number) => {
          const own = [...model.docs.values()].filter((d) => d.live && d.owner === user).map((d) => d.id)
          if (i % 10 < 7 && own.length > 0) return own[i % own.length]!
          return docIds[i % docIds.length]!
        }

        /** A settled one-part upload is uploaded with the bytes of its part. */
        const settle = (user: User, key: string) => {
          const claim = model.settleable(user, key)
          if (claim === undefined) return
          const k = model.keys.get(key)!
          k.state = "uploaded"
          k.sha = sha256(claim.parts.get(1)!)
          claim.parts.clear()
        }
        const adopt = (key: string) => {
          const k = model.keys.get(key)!
          k.state = "adopted"
          for (const c of model.claims.values()) if (c.key === key) c.live = false
        }
        const drop = (key: string) => {
          model.keys.get(key)!.state = "dropped"
        }

        const numRuns = Number(process.env.SOAK_PROPERTY_RUNS ?? 50)
        await fc.assert(
          fc.asyncProperty(fc.array(action, { minLength: 15, maxLength: 60, size: "max" }), async (actions) => {
            for (const a of actions) {
              await run(a)
              await checkStorage(JSON.stringify(a).slice(0, 200))
            }
            // Between runs: abort what is pending, so the cap does not fill up.
            for (const c of model.claims.values()) {
              if (c.live && model.keys.get(c.key)!.state === "pending") {
                await run({ t: "abort", u: users.indexOf(c.owner), c: 0, at: claimIds.indexOf(c.claimId) })
              }
            }
          }),
          { seed: rng.int(0, 2 ** 31 - 1), numRuns, endOnFailure: true }
        )

        // At the end: every document goes, the queue drains, and exactly the
        // uploads nobody adopted are left, byte-identical.
        for (const doc of model.docs.values()) {
          if (doc.live) await run({ t: "delete", u: users.indexOf(doc.owner), d: 0, at: docIds.indexOf(doc.id) })
        }
        const deadline = Date.now() + 30_000
        let depth = await inspector.queueDepth()
        while (depth.live > 0 && Date.now() < deadline) {
          await sleep(200)
          depth = await inspector.queueDepth()
        }
        expect(depth).toEqual({ live: 0, dead: 0, pendingClaims: 0 })
        const objects = await inspector.backend.objects()
        const uploaded = [...model.keys.values()].filter((k) => k.state === "uploaded").map((k) => k.key)
        // Counted from the final state: uploads missing or differing, objects nobody uploaded.
        const lost = new Set(uploaded.filter((key) => !objects.has(key)))
        for (const key of uploaded) {
          const k = model.keys.get(key)!
          const out = await request(server.url, "GET", `/storage/files/${key}`, { token: tokens[k.owner] })
          if (out.kind !== "response" || sha256(out.body) !== k.sha) lost.add(key)
        }
        const leaked = [...objects].filter((key) => !uploaded.includes(key))
        Object.assign(figures, {
          seed,
          runs: numRuns,
          steps,
          apiCalls: calls,
          statuses: Object.fromEntries([...statuses.entries()].sort(([x], [y]) => x - y)),
          byRoute: byRoute.toString(),
          uploadsCompleted: [...model.keys.values()].filter((k) => k.sha !== undefined).length,
          documents: model.docs.size,
          objectsLeft: objects.size,
          lost: lost.size,
          leaked: leaked.length
        })
        expect([...lost], "uploads lost or changed").toEqual([])
        expect(leaked, "objects nobody uploaded").toEqual([])
        expect(await inspector.backend.sessions(), "multipart sessions left").toBe(0)
        expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([])
      },
      300_000
    )

    it("slow clients (slowloris) are cut off with 408 and never block other requests", async () => {
      const ticket = (await request(server.url, "POST", "/storage/uploads", {
        token: tokens.alice,
        json: { filename: "slow.bin", size: partSize }
      })) as Extract<Outcome, { kind: "response" }>
      expect(ticket.status).toBe(201)
      const port = new URL(server.url).port
      const slow = (kind: "headers" | "body") =>
        new Promise<{ millis: number; answer: string }>((resolve) => {
          const started = Date.now()
          const socket = net.connect(Number(port), "127.0.0.1")
          let answer = ""
          socket.on("data", (d) => (answer += d))
          socket.on("error", () => {})
          socket.on("close", () => {
            clearInterval(timer)
            resolve({ millis: Date.now() - started, answer })
          })
          if (kind === "headers") {
            socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n`)
          } else {
            socket.write(
              `PUT /storage/uploads/${ticket.json.claimId}/parts/1 HTTP/1.1\r\nHost: x\r\n` +
                `Authorization: Bearer ${tokens.alice}\r\nContent-Length: ${partSize}\r\n\r\n`
            )
          }
          // A byte (or a header line) every 300 ms: never done.
          const timer = setInterval(() => {
            if (!socket.writable) return
            socket.write(kind === "headers" ? "X-Slow: 1\r\n" : "a")
          }, 300)
        })
      const slowOnes = [
        ...Array.from({ length: 40 }, () => slow("headers")),
        ...Array.from({ length: 40 }, () => slow("body"))
      ]
      // Meanwhile, others are served at once.
      await sleep(500)
      const latencies: Array<number> = []
      for (let i = 0; i < 10; i++) {
        const t0 = Date.now()
        const ok = await request(server.url, "GET", "/healthz", { timeoutMs: 2000 })
        expect(ok.kind === "response" && ok.status).toBe(200)
        latencies.push(Date.now() - t0)
        await sleep(100)
      }
      const results = await Promise.all(slowOnes)
      // Headers within 2 s and the whole request within 4 s, checked every 0.5 s.
      for (const [i, r] of results.entries()) {
        expect(r.millis, `slow client ${i}`).toBeLessThan(i < 40 ? 4000 : 6500)
        expect(r.answer, `slow client ${i}`).toMatch(/^HTTP\/1\.1 408 /)
      }
      const listed = await request(server.url, "GET", `/storage/uploads/${ticket.json.claimId}/parts`, {
        token: tokens.alice
      })
      expect(listed.kind === "response" && listed.json).toEqual({ parts: [] })
      await request(server.url, "DELETE", `/storage/uploads/${ticket.json.claimId}`, { token: tokens.alice })
      Object.assign(figures, {
        slowClients: results.length,
        slowCutOffMillisMax: Math.max(...results.map((r) => r.millis)),
        healthzDuringSlowlorisMillisMax: Math.max(...latencies)
      })
    }, 60_000)

    it("endless part bodies are answered early (413) and the server's memory stays flat", async () => {
      const ticket = (await request(server.url, "POST", "/storage/uploads", {
        token: tokens.alice,
        json: { filename: "endless.bin", size: 2 * partSize }
      })) as Extract<Outcome, { kind: "response" }>
      expect(ticket.status).toBe(201)
      const port = Number(new URL(server.url).port)
      const endless = () =>
        sendEndlessBody({
          port,
          path: `/storage/uploads/${ticket.json.claimId}/parts/1`,
          token: tokens.alice,
          chunkSize: 64 * 1024,
          limit: 512 * 1024 * 1024
        })
      // Warm up, then measure.
      for (let i = 0; i < 4; i++) await endless()
      const before = server.rss()
      let total = 0
      for (let round = 0; round < 10; round++) {
        const results = await Promise.all(Array.from({ length: 4 }, endless))
        for (const r of results) {
          expect(r.answer).toMatch(/^HTTP\/1\.1 413 /)
          expect(r.sent).toBeLessThan(32 * 1024 * 1024)
          total += r.sent
        }
      }
      const after = server.rss()
      expect(after - before, `RSS ${before} -> ${after} after ${total} bytes sent`).toBeLessThan(48 * 1024 * 1024)
      const listed = await request(server.url, "GET", `/storage/uploads/${ticket.json.claimId}/parts`, {
        token: tokens.alice
      })
      expect(listed.kind === "response" && listed.json).toEqual({ parts: [] })
      await request(server.url, "DELETE", `/storage/uploads/${ticket.json.claimId}`, { token: tokens.alice })
      Object.assign(figures, {
        endlessBodies: 44,
        endlessBytesSent: total,
        rssBefore: before,
        rssAfter: after
      })
    }, 120_000)

    it("oversized JSON bodies and headers are refused; normal requests still work", async () => {
      const port = Number(new URL(server.url).port)
      const send = (path: string, headers: Record<string, string>, body?: string) =>
        new Promise<{ status: number | "reset"; body: string }>((resolve) => {
          const req = http.request({
            host: "127.0.0.1",
            port,
            path,
            method: body === undefined ? "GET" : "POST",
            headers
          }, (res) => {
            let text = ""
            res.on("data", (d) => (text += d))
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }))
          })
          req.on("error", () => resolve({ status: "reset", body: "" }))
          req.end(body)
        })
      const auth = { authorization: `Bearer ${tokens.alice}`, "content-type": "application/json" }
      const before = server.rss()
      for (const megabytes of [2, 8, 32]) {
        const big = JSON.stringify({ filename: "a.bin", size: 10, pad: "x".repeat(megabytes * 1024 * 1024) })
        const r = await send("/storage/uploads", auth, big)
        // Refused: a 4xx, or the connection cut once the limit (1 MiB) is passed.
        expect(r.status === "reset" || (r.status >= 400 && r.status < 500), `${megabytes} MiB: ${r.status}`).toBe(true)
        const doc = await send(
          "/documents",
          auth,
          JSON.stringify({ title: "t", files: [], pad: "y".repeat(megabytes * 1024 * 1024) })
        )
        expect(
          doc.status === "reset" || (doc.status >= 400 && doc.status < 500),
          `${megabytes} MiB document: ${doc.status}`
        ).toBe(true)
      }
      expect(server.rss() - before).toBeLessThan(64 * 1024 * 1024)
      const tooMany = await send(
        "/documents",
        auth,
        JSON.stringify({ title: "t", files: Array.from({ length: 101 }, (_, i) => `k${i}`) })
      )
      expect(tooMany.status).toBe(400)
      // Over Node's 16 KiB header limit: 431 (or, when the server closes
      // while the client is still writing, a reset); never served.
      const headers = await Promise.all(
        [17, 17, 20, 64, 256].map((k) => send("/healthz", { "x-big": "h".repeat(k * 1024) }))
      )
      for (const h of headers) expect([431, "reset"]).toContain(h.status)
      expect(headers.map((h) => h.status)).toContain(431)
      // Still serving, and a normal body under the limit is fine.
      const fine = await send(
        "/storage/uploads",
        auth,
        JSON.stringify({ filename: "ok.bin", size: 10, pad: "z".repeat(100_000) })
      )
      expect(fine.status).toBe(201)
      await request(server.url, "DELETE", `/storage/uploads/${JSON.parse(fine.body).claimId}`, { token: tokens.alice })
      expect(server.alive).toBe(true)
    }, 60_000)
  })
}
