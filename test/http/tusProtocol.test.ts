/**
 * The tus endpoint's protocol rules and bad input, request by request, on
 * every dialect (memory backend, 64 KiB parts).
 */
import type { HttpServer } from "@effect/platform/HttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createHash, randomBytes } from "node:crypto"
import { request } from "node:http"
import { crc32 } from "node:zlib"
import { tusPath } from "../../src/http/Tus.js"
import { ClaimSweeper } from "../../src/layers/ClaimSweeper.js"
import { DeleteWorker } from "../../src/layers/DeleteWorker.js"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import { Reconciler } from "../../src/layers/Reconciler.js"
import { resumableTailPrefix } from "../../src/schema/Naming.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { describeEachDialect } from "../support/databases.js"
import { init } from "./client.js"
import { baseUrl, tokens, tusServerLayer } from "./tusHarness.js"

const partSize = 64 * 1024
const maxUploadSize = 1024 * 1024

type User = keyof typeof tokens

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly json: any
}

/** One request to the endpoint; tus 1.0 unless `headers` say otherwise. */
const send = (
  method: string,
  path: string,
  options: {
    readonly user?: User | undefined
    readonly headers?: Record<string, string>
    readonly body?: Uint8Array | ReadableStream<Uint8Array>
  } = {}
) =>
  Effect.flatMap(baseUrl, (url) =>
    Effect.promise(async (): Promise<Answer> => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          "Tus-Resumable": "1.0.0",
          ...(options.user === undefined ? {} : { Authorization: `Bearer ${tokens[options.user]}` }),
          ...options.headers
        },
        body: options.body,
        ...(options.body instanceof ReadableStream ? { duplex: "half" } : {})
      } as RequestInit)
      const text = await response.text()
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: response.status, headers: response.headers, json }
    }))

const b64 = (text: string) => Buffer.from(text).toString("base64")

/** Opens an upload as `user`; answers its path. */
const create = (size: number, user: User = "alice", metadata = `filename ${b64("notes.txt")}`) =>
  Effect.map(
    send("POST", tusPath, { user, headers: { "Upload-Length": String(size), "Upload-Metadata": metadata } }),
    (a) => {
      assert.strictEqual(a.status, 201, JSON.stringify(a.json))
      return a.headers.get("location")!
    }
  )

const patch = (
  path: string,
  offset: number | undefined,
  body: Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {}
) =>
  send("PATCH", path, {
    user: "alice",
    body,
    headers: {
      "Content-Type": "application/offset+octet-stream",
      ...(offset === undefined ? {} : { "Upload-Offset": String(offset) }),
      ...headers
    }
  })

const head = (path: string, user: User = "alice") => send("HEAD", path, { user })

const offsetOf = (path: string) =>
  Effect.map(head(path), (a) => {
    assert.strictEqual(a.status, 200)
    return Number(a.headers.get("upload-offset"))
  })

const sha1 = (bytes: Uint8Array) => createHash("sha1").update(bytes).digest("base64")

/** A body sent without Content-Length (chunked), in the given pieces. */
const chunked = (pieces: ReadonlyArray<Uint8Array>) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) controller.enqueue(piece)
      controller.close()
    }
  })

/**
 * A PATCH at offset 0 as alice, as a raw Node request, so that its body can
 * be written piece by piece, stalled or cut off.
 */
const openPatch = (url: string, path: string, headers: Record<string, string> = {}) => {
  const req = request(`${url}${path}`, {
    method: "PATCH",
    headers: {
      "Tus-Resumable": "1.0.0",
      Authorization: `Bearer ${tokens.alice}`,
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": "0",
      ...headers
    }
  })
  req.on("error", () => {})
  return req
}

/** Sends `attempt` every 100 ms until its answer satisfies `done` (at most 50 times); the last answer. */
const pollUntil = (attempt: Effect.Effect<Answer, never, HttpServer>, done: (answer: Answer) => boolean) =>
  Effect.gen(function*() {
    let answer: Answer | undefined
    for (let tries = 0; tries < 50 && (answer === undefined || !done(answer)); tries++) {
      yield* Effect.sleep("100 millis")
      answer = yield* attempt
    }
    return answer!
  })

