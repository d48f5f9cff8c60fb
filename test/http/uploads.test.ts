import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { inject } from "vitest"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { describeEachDialect, missingServer } from "../support/databases.js"
import { eventually } from "../support/eventually.js"
import { abort, bytes, complete, init, listParts, postFile, putPart, sha256, uploadWhole } from "./client.js"
import { call, raw, rawGet, sendCutBody, serverLayer } from "./harness.js"

const partSize = 64 * 1024
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) => effect

/** The flows and error paths, written once for any backend of this part size. */
const uploadSuite = (it: Vitest.MethodsNonLive<any>, partSize: number) => {
  it.effect("an upload that fits in one part is stored with one put: no multipart session, same answers", () =>
    live(Effect.gen(function*() {
      const data = bytes(10_000)
      const ticket = (yield* init("alice", { filename: "avatar.png", size: data.length })).json
      assert.strictEqual(ticket.partCount, 1)
      const multipart = Option.getOrThrow((yield* ObjectStorage).multipart)
      const sessions = yield* Stream.runCollect(multipart.listMultipartUploads())
      assert.isFalse(Chunk.some(sessions, (s) => s.key === ticket.key), "no session was opened")
      // a wrong size is refused before anything is stored, as for any part
      assert.strictEqual((yield* putPart("alice", ticket.claimId, 1, data.subarray(0, 9_999))).status, 422)
      assert.strictEqual((yield* putPart("alice", ticket.claimId, 1, data)).status, 200)
      assert.deepStrictEqual((yield* listParts("alice", ticket.claimId)).json, {
        parts: [{ partNumber: 1, size: 10_000 }]
      })
      const done = yield* complete("alice", ticket.claimId)
      assert.strictEqual(done.status, 200, done.text)
      assert.deepInclude(done.json, { key: ticket.key, size: 10_000, contentType: "image/png" })
      const again = yield* complete("alice", ticket.claimId)
      assert.deepStrictEqual([again.status, again.json.key, again.json.size], [200, ticket.key, 10_000])
      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${ticket.key}`))
      assert.strictEqual(sha256(file.body), sha256(data))
      assert.strictEqual(
        file.headers["content-disposition"],
        `inline; filename="avatar.png"; filename*=UTF-8''avatar.png`
      )
      // completed: a part sent now is refused
      assert.strictEqual((yield* putPart("alice", ticket.claimId, 1, data)).status, 409)
    })))

  it.effect("a single-request upload is not served before complete, even at a public key", () =>
    live(Effect.gen(function*() {
      const data = bytes(5_000)
      const ticket = (yield* init("alice", { filename: "logo.png", size: data.length, public: true })).json
      assert.match(ticket.key, /^pub\//)
      assert.strictEqual((yield* putPart("alice", ticket.claimId, 1, data)).status, 200)
      // the bytes sit at the key already, but the upload is not complete
      assert.strictEqual((yield* (yield* ObjectStorage).statObject(ticket.key)).size, 5_000)
      const early = yield* rawGet(`/storage/files/${ticket.key}`)
      assert.deepStrictEqual([early.status, JSON.parse(early.body)._tag], [404, "ObjectNotFound"])
      assert.strictEqual((yield* complete("alice", ticket.claimId)).status, 200)
      const served = yield* rawGet(`/storage/files/${ticket.key}`)
      assert.strictEqual(served.status, 200)
    })))

  it.effect("a small file in one request (POST /storage/files): stored, completed, adoptable, byte-identical", () =>
    live(Effect.gen(function*() {
      const data = bytes(7_000)
      const done = yield* postFile("alice", { filename: "me.png" }, data)
      assert.strictEqual(done.status, 201, done.text)
      // the generic type is not taken: the filename decides
      assert.deepInclude(done.json, { size: 7_000, contentType: "image/png", originalFilename: "me.png" })
      assert.match(done.json.key, /^priv\/.+\.png$/)
      const claim = yield* (yield* ClaimStore).getByKey(done.json.key)
      assert.strictEqual(claim.status, "uploaded")
      assert.strictEqual(yield* (yield* ClaimStore).countPendingByOwner("alice"), 0)
      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${done.json.key}`))
      assert.strictEqual(sha256(file.body), sha256(data))
      assert.strictEqual((yield* raw("bob", HttpClientRequest.get(`/storage/files/${done.json.key}`))).status, 403)
      // a type given by the client is kept when safe
      const pdf = yield* postFile("alice", { filename: "a.bin" }, bytes(10), "application/pdf")
      assert.strictEqual(pdf.json.contentType, "application/pdf")
    })))

  it.effect("a small file in one request: bad input is refused and nothing stays pending", () =>
    live(Effect.gen(function*() {
      const claims = yield* ClaimStore
      const refused = (r: { status: number; json: any }, status: number, tag: string) =>
        assert.deepStrictEqual([r.status, r.json?._tag], [status, tag])
      refused(yield* postFile("alice", { filename: "big.bin" }, bytes(partSize + 1)), 413, "UploadTooLarge")
      refused(yield* postFile("alice", { filename: "" }, bytes(10)), 422, "InvalidFilename")
      refused(yield* postFile("alice", { filename: "a.bin" }, new Uint8Array(0)), 422, "InvalidUploadSize")
      assert.strictEqual((yield* postFile(undefined, { filename: "a.bin" }, bytes(10))).status, 401)
      assert.strictEqual((yield* postFile("alice", {}, bytes(10))).status, 400)
      assert.strictEqual(yield* claims.countPendingByOwner("alice"), 0)
      // a body cut short: the claim opened for it is aborted (its delete queued)
      const server = yield* HttpServer.HttpServer
      yield* Effect.promise(() =>
        sendCutBody((server.address as HttpServer.TcpAddress).port, "/storage/files?filename=cut.bin", 1_000)
      )
      yield* eventually(Effect.map(claims.countPendingByOwner("alice"), (n) => n === 0), {
        what: "the cut upload's claim to be aborted"
      })
      const queued = yield* (yield* SqlClient.SqlClient)<{ reason: string }>`
        SELECT reason FROM sys_storage_pending_delete`
      assert.deepStrictEqual(queued.map((r) => r.reason), ["aborted"])
    })))

  it.effect("a multi-part upload: init, parts in any order, list, complete, download byte-identical", () =>
    live(Effect.gen(function*() {
      const data = bytes(partSize * 2 + 1234)
      const opened = yield* init("alice", {
        filename: "Q3 report.pdf",
        size: data.length,
        contentType: "application/pdf"
      })
      assert.strictEqual(opened.status, 201)
      const ticket = opened.json
      assert.strictEqual(ticket.partSize, partSize)
      assert.strictEqual(ticket.partCount, 3)
      assert.strictEqual(ticket.originalFilename, "Q3 report.pdf")
      assert.match(ticket.key, /^priv\/\d{4}\/\d{2}\/\d{2}\/[0-9a-f-]{36}\.pdf$/)
      assert.isTrue(Date.parse(ticket.expiresAt) > Date.now())

      for (const n of [3, 1, 2]) {
        const slice = data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length))
        const sent = yield* putPart("alice", ticket.claimId, n, slice)
        assert.deepStrictEqual([sent.status, sent.json], [200, { partNumber: n, size: slice.length }])
      }
      const listed = yield* listParts("alice", ticket.claimId)
      assert.deepStrictEqual(listed.json, {
        parts: [{ partNumber: 1, size: partSize }, { partNumber: 2, size: partSize }, { partNumber: 3, size: 1234 }]
      })
      const done = yield* complete("alice", ticket.claimId)
      assert.strictEqual(done.status, 200, done.text)
      assert.deepInclude(done.json, {
        key: ticket.key,
        size: data.length,
        contentType: "application/pdf",
        originalFilename: "Q3 report.pdf"
      })
      assert.isString(done.json.eTag)

      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${ticket.key}`))
      assert.strictEqual(file.status, 200)
      assert.strictEqual(sha256(file.body), sha256(data))
      assert.strictEqual(file.headers["content-type"], "application/pdf")
      assert.strictEqual(file.headers["x-content-type-options"], "nosniff")
      assert.strictEqual(file.headers["content-length"], String(data.length))
      assert.match(
        file.headers["content-disposition"]!,
        /^inline; filename="Q3 report.pdf"; filename\*=UTF-8''Q3%20report.pdf$/
      )
      assert.strictEqual(file.headers["cache-control"], "private, no-cache")
    })))

  it.effect("a re-sent part replaces the first; complete twice answers the same object", () =>
    live(Effect.gen(function*() {
      const data = bytes(partSize + 10)
      const ticket = (yield* init("alice", { filename: "a.bin", size: data.length })).json
      yield* putPart("alice", ticket.claimId, 1, bytes(partSize))
      yield* putPart("alice", ticket.claimId, 1, data.subarray(0, partSize))
      yield* putPart("alice", ticket.claimId, 2, data.subarray(partSize))
      const first = yield* complete("alice", ticket.claimId)
      const second = yield* complete("alice", ticket.claimId)
      assert.strictEqual(first.status, 200)
      assert.deepStrictEqual(second.json, first.json)
      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${ticket.key}`))
      assert.strictEqual(sha256(file.body), sha256(data))
    })))

  it.effect("two concurrent completes both answer success", () =>
    live(Effect.gen(function*() {
      const data = bytes(partSize * 2)
      const ticket = (yield* init("alice", { filename: "race.bin", size: data.length })).json
      yield* putPart("alice", ticket.claimId, 1, data.subarray(0, partSize))
      yield* putPart("alice", ticket.claimId, 2, data.subarray(partSize))
      const both = yield* Effect.all([complete("alice", ticket.claimId), complete("alice", ticket.claimId)], {
        concurrency: 2
      })
      assert.deepStrictEqual(both.map((r) => r.status), [200, 200], both.map((r) => r.text).join(" | "))
      assert.strictEqual(both[0].json.size, data.length)
      assert.strictEqual(both[1].json.size, data.length)
      const claim = yield* (yield* ClaimStore).get(ticket.claimId)
      assert.strictEqual(claim.status, "uploaded")
    })))

  it.effect("no token or a wrong token is 401", () =>
    live(Effect.gen(function*() {
      const none = yield* init(undefined, { filename: "a.bin", size: 1 })
      assert.strictEqual(none.status, 401)
      assert.strictEqual(none.json._tag, "Unauthenticated")
      const wrong = yield* call(
        undefined,
        HttpClientRequest.post("/storage/uploads").pipe(
          HttpClientRequest.bearerToken("nope"),
          HttpClientRequest.bodyUnsafeJson({ filename: "a.bin", size: 1 })
        )
      )
      assert.strictEqual(wrong.status, 401)
    })))

  it.effect("init refuses bad input with typed errors", () =>
    live(Effect.gen(function*() {
      const cases: Array<[Record<string, unknown>, number, string]> = [
        [{ filename: "a.bin", size: 0 }, 422, "InvalidUploadSize"],
        [{ filename: "a.bin", size: -5 }, 422, "InvalidUploadSize"],
        [{ filename: "a.bin", size: 1.5 }, 422, "InvalidUploadSize"],
        [{ filename: "a.bin", size: 64 * 1024 * 1024 + 1 }, 413, "UploadTooLarge"],
        [{ filename: "..", size: 10 }, 422, "InvalidFilename"],
        [{ filename: "  ", size: 10 }, 422, "InvalidFilename"],
        [{ filename: "evil\r\nname.txt", size: 10 }, 422, "InvalidFilename"],
        [{ filename: "dir/", size: 10 }, 422, "InvalidFilename"]
      ]
      for (const [body, status, tag] of cases) {
        const r = yield* init("alice", body)
        assert.deepStrictEqual([r.status, r.json?._tag], [status, tag], JSON.stringify(body))
        assert.isString(r.json.message)
      }
      const malformed = yield* init("alice", { filename: 42 })
      assert.strictEqual(malformed.status, 400)
    })))

  it.effect("filenames keep their last segment; unsafe content types become octet-stream", () =>
    live(Effect.gen(function*() {
      const data = new TextEncoder().encode("<script>alert(1)</script>")
      const { done, ticket } = yield* uploadWhole("alice", "C:\\Users\\x\\page.html", data, {
        contentType: "text/html"
      })
      assert.strictEqual(done.json.originalFilename, "page.html")
      assert.strictEqual(done.json.contentType, "application/octet-stream")
      assert.match(ticket.key, /\.html$/)
      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${ticket.key}`))
      assert.strictEqual(file.headers["content-type"], "application/octet-stream")
      assert.match(file.headers["content-disposition"]!, /^attachment;/)
      assert.strictEqual(file.headers["content-security-policy"], "default-src 'none'; sandbox")
      const svg = yield* uploadWhole("alice", "logo.svg", new TextEncoder().encode("<svg/>"), {
        contentType: "image/svg+xml"
      })
      assert.strictEqual(svg.done.json.contentType, "application/octet-stream")
    })))

  it.effect("parts: wrong number, wrong size, foreign or unknown claim, after completion", () =>
    live(Effect.gen(function*() {
      const data = bytes(partSize * 2 + 5)
      const ticket = (yield* init("alice", { filename: "p.bin", size: data.length })).json
      const expect = (r: { status: number; json: any }, status: number, tag: string) =>
        assert.deepStrictEqual([r.status, r.json?._tag], [status, tag])
      expect(yield* putPart("alice", ticket.claimId, 0, bytes(10)), 422, "PartNumberOutOfRange")
      expect(yield* putPart("alice", ticket.claimId, 4, bytes(5)), 422, "PartNumberOutOfRange")
      expect(yield* putPart("alice", ticket.claimId, 1, bytes(partSize + 1)), 413, "PartTooLarge")
      expect(yield* putPart("alice", ticket.claimId, 1, bytes(partSize - 1)), 422, "PartTooSmall")
      expect(yield* putPart("alice", ticket.claimId, 3, bytes(4)), 422, "PartTooSmall")
      expect(yield* putPart("alice", ticket.claimId, 3, bytes(6)), 413, "PartTooLarge")
      expect(yield* putPart("bob", ticket.claimId, 1, bytes(partSize)), 403, "AccessDenied")
      expect(yield* putPart("alice", "no-such-claim", 1, bytes(partSize)), 403, "AccessDenied")
      expect(yield* listParts("bob", ticket.claimId), 403, "AccessDenied")
      const bad = yield* putPart("alice", ticket.claimId, "one", bytes(1))
      assert.strictEqual(bad.status, 400)
      // none of the refused parts was recorded
      assert.deepStrictEqual((yield* listParts("alice", ticket.claimId)).json, { parts: [] })

      expect(yield* complete("alice", ticket.claimId), 422, "PartsIncomplete")
      yield* putPart("alice", ticket.claimId, 1, data.subarray(0, partSize))
      yield* putPart("alice", ticket.claimId, 2, data.subarray(partSize, 2 * partSize))
      expect(yield* complete("alice", ticket.claimId), 422, "PartsIncomplete")
      yield* putPart("alice", ticket.claimId, 3, data.subarray(2 * partSize))
      expect(yield* complete("bob", ticket.claimId), 403, "AccessDenied")
      assert.strictEqual((yield* complete("alice", ticket.claimId)).status, 200)
      expect(yield* putPart("alice", ticket.claimId, 1, data.subarray(0, partSize)), 409, "ClaimNotPending")
      expect(yield* listParts("alice", ticket.claimId), 409, "ClaimNotPending")
    })))

  it.effect("abort: idempotent, owner only, queues the delete (with the session of a multipart upload); never destroys a completed upload", () =>
    live(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const ticket = (yield* init("alice", { filename: "x.bin", size: 100 })).json
      yield* putPart("alice", ticket.claimId, 1, bytes(100))
      const foreign = yield* abort("bob", ticket.claimId)
      assert.deepStrictEqual([foreign.status, foreign.json?._tag], [403, "AccessDenied"])
      assert.strictEqual((yield* abort("alice", ticket.claimId)).status, 204)
      assert.strictEqual((yield* abort("alice", ticket.claimId)).status, 204)
      assert.strictEqual((yield* abort("alice", "never-existed")).status, 204)
      const rows = yield* sql<{ reason: string; upload_id: string }>`
          SELECT reason, upload_id FROM sys_storage_pending_delete WHERE object_key = ${ticket.key}`
      // One part: stored with one put, no session; the queued delete removes the object.
      assert.deepStrictEqual(rows.map((r) => [r.reason, r.upload_id]), [["aborted", ""]])
      const after = yield* putPart("alice", ticket.claimId, 1, bytes(100))
      assert.strictEqual(after.status, 403)

      // Several parts: the queued delete carries the session, for the worker to abort.
      const multi = (yield* init("alice", { filename: "m.bin", size: ticket.partSize + 1 })).json
      assert.strictEqual(multi.partCount, 2)
      yield* putPart("alice", multi.claimId, 2, bytes(1))
      assert.strictEqual((yield* abort("alice", multi.claimId)).status, 204)
      const multiRows = yield* sql<{ reason: string; upload_id: string }>`
          SELECT reason, upload_id FROM sys_storage_pending_delete WHERE object_key = ${multi.key}`
      assert.strictEqual(multiRows.length, 1)
      assert.strictEqual(multiRows[0]!.reason, "aborted")
      assert.notStrictEqual(multiRows[0]!.upload_id, "")

      const kept = yield* uploadWhole("alice", "keep.bin", bytes(300))
      assert.strictEqual((yield* abort("alice", kept.ticket.claimId)).status, 204)
      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${kept.ticket.key}`))
      assert.strictEqual(file.status, 200)
      const queued = yield* sql`SELECT 1 FROM sys_storage_pending_delete WHERE object_key = ${kept.ticket.key}`
      assert.strictEqual(queued.length, 0)
    })))

  it.effect("the pending-upload cap holds exactly under a concurrent burst (429 past it)", () =>
    live(Effect.gen(function*() {
      // bob has no pending uploads in this block
      const results = yield* Effect.all(
        Array.from({ length: 12 }, (_, i) => init("bob", { filename: `b${i}.bin`, size: 10 })),
        { concurrency: "unbounded" }
      )
      const statuses = results.map((r) => r.status).sort()
      assert.strictEqual(statuses.filter((s) => s === 201).length, 5)
      assert.strictEqual(statuses.filter((s) => s === 429).length, 7)
      assert.strictEqual(results.find((r) => r.status === 429)!.json._tag, "TooManyPendingUploads")
      // finishing one makes room for one
      const one = results.find((r) => r.status === 201)!.json
      yield* abort("bob", one.claimId)
      assert.strictEqual((yield* init("bob", { filename: "again.bin", size: 10 })).status, 201)
      assert.strictEqual((yield* init("bob", { filename: "over.bin", size: 10 })).status, 429)
    })))

  it.effect("downloads: ranges, revalidation, public and private keys, hostile keys", () =>
    live(Effect.gen(function*() {
      const data = bytes(1000)
      const priv = (yield* uploadWhole("alice", "r.bin", data)).ticket
      const get = (user: "alice" | "bob" | undefined, path: string, headers: Record<string, string> = {}) =>
        raw(user, HttpClientRequest.get(path).pipe(HttpClientRequest.setHeaders(headers)))
      const url = `/storage/files/${priv.key}`

      const part = yield* get("alice", url, { range: "bytes=10-19" })
      assert.strictEqual(part.status, 206)
      assert.strictEqual(part.headers["content-range"], "bytes 10-19/1000")
      assert.deepStrictEqual(Array.from(part.body), Array.from(data.subarray(10, 20)))
      const tail = yield* get("alice", url, { range: "bytes=-5" })
      assert.deepStrictEqual(Array.from(tail.body), Array.from(data.subarray(995)))
      const open = yield* get("alice", url, { range: "bytes=990-" })
      assert.strictEqual(open.headers["content-range"], "bytes 990-999/1000")
      const beyond = yield* get("alice", url, { range: "bytes=1000-" })
      assert.strictEqual(beyond.status, 416)
      assert.strictEqual(beyond.headers["content-range"], "bytes */1000")

      const full = yield* get("alice", url)
      const etag = full.headers["etag"]!
      assert.isString(etag)
      assert.strictEqual((yield* get("alice", url, { "if-none-match": etag })).status, 304)
      assert.strictEqual((yield* get("alice", url, { "if-none-match": "\"other\"" })).status, 200)

      assert.strictEqual((yield* get(undefined, url)).status, 401)
      assert.strictEqual((yield* get("bob", url)).status, 403)
      // A token in the query string no longer authenticates (signed links replace it).
      const viaQuery = yield* raw(undefined, HttpClientRequest.get(`${url}?access_token=token-alice`))
      assert.strictEqual(viaQuery.status, 401)
      assert.strictEqual((yield* raw(undefined, HttpClientRequest.get(`${url}?access_token=wrong`))).status, 401)

      const pub = (yield* uploadWhole("alice", "p.png", bytes(50), { public: true, contentType: "image/png" })).ticket
      assert.match(pub.key, /^pub\//)
      const anon = yield* get(undefined, `/storage/files/${pub.key}`)
      assert.strictEqual(anon.status, 200)
      assert.strictEqual(anon.headers["cache-control"], "public, max-age=3600, immutable")
      assert.strictEqual((yield* get(undefined, "/storage/files/pub/2026/01/01/missing.png")).status, 404)

      for (
        const hostile of [
          "pub/a/../b",
          "pub/a/%2e%2e/b",
          "pub/a%2f%2e%2e%2fb",
          "pub//x",
          "pub/x/",
          "%2fetc/passwd",
          "pub/%00x",
          "pub/a%5cb"
        ]
      ) {
        const r = yield* rawGet(`/storage/files/${hostile}`)
        assert.strictEqual(r.status, 422, `${hostile}: ${r.body}`)
        assert.strictEqual(JSON.parse(r.body)._tag, "InvalidObjectKey")
      }
      // Malformed percent-encoding never reaches the handler: the router refuses it.
      assert.strictEqual((yield* rawGet("/storage/files/pub/%E0%A4%A")).status, 404)
    })))
}