const tailObjects = Effect.flatMap(
  ObjectStorage,
  (objects) =>
    Effect.map(Stream.runCollect(objects.listObjects(resumableTailPrefix)), (c) => Chunk.toArray(c).map((o) => o.key))
)

const pendingOfAlice = Effect.flatMap(ClaimStore, (claims) => claims.countPendingByOwner("alice"))

const suite = (it: Vitest.MethodsNonLive<any>) => {
  it.effect("OPTIONS lists version, extensions, max size and checksum algorithms, without credentials", () =>
    Effect.gen(function*() {
      const a = yield* send("OPTIONS", tusPath, { headers: { "Tus-Resumable": "" } })
      assert.strictEqual(a.status, 204)
      assert.strictEqual(a.headers.get("tus-version"), "1.0.0")
      assert.strictEqual(a.headers.get("tus-resumable"), "1.0.0")
      assert.deepStrictEqual(a.headers.get("tus-extension")!.split(","), [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum"
      ])
      assert.strictEqual(a.headers.get("tus-max-size"), String(maxUploadSize))
      assert.includeMembers(a.headers.get("tus-checksum-algorithm")!.split(","), ["sha1", "md5", "crc32"])
    }))

  it.effect("CORS: a preflight from another origin is allowed, and answers expose the tus headers", () =>
    Effect.gen(function*() {
      const preflight = yield* send("OPTIONS", `${tusPath}some-id`, {
        headers: {
          Origin: "https://app.example",
          "Access-Control-Request-Method": "PATCH",
          "Access-Control-Request-Headers": "authorization,upload-offset,tus-resumable,content-type"
        }
      })
      assert.strictEqual(preflight.status, 204)
      assert.strictEqual(preflight.headers.get("access-control-allow-origin"), "*")
      assert.include(preflight.headers.get("access-control-allow-methods")!, "PATCH")
      const allowed = preflight.headers.get("access-control-allow-headers")!.toLowerCase()
      for (const header of ["authorization", "upload-offset", "tus-resumable", "upload-metadata", "upload-checksum"]) {
        assert.include(allowed, header)
      }
      const created = yield* send("POST", tusPath, {
        user: "alice",
        headers: { Origin: "https://app.example", "Upload-Length": "10" }
      })
      assert.strictEqual(created.status, 201)
      assert.strictEqual(created.headers.get("access-control-allow-origin"), "*")
      const exposed = created.headers.get("access-control-expose-headers")!.toLowerCase()
      for (const header of ["upload-offset", "location", "upload-expires", "storage-key"]) {
        assert.include(exposed, header)
      }
    }))

  it.effect("a missing or unsupported Tus-Resumable is 412 with Tus-Version; an unknown draft version too", () =>
    Effect.gen(function*() {
      const pending = yield* pendingOfAlice
      const missing = yield* send("POST", tusPath, {
        user: "alice",
        headers: { "Tus-Resumable": "", "Upload-Length": "10" }
      })
      assert.deepStrictEqual([missing.status, missing.json._tag], [412, "UnsupportedProtocolVersion"])
      assert.strictEqual(missing.headers.get("tus-version"), "1.0.0")
      const old = yield* send("POST", tusPath, { user: "alice", headers: { "Tus-Resumable": "0.2.2" } })
      assert.strictEqual(old.status, 412)
      const draft = yield* send("POST", tusPath, {
        user: "alice",
        headers: { "Tus-Resumable": "", "Upload-Draft-Interop-Version": "99", "Upload-Length": "10" }
      })
      assert.strictEqual(draft.status, 412)
      assert.strictEqual(yield* pendingOfAlice, pending)
    }))

  it.effect("no or a wrong bearer token is 401", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* send("POST", tusPath, { headers: { "Upload-Length": "10" } })).status, 401)
      const wrong = yield* send("POST", tusPath, {
        headers: { "Upload-Length": "10", Authorization: "Bearer nope" }
      })
      assert.strictEqual(wrong.status, 401)
    }))

  it.effect("creation needs Upload-Length (no deferred length, no concatenation) within Tus-Max-Size", () =>
    Effect.gen(function*() {
      const pending = yield* pendingOfAlice
      const none = yield* send("POST", tusPath, { user: "alice" })
      assert.deepStrictEqual([none.status, none.json._tag], [400, "InvalidUploadRequest"])
      const deferred = yield* send("POST", tusPath, { user: "alice", headers: { "Upload-Defer-Length": "1" } })
      assert.strictEqual(deferred.status, 400)
      const concat = yield* send("POST", tusPath, {
        user: "alice",
        headers: { "Upload-Length": "10", "Upload-Concat": "partial" }
      })
      assert.strictEqual(concat.status, 400)
      const big = yield* send("POST", tusPath, {
        user: "alice",
        headers: { "Upload-Length": String(maxUploadSize + 1) }
      })
      assert.deepStrictEqual([big.status, big.json._tag], [413, "UploadTooLarge"])
      const negative = yield* send("POST", tusPath, { user: "alice", headers: { "Upload-Length": "-5" } })
      assert.strictEqual(negative.status, 400)
      assert.strictEqual(yield* pendingOfAlice, pending)
    }))

  it.effect("malformed Upload-Metadata is 400; filename and type are sanitized as for any upload", () =>
    Effect.gen(function*() {
      for (
        const metadata of [
          "filename not-base64!",
          `filename ${b64("a.txt")},filename ${b64("b.txt")}`,
          `filename ${b64("a.txt")} extra`,
          `filename ${b64("a.txt")},,filetype ${b64("text/plain")}`,
          `filename abc`
        ]
      ) {
        const a = yield* send("POST", tusPath, {
          user: "alice",
          headers: { "Upload-Length": "10", "Upload-Metadata": metadata }
        })
        assert.deepStrictEqual([a.status, a.json?._tag], [400, "InvalidUploadRequest"], metadata)
      }
      const control = yield* send("POST", tusPath, {
        user: "alice",
        headers: { "Upload-Length": "10", "Upload-Metadata": `filename ${b64("a\r\nb.txt")}` }
      })
      assert.deepStrictEqual([control.status, control.json._tag], [400, "InvalidFilename"])
      const path = yield* create(10, "alice", `filename ${b64("../../etc/passwd.png")},filetype ${b64("text/html")},x`)
      const json = yield* send("GET", path, { user: "alice" })
      assert.strictEqual(json.json.originalFilename, "passwd.png")
      assert.match(json.json.key, /^priv\/\d{4}\/\d{2}\/\d{2}\/[0-9a-f-]+\.png$/)
      // the metadata a HEAD answers is what was kept
      const h = yield* head(path)
      assert.include(h.headers.get("upload-metadata")!, `filename ${b64("passwd.png")}`)
    }))

  it.effect("PATCH: a wrong or missing Upload-Offset is 409 (with the right one), a wrong type 415", () =>
    Effect.gen(function*() {
      const path = yield* create(1000)
      const wrong = yield* patch(path, 5, randomBytes(10))
      assert.deepStrictEqual([wrong.status, wrong.json._tag], [409, "UploadOffsetMismatch"])
      assert.strictEqual(wrong.headers.get("upload-offset"), "0")
      const missing = yield* patch(path, undefined, randomBytes(10))
      assert.strictEqual(missing.status, 409)
      const type = yield* patch(path, 0, randomBytes(10), { "Content-Type": "application/octet-stream" })
      assert.deepStrictEqual([type.status, type.json._tag], [415, "UnsupportedMediaType"])
      assert.strictEqual(yield* offsetOf(path), 0)
    }))

  it.effect("a checksum mismatch is 460 and keeps nothing of that request; sha1, md5 and crc32 match", () =>
    Effect.gen(function*() {
      const data = randomBytes(3 * partSize + 1234)
      const path = yield* create(data.length)
      const first = data.subarray(0, 100)
      const ok = yield* patch(path, 0, first, { "Upload-Checksum": `sha1 ${sha1(first)}` })
      assert.strictEqual(ok.status, 204)
      assert.strictEqual(ok.headers.get("upload-offset"), "100")
      const tailsBefore = yield* tailObjects
      // crosses a part boundary: a part and a new tail would be written, then thrown away
      const second = data.subarray(100, 100 + partSize + 500)
      const bad = yield* patch(path, 100, second, { "Upload-Checksum": `sha1 ${sha1(randomBytes(8))}` })
      assert.deepStrictEqual([bad.status, bad.json._tag], [460, "ChecksumMismatch"])
      assert.strictEqual(yield* offsetOf(path), 100)
      assert.deepStrictEqual(yield* tailObjects, tailsBefore, "no tail of the refused request stays")
      const md5 = createHash("md5").update(second).digest("base64")
      assert.strictEqual((yield* patch(path, 100, second, { "Upload-Checksum": `md5 ${md5}` })).status, 204)
      const third = data.subarray(100 + second.length)
      const crc = Buffer.alloc(4)
      crc.writeUInt32BE(crc32(third))
      const last = yield* patch(path, 100 + second.length, third, {
        "Upload-Checksum": `crc32 ${crc.toString("base64")}`
      })
      assert.strictEqual(last.status, 204)
      assert.strictEqual(last.headers.get("upload-offset"), String(data.length))
      const key = last.headers.get("storage-key")!
      const stored = yield* (yield* ObjectStorage).getObject({ key })
      const bytes = Buffer.concat(Chunk.toArray(yield* Stream.runCollect(stored.body)))
      assert.isTrue(bytes.equals(data))
      const unknown = yield* patch(yield* create(10), 0, randomBytes(10), { "Upload-Checksum": "whirlpool AAAA" })
      assert.deepStrictEqual([unknown.status, unknown.json._tag], [400, "InvalidUploadRequest"])
    }))

  it.effect("a one-part upload with a wrong checksum leaves no object at its key for the sweeper to take", () =>
    Effect.gen(function*() {
      const data = randomBytes(partSize - 10)
      const path = yield* create(data.length)
      const pending = yield* send("GET", path, { user: "alice" })
      const key = (pending.json as { key: string }).key
      const bad = yield* patch(path, 0, data, { "Upload-Checksum": `sha1 ${sha1(randomBytes(8))}` })
      assert.deepStrictEqual([bad.status, bad.json._tag], [460, "ChecksumMismatch"])
      assert.strictEqual(yield* offsetOf(path), 0)
      const stat = yield* Effect.either((yield* ObjectStorage).statObject(key))
      assert.isTrue(stat._tag === "Left" && stat.left._tag === "ObjectNotFound", "nothing stored at the key")
      const good = yield* patch(path, 0, data, { "Upload-Checksum": `sha1 ${sha1(data)}` })
      assert.strictEqual(good.status, 204)
      assert.strictEqual(good.headers.get("storage-key"), key)
    }))

  it.effect("more bytes than Upload-Length: 413 before reading (declared) or as soon as it shows (chunked)", () =>
    Effect.gen(function*() {
      const path = yield* create(1000)
      const declared = yield* patch(path, 0, randomBytes(1001))
      assert.deepStrictEqual([declared.status, declared.json._tag], [413, "UploadTooLarge"])
      const streamed = yield* send("PATCH", path, {
        user: "alice",
        headers: { "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0" },
        body: chunked([randomBytes(600), randomBytes(600), randomBytes(600)])
      })
      assert.deepStrictEqual([streamed.status, streamed.json._tag], [413, "UploadTooLarge"])
      assert.strictEqual(yield* offsetOf(path), 0)
    }))

  it.effect("a chunked PATCH (no Content-Length) is cut into parts anywhere", () =>
    Effect.gen(function*() {
      const data = randomBytes(2 * partSize + 77)
      const path = yield* create(data.length)
      const cuts = [data.subarray(0, 10), data.subarray(10, partSize + 3), data.subarray(partSize + 3, partSize + 900)]
      const a = yield* send("PATCH", path, {
        user: "alice",
        headers: { "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0" },
        body: chunked(cuts)
      })
      assert.strictEqual(a.status, 204)
      assert.strictEqual(a.headers.get("upload-offset"), String(partSize + 900))
      const rest = data.subarray(partSize + 900)
      const b = yield* send("PATCH", path, {
        user: "alice",
        headers: { "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(partSize + 900) },
        body: chunked([rest.subarray(0, 5), rest.subarray(5)])
      })
      assert.strictEqual(b.status, 204)
      const key = b.headers.get("storage-key")!
      assert.strictEqual((yield* (yield* ClaimStore).getByKey(key)).status, "uploaded")
      const stored = yield* (yield* ObjectStorage).getObject({ key })
      assert.isTrue(Buffer.concat(Chunk.toArray(yield* Stream.runCollect(stored.body))).equals(data))
    }))

  it.effect("POST with X-HTTP-Method-Override: PATCH appends; an empty PATCH changes nothing", () =>
    Effect.gen(function*() {
      const path = yield* create(300)
      const first = yield* send("POST", path, {
        user: "alice",
        body: randomBytes(100),
        headers: {
          "X-HTTP-Method-Override": "PATCH",
          "Content-Type": "application/offset+octet-stream",
          "Upload-Offset": "0"
        }
      })
      assert.strictEqual(first.status, 204)
      assert.strictEqual(first.headers.get("upload-offset"), "100")
      const empty = yield* patch(path, 100, new Uint8Array(0))
      assert.deepStrictEqual([empty.status, empty.headers.get("upload-offset")], [204, "100"])
      const plain = yield* send("POST", path, { user: "alice", body: randomBytes(10) })
      assert.strictEqual(plain.status, 400)
      assert.strictEqual(yield* offsetOf(path), 100)
    }))

  it.effect("a second request on an upload still being written is 423 Locked; the first one's end frees it", () =>
    Effect.gen(function*() {
      const path = yield* create(1000)
      // A PATCH whose body stops half-way: it holds the upload until it goes away.
      const stalled = openPatch(yield* baseUrl, path, { "Content-Length": "500" })
      stalled.write(randomBytes(200))
      yield* Effect.sleep("300 millis")
      const second = yield* patch(path, 0, randomBytes(100))
      assert.deepStrictEqual([second.status, second.json._tag], [423, "UploadLocked"])
      stalled.destroy()
      const after = yield* pollUntil(patch(path, 0, new Uint8Array(100)), (a) => a.status !== 423)
      assert.strictEqual(after.status, 204)
      assert.strictEqual(yield* offsetOf(path), 100)
    }))

  it.effect("a request cut short keeps its whole parts (not with a checksum: then nothing of it)", () =>
    Effect.gen(function*() {
      const url = yield* baseUrl
      /** Sends `sent` of `declared` bytes at offset 0, then goes away. */
      const cutShort = (path: string, declared: number, sent: number, headers: Record<string, string> = {}) =>
        Effect.promise(() =>
          new Promise<void>((resolve) => {
            const req = openPatch(url, path, { "Content-Length": String(declared), ...headers })
            req.write(randomBytes(sent), () =>
              setTimeout(() => {
                req.destroy()
                resolve()
              }, 300))
          })
        )
      /** The offset once no request holds the upload any more. */
      const settledOffset = (path: string) =>
        Effect.map(
          pollUntil(patch(path, 999999999, new Uint8Array(0)), (a) => a.status === 409),
          (probe) => probe.status === 409 ? Number(probe.headers.get("upload-offset")) : -1
        )

      const plain = yield* create(5 * partSize)
      yield* cutShort(plain, 4 * partSize, 2 * partSize + partSize / 2)
      assert.strictEqual(yield* settledOffset(plain), 2 * partSize)

      const checked = yield* create(5 * partSize)
      yield* cutShort(checked, 4 * partSize, 2 * partSize + partSize / 2, {
        "Upload-Checksum": `sha1 ${sha1(randomBytes(4))}`
      })
      assert.strictEqual(yield* settledOffset(checked), 0)
    }))

  it.effect("unknown 404, another user's 403 (never their data), a parts-API claim 404", () =>
    Effect.gen(function*() {
      const path = yield* create(100)
      assert.strictEqual((yield* patch(path, 0, randomBytes(50))).status, 204)
      assert.strictEqual((yield* head(`${tusPath}01900000-0000-7000-8000-000000000000`)).status, 404)
      const foreign = yield* head(path, "bob")
      assert.strictEqual(foreign.status, 403)
      assert.isNull(foreign.headers.get("upload-offset"))
      const bobPatch = yield* send("PATCH", path, {
        user: "bob",
        body: randomBytes(50),
        headers: { "Content-Type": "application/offset+octet-stream", "Upload-Offset": "50" }
      })
      assert.strictEqual(bobPatch.status, 403)
      assert.strictEqual((yield* send("GET", path, { user: "bob" })).status, 403)
      assert.strictEqual((yield* send("DELETE", path, { user: "bob" })).status, 403)
      assert.strictEqual(yield* offsetOf(path), 50)
      const ticket = (yield* init("alice", { filename: "p.bin", size: 10 })).json
      assert.strictEqual((yield* head(`${tusPath}${ticket.claimId}`)).status, 404)
      assert.strictEqual((yield* head(`${tusPath}not%20an%20id`)).status, 400)
    }))

  it.effect("creation-with-upload; termination queues the tail; HEAD after completion answers the key", () =>
    Effect.gen(function*() {
      const data = randomBytes(5000)
      const whole = yield* send("POST", tusPath, {
        user: "alice",
        body: data,
        headers: {
          "Upload-Length": String(data.length),
          "Upload-Metadata": `filename ${b64("all.bin")}`,
          "Content-Type": "application/offset+octet-stream",
          "Upload-Checksum": `sha1 ${sha1(data)}`
        }
      })
      assert.strictEqual(whole.status, 201)
      assert.strictEqual(whole.headers.get("upload-offset"), "5000")
      const key = whole.headers.get("storage-key")!
      const h = yield* head(whole.headers.get("location")!)
      assert.deepStrictEqual(
        [h.headers.get("upload-offset"), h.headers.get("storage-key"), h.headers.get("cache-control")],
        ["5000", key, "no-store"]
      )
      // a completed upload is not terminated
      assert.strictEqual((yield* send("DELETE", whole.headers.get("location")!, { user: "alice" })).status, 409)
      assert.strictEqual((yield* (yield* ClaimStore).getByKey(key)).status, "uploaded")

      const partial = yield* send("POST", tusPath, {
        user: "alice",
        body: data.subarray(0, 300),
        headers: { "Upload-Length": "5000", "Content-Type": "application/offset+octet-stream" }
      })
      assert.strictEqual(partial.headers.get("upload-offset"), "300")
      const path = partial.headers.get("location")!
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ tail_key: string }>`SELECT tail_key FROM sys_storage_upload_tail
        WHERE claim_id = ${path.slice(tusPath.length)}`
      assert.isTrue(row!.tail_key.startsWith(resumableTailPrefix))
      assert.strictEqual((yield* send("DELETE", path, { user: "alice" })).status, 204)
      assert.strictEqual((yield* head(path)).status, 404)
      const queued = yield* sql<{ reason: string }>`SELECT reason FROM sys_storage_pending_delete
        WHERE object_key = ${row!.tail_key} ORDER BY reason`
      assert.deepStrictEqual(queued.map((q) => q.reason), ["aborted", "claim_expired"])

      // a bad body in creation-with-upload leaves no pending claim behind
      const pending = yield* pendingOfAlice
      const refused = yield* send("POST", tusPath, {
        user: "alice",
        body: data,
        headers: {
          "Upload-Length": String(data.length),
          "Content-Type": "application/offset+octet-stream",
          "Upload-Checksum": `sha1 ${sha1(randomBytes(3))}`
        }
      })
      assert.strictEqual(refused.status, 460)
      assert.strictEqual(yield* pendingOfAlice, pending)
    }))
}

describeEachDialect(
  "tus protocol rules",
  (database) => tusServerLayer(database, MemoryObjectStorage.layer({ partSize }), { maxUploadSize }),
  (it) => suite(it),
  ["sqlite", "pg", "mysql"],
  { liveClock: true }
)

describeEachDialect(
  "tus protocol, a memory budget of one part",
  (database) => tusServerLayer(database, MemoryObjectStorage.layer({ partSize }), { maxBufferedBytes: partSize }),
  (it) => {
    it.effect("requests without Content-Length wait for the memory budget, then all go through", () =>
      Effect.gen(function*() {
        const url = yield* baseUrl
        const first = yield* create(2 * partSize)
        const second = yield* create(2 * partSize)
        const data = randomBytes(partSize)
        // The first gathers a part in memory and stalls half-way: it holds the whole budget.
        const stalled = openPatch(url, first)
        const firstAnswer = new Promise<number>((resolve, reject) => {
          stalled.on("response", (response) => {
            response.resume()
            resolve(response.statusCode!)
          })
          stalled.on("error", reject)
        })
        stalled.write(data.subarray(0, partSize / 2))
        yield* Effect.sleep("300 millis")
        // The second, a whole part also without Content-Length, waits for it.
        const secondBody = randomBytes(partSize + 10)
        const secondAnswer = yield* Effect.fork(patch(second, 0, chunked([secondBody])))
        yield* Effect.sleep("700 millis")
        assert.isTrue(
          Option.isNone(yield* Fiber.poll(secondAnswer)),
          "the second waits while the first holds the budget"
        )
        // Once the first has its part stored, the second goes through.
        stalled.end(data.subarray(partSize / 2))
        assert.strictEqual(yield* Effect.promise(() => firstAnswer), 204)
        assert.strictEqual((yield* Fiber.join(secondAnswer)).status, 204)
        assert.strictEqual(yield* offsetOf(first), partSize)
        assert.strictEqual(yield* offsetOf(second), partSize + 10)
      }))
  },
  ["sqlite"],
  { liveClock: true }
)