const suiteSettings = { maxUploadSize: 64 * 1024 * 1024, maxPendingClaims: 5, allowPublicUploads: true }

describeEachDialect(
  "HTTP uploads (memory backend)",
  (database) => serverLayer(database, MemoryObjectStorage.layer({ partSize }), suiteSettings),
  (it) => uploadSuite(it, partSize),
  ["sqlite", "pg", "mysql"],
  { liveClock: true }
)

const ceph = inject("servers").s3.ceph
if (ceph === undefined) {
  missingServer("HTTP uploads (S3 backend on Ceph RGW)", "Ceph RGW (scripts/s3/all.sh up)")
} else {
  describeEachDialect(
    "HTTP uploads (S3 backend on Ceph RGW)",
    (database) =>
      serverLayer(
        database,
        S3ObjectStorage.layer({
          bucket: `http-${randomBytes(4).toString("hex")}`,
          endpoint: ceph.endpoint,
          credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
          forcePathStyle: true,
          createBucket: true,
          partSize: S3ObjectStorage.minimumPartSize
        }),
        suiteSettings
      ),
    (it) => uploadSuite(it, S3ObjectStorage.minimumPartSize),
    ["pg"],
    { liveClock: true }
  )
}

describeEachDialect(
  "HTTP uploads with settings",
  (database) =>
    serverLayer(database, MemoryObjectStorage.layer({ partSize }), { claimTtl: "1 millis", maxUploadSize: 1000 }),
  (it) => {
    it.effect("an expired upload is 410; a size above a lowered cap is 413 on every part and on complete", () =>
      live(Effect.gen(function*() {
        const ticket = (yield* init("alice", { filename: "slow.bin", size: 10 })).json
        yield* Effect.sleep("20 millis")
        const late = yield* putPart("alice", ticket.claimId, 1, bytes(10))
        assert.deepStrictEqual([late.status, late.json._tag], [410, "ClaimExpired"])
        const done = yield* complete("alice", ticket.claimId)
        assert.deepStrictEqual([done.status, done.json._tag], [410, "ClaimExpired"])
        const publicRefused = yield* init("alice", { filename: "p.bin", size: 10, public: true })
        assert.deepStrictEqual([publicRefused.status, publicRefused.json._tag], [422, "PublicUploadsNotAllowed"])
        // an expired pending upload can still be aborted
        assert.strictEqual((yield* abort("alice", ticket.claimId)).status, 204)
      })))
  },
  ["sqlite"],
  { liveClock: true }
)

describeEachDialect(
  "HTTP uploads, cap lowered after init",
  (database) => serverLayer(database, MemoryObjectStorage.layer({ partSize }), { maxUploadSize: 100 }),
  (it) => {
    it.effect("re-checks the declared size against the current cap on parts and complete", () =>
      live(Effect.gen(function*() {
        const claims = yield* ClaimStore
        const objects = yield* ObjectStorage
        void objects
        const ticket = (yield* init("alice", { filename: "c.bin", size: 50 })).json
        // the operator lowers the cap below this upload's size (simulated on the row)
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE sys_storage_upload_claim SET size = 500 WHERE id = ${ticket.claimId}`
        const part = yield* putPart("alice", ticket.claimId, 1, bytes(50))
        assert.deepStrictEqual([part.status, part.json._tag], [413, "UploadTooLarge"])
        const done = yield* complete("alice", ticket.claimId)
        assert.deepStrictEqual([done.status, done.json._tag], [413, "UploadTooLarge"])
        assert.strictEqual((yield* claims.get(ticket.claimId)).status, "pending")
      })))
  },
  ["sqlite"],
  { liveClock: true }
)