describeEachDialect(
  "tus protocol, short TTL",
  (database) =>
    tusServerLayer(database, MemoryObjectStorage.layer({ partSize }), {
      claimTtl: "300 millis",
      sweepInterval: "10 millis"
    }),
  (it) => {
    it.effect("an expired upload is 410 on HEAD and PATCH", () =>
      Effect.gen(function*() {
        const path = yield* create(100)
        const fresh = yield* head(path)
        assert.isNotNull(fresh.headers.get("upload-expires"))
        assert.isTrue(new Date(fresh.headers.get("upload-expires")!).getTime() > Date.now() - 1000)
        yield* Effect.sleep("400 millis")
        assert.strictEqual((yield* head(path)).status, 410)
        const late = yield* patch(path, 0, randomBytes(10))
        assert.deepStrictEqual([late.status, late.json._tag], [410, "ClaimExpired"])
      }))

    it.effect("a tail is known to the reconciler while it lives, and swept and deleted with its expired upload", () =>
      Effect.gen(function*() {
        const path = yield* create(3 * partSize + 5)
        const sent = yield* patch(path, 0, randomBytes(partSize + 100))
        assert.strictEqual(sent.status, 204)
        const tails = yield* tailObjects
        assert.strictEqual(tails.length, 1)
        const live = yield* (yield* Reconciler).run({ grace: "0 millis" })
        assert.strictEqual(live.unknownObjects.count, 0, "the tail is no unknown object")
        assert.strictEqual(live.orphanSessions.count, 0)
        yield* Effect.sleep("400 millis")
        const swept = yield* (yield* ClaimSweeper).runOnce
        assert.isAtLeast(swept.removed, 1)
        yield* (yield* DeleteWorker).runOnce
        assert.deepStrictEqual(yield* tailObjects, [])
        assert.strictEqual((yield* head(path)).status, 404)
        const multipart = Option.getOrThrow((yield* ObjectStorage).multipart)
        assert.strictEqual(Chunk.size(yield* Stream.runCollect(multipart.listMultipartUploads())), 0)
        const after = yield* (yield* Reconciler).run({ grace: "0 millis" })
        assert.strictEqual(after.unknownObjects.count, 0)
      }))
  },
  ["sqlite"],
  { liveClock: true }
)
