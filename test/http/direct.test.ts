/**
 * Direct uploads over HTTP: the bytes go from the client straight to the
 * storage with URLs the server signs (presigned S3 URLs on Ceph RGW; the
 * server's own HMAC-signed part endpoint on the filesystem backend), and
 * the server lists and completes from what the storage holds. The hostile
 * cases: a part of another size than signed, an expired URL, a URL used for
 * another claim or part, a tampered signature, complete with a part missing
 * or stored short, another user on the claim. Each fails with a clear error,
 * and nothing is adopted or leaked.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, type Vitest } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as TestContext from "effect/TestContext"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, inject } from "vitest"
import * as DirectUploadSigner from "../../src/layers/DirectUploadSigner.js"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { describeEachDialect, missingServer } from "../support/databases.js"
import { abort, bytes, sha256 } from "./client.js"
import {
  completeDirect,
  directSecret,
  directServerLayer,
  listStored,
  openDirect,
  putTo,
  signPart
} from "./directHarness.js"
import { call, raw } from "./harness.js"

const base = mkdtempSync(join(tmpdir(), "effect-storage-direct-"))
afterAll(() => rmSync(base, { recursive: true, force: true }))

type Kind = "embedded" | "s3"

/** Part `n` (1-based) of `data`. */
const slice = (data: Uint8Array, partSize: number, n: number) =>
  data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length))

/** Opens a direct upload as alice; answers the ticket. */
const opened = (size: number, filename = "clip.bin") =>
  Effect.gen(function*() {
    const answer = yield* openDirect("alice", { filename, size })
    assert.strictEqual(answer.status, 201, answer.text)
    return answer.json as { claimId: string; key: string; partSize: number; partCount: number }
  })

/** Signs part `n` as alice and sends `body` to the URL; answers the signed request and the storage's answer. */
const sendPart = (claimId: string, n: number, body: Uint8Array) =>
  Effect.gen(function*() {
    const signed = yield* signPart("alice", claimId, n)
    assert.strictEqual(signed.status, 200, signed.text)
    return { signed: signed.json, put: yield* putTo(signed.json.url, body) }
  })

/** The claim is still pending, and adoption cannot take it. */
const notAdoptable = (claimId: string, key: string) =>
  Effect.gen(function*() {
    const claims = yield* ClaimStore
    assert.strictEqual((yield* claims.get(claimId)).status, "pending")
    const adopted = yield* Effect.flip(claims.consume(key))
    assert.strictEqual(adopted._tag, "ClaimNotFound")
  })

const directSuite = (it: Vitest.MethodsNonLive<any>, partSize: number, kind: Kind, storageOrigin: string) => {
  it.effect("parts go straight to the storage, are listed from it, complete assembles them", () =>
    Effect.gen(function*() {
      const data = bytes(partSize * 2 + 1234)
      const ticket = yield* opened(data.length, "Q3 report.pdf")
      assert.strictEqual(ticket.partCount, 3)
      const etags: Record<number, string> = {}
      for (const n of [3, 1, 2]) {
        const { put, signed } = yield* sendPart(ticket.claimId, n, slice(data, partSize, n))
        assert.strictEqual(signed.method, "PUT")
        assert.deepStrictEqual(signed.headers, { "content-length": String(slice(data, partSize, n).length) })
        assert.isTrue(new URL(signed.url, "http://app.invalid").origin === storageOrigin, signed.url)
        assert.strictEqual(put.status, 200, put.body)
        assert.isString(put.etag)
        etags[n] = put.etag!.replace(/"/g, "")
      }
      const listed = yield* listStored("alice", ticket.claimId)
      assert.deepStrictEqual(listed.json.parts, [
        { partNumber: 1, size: partSize, etag: etags[1] },
        { partNumber: 2, size: partSize, etag: etags[2] },
        { partNumber: 3, size: 1234, etag: etags[3] }
      ])
      const done = yield* completeDirect("alice", ticket.claimId)
      assert.strictEqual(done.status, 200, done.text)
      assert.deepInclude(done.json, { key: ticket.key, size: data.length, originalFilename: "Q3 report.pdf" })
      // idempotent
      const again = yield* completeDirect("alice", ticket.claimId)
      assert.deepStrictEqual([again.status, again.json.size], [200, data.length])
      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${ticket.key}`))
      assert.strictEqual(sha256(file.body), sha256(data))
      // recorded like a proxied upload: uploaded, adoptable once
      const claims = yield* ClaimStore
      assert.strictEqual((yield* claims.get(ticket.claimId)).status, "uploaded")
      yield* claims.consume(ticket.key)
    }))

  it.effect("a part of another size than signed is refused and nothing is stored", () =>
    Effect.gen(function*() {
      const ticket = yield* opened(partSize * 2)
      const signed = (yield* signPart("alice", ticket.claimId, 1)).json
      const larger = yield* putTo(signed.url, bytes(partSize + 1))
      const smaller = yield* putTo(signed.url, bytes(partSize - 1))
      if (kind === "s3") {
        // the storage itself: Content-Length is part of the signature
        assert.deepStrictEqual([larger.status, smaller.status], [403, 403])
        assert.include(larger.body, "SignatureDoesNotMatch")
      } else {
        assert.deepStrictEqual([larger.status, JSON.parse(larger.body)._tag], [413, "PartTooLarge"])
        assert.deepStrictEqual([smaller.status, JSON.parse(smaller.body)._tag], [422, "PartTooSmall"])
      }
      assert.deepStrictEqual((yield* listStored("alice", ticket.claimId)).json.parts, [])
      const done = yield* completeDirect("alice", ticket.claimId)
      assert.deepStrictEqual([done.status, done.json._tag], [422, "PartsIncomplete"])
      yield* notAdoptable(ticket.claimId, ticket.key)
    }))

  it.effect("a URL works only for its own claim and part, unaltered", () =>
    Effect.gen(function*() {
      const a = yield* opened(partSize * 2)
      const b = yield* opened(partSize * 2)
      const url = (yield* signPart("alice", a.claimId, 1)).json.url as string
      const body = bytes(partSize)
      const variants = kind === "s3"
        ? {
          otherClaim: url.replace(a.key, b.key),
          otherPart: url.replace("partNumber=1", "partNumber=2"),
          tampered: url.replace(/X-Amz-Signature=([0-9a-f])/, (_, c) => `X-Amz-Signature=${c === "0" ? "1" : "0"}`)
        }
        : {
          otherClaim: url.replace(a.claimId, b.claimId),
          otherPart: url.replace(`/${a.claimId}/1?`, `/${a.claimId}/2?`),
          tampered: url.replace(/signature=([\w-])/, (_, c) => `signature=${c === "A" ? "B" : "A"}`)
        }
      for (const [what, variant] of Object.entries(variants)) {
        assert.notStrictEqual(variant, url, what)
        const answer = yield* putTo(variant, body)
        assert.strictEqual(answer.status, 403, `${what}: ${answer.body}`)
        if (kind === "embedded") assert.strictEqual(JSON.parse(answer.body)._tag, "InvalidUploadSignature", what)
      }
      assert.deepStrictEqual((yield* listStored("alice", a.claimId)).json.parts, [])
      assert.deepStrictEqual((yield* listStored("alice", b.claimId)).json.parts, [])
      // the unaltered URL still works
      assert.strictEqual((yield* putTo(url, body)).status, 200)
    }))

  it.effect("an expired URL is refused", () =>
    Effect.gen(function*() {
      const ticket = yield* opened(partSize * 2)
      const claim = yield* (yield* ClaimStore).get(ticket.claimId)
      const objects = yield* ObjectStorage
      const url = yield* Option.match(objects.presign, {
        // S3 signs with an expiry of one second, checked by the storage
        onSome: (presigner) =>
          presigner.uploadPart({
            key: claim.key,
            uploadId: claim.uploadId,
            partNumber: 1,
            size: partSize,
            expiresIn: Duration.seconds(1)
          }).pipe(Effect.map((r) => r.url), Effect.zipLeft(Effect.sleep("2500 millis"))),
        // the server's own URL, signed at the epoch: long expired
        onNone: () =>
          DirectUploadSigner.make({ secret: directSecret }).sign({
            claimId: claim.id,
            partNumber: 1,
            size: partSize
          }).pipe(Effect.map((r) => r.url), Effect.provide(TestContext.TestContext))
      })
      const answer = yield* putTo(url, bytes(partSize))
      assert.strictEqual(answer.status, 403, answer.body)
      if (kind === "embedded") assert.strictEqual(JSON.parse(answer.body)._tag, "UploadUrlExpired")
      else assert.include(answer.body, "AccessDenied")
      assert.deepStrictEqual((yield* listStored("alice", ticket.claimId)).json.parts, [])
    }))

  it.effect("complete with a part missing or stored short fails; nothing is adopted; abort leaves nothing", () =>
    Effect.gen(function*() {
      const data = bytes(partSize * 2 + 10)
      const ticket = yield* opened(data.length)
      for (const n of [1, 3]) {
        assert.strictEqual((yield* sendPart(ticket.claimId, n, slice(data, partSize, n))).put.status, 200)
      }
      const missing = yield* completeDirect("alice", ticket.claimId)
      assert.deepStrictEqual([missing.status, missing.json._tag], [422, "PartsIncomplete"])
      assert.include(missing.json.message, "missing: 2")
      yield* notAdoptable(ticket.claimId, ticket.key)
      // part 2 stored short, by someone holding the storage's own credentials
      const claim = yield* (yield* ClaimStore).get(ticket.claimId)
      const multipart = Option.getOrThrow((yield* ObjectStorage).multipart)
      yield* multipart.putPart({ key: claim.key, uploadId: claim.uploadId, partNumber: 2, body: bytes(partSize - 7) })
      const short = yield* completeDirect("alice", ticket.claimId)
      assert.deepStrictEqual([short.status, short.json._tag], [422, "PartTooSmall"])
      assert.include(short.json.message, "part 2 of 3")
      yield* notAdoptable(ticket.claimId, ticket.key)
      assert.strictEqual((yield* Effect.flip((yield* ObjectStorage).statObject(ticket.key)))._tag, "ObjectNotFound")
      // abort: the claim goes and the session's deletion is queued
      assert.strictEqual((yield* abort("alice", ticket.claimId)).status, 204)
      assert.strictEqual((yield* Effect.flip((yield* ClaimStore).get(ticket.claimId)))._tag, "ClaimNotFound")
      const queued = yield* (yield* SqlClient.SqlClient)<{ object_key: string; reason: string }>`
        SELECT object_key, reason FROM sys_storage_pending_delete`
      assert.deepInclude(queued, { object_key: ticket.key, reason: "aborted" })
    }))

  it.effect("another user can neither sign, list nor complete the claim; anonymous is 401", () =>
    Effect.gen(function*() {
      const data = bytes(partSize + 5)
      const ticket = yield* opened(data.length)
      for (const n of [1, 2]) yield* sendPart(ticket.claimId, n, slice(data, partSize, n))
      for (
        const answer of [
          yield* signPart("bob", ticket.claimId, 1),
          yield* listStored("bob", ticket.claimId),
          yield* completeDirect("bob", ticket.claimId)
        ]
      ) assert.deepStrictEqual([answer.status, answer.json._tag], [403, "AccessDenied"])
      assert.strictEqual((yield* completeDirect(undefined, ticket.claimId)).status, 401)
      yield* notAdoptable(ticket.claimId, ticket.key)
      assert.strictEqual((yield* completeDirect("alice", ticket.claimId)).status, 200)
    }))

  it.effect("several parts signed in one request, each for its own size", () =>
    Effect.gen(function*() {
      const data = bytes(partSize * 2 + 99)
      const ticket = yield* opened(data.length)
      const answer = yield* call(
        "alice",
        HttpClientRequest.post(`/storage/direct/uploads/${ticket.claimId}/signatures`).pipe(
          HttpClientRequest.bodyUnsafeJson({ partNumbers: [3, 1, 2, 1] })
        )
      )
      assert.strictEqual(answer.status, 200, answer.text)
      const signed = answer.json.parts as Array<{ partNumber: number; size: number; url: string }>
      assert.deepStrictEqual(signed.map((p) => [p.partNumber, p.size]), [[3, 99], [1, partSize], [2, partSize]])
      for (const part of signed) {
        assert.strictEqual((yield* putTo(part.url, slice(data, partSize, part.partNumber))).status, 200)
      }
      assert.strictEqual((yield* completeDirect("alice", ticket.claimId)).status, 200)
      // out of range, too many, or someone else's: nothing signed
      for (
        const [user, partNumbers, status] of [
          ["alice", [1, 4], 422],
          ["alice", Array.from({ length: 101 }, (_, i) => i + 1), 400],
          ["alice", [], 422],
          ["bob", [1], 403]
        ] as const
      ) {
        const other = yield* opened(partSize * 3)
        const refused = yield* call(
          user,
          HttpClientRequest.post(`/storage/direct/uploads/${other.claimId}/signatures`).pipe(
            HttpClientRequest.bodyUnsafeJson({ partNumbers })
          )
        )
        assert.strictEqual(refused.status, status, refused.text)
        assert.isUndefined(refused.json?.parts)
      }
    }))

  it.effect("part numbers outside the claim are not signed", () =>
    Effect.gen(function*() {
      const ticket = yield* opened(partSize + 1)
      for (const n of [0, 3]) {
        const answer = yield* signPart("alice", ticket.claimId, n)
        assert.deepStrictEqual([answer.status, answer.json._tag], [422, "PartNumberOutOfRange"])
      }
    }))
}

const partSize = 64 * 1024

describeEachDialect(
  "direct uploads (filesystem backend: the server's own signed URLs)",
  (database) =>
    directServerLayer(
      database,
      FileSystemObjectStorage.layer({ root: join(base, `objects-${randomBytes(4).toString("hex")}`), partSize })
    ),
  (it) => directSuite(it, partSize, "embedded", "http://app.invalid"),
  ["sqlite"],
  { liveClock: true }
)

const ceph = inject("servers").s3.ceph
const swift = inject("servers").s3.swift
const appOrigin = "http://app.example.test"
if (ceph === undefined) {
  missingServer("direct uploads (S3 backend on Ceph RGW)", "Ceph RGW (scripts/s3/all.sh up)")
} else {
  describeEachDialect(
    "direct uploads (S3 backend on Ceph RGW: presigned URLs)",
    (database) =>
      directServerLayer(
        database,
        S3ObjectStorage.layer({
          bucket: `direct-${randomBytes(4).toString("hex")}`,
          endpoint: ceph.endpoint,
          credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
          forcePathStyle: true,
          createBucket: true,
          partSize: S3ObjectStorage.minimumPartSize,
          corsOrigins: [appOrigin]
        })
      ),
    (it) => {
      directSuite(it, S3ObjectStorage.minimumPartSize, "s3", new URL(ceph.endpoint).origin)

      it.effect("the bucket's CORS rule lets the app's origin PUT and POST, and read ETag; no other origin", () =>
        Effect.gen(function*() {
          const ticket = yield* opened(S3ObjectStorage.minimumPartSize)
          const url = (yield* signPart("alice", ticket.claimId, 1)).json.url as string
          const preflight = (origin: string, method: string) =>
            Effect.promise(() =>
              fetch(url, {
                method: "OPTIONS",
                headers: { origin, "access-control-request-method": method }
              })
            )
          for (const method of ["PUT", "POST"]) {
            const allowed = yield* preflight(appOrigin, method)
            assert.strictEqual(allowed.headers.get("access-control-allow-origin"), appOrigin)
            assert.match(allowed.headers.get("access-control-expose-headers") ?? "", /etag/i)
          }
          const other = yield* preflight("http://evil.example", "PUT")
          assert.isNull(other.headers.get("access-control-allow-origin"))
        }))
    },
    ["pg"],
    { liveClock: true }
  )
}

if (swift === undefined) {
  missingServer("bucket CORS on Swift s3api", "Swift s3api (scripts/s3/all.sh up)")
} else {
  describe("bucket CORS on Swift s3api", () => {
    it.effect("is refused with a clear error: its s3api does not implement PutBucketCors", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(S3ObjectStorage.make({
          bucket: `cors-${randomBytes(4).toString("hex")}`,
          endpoint: swift.endpoint,
          credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
          forcePathStyle: true,
          createBucket: true,
          corsOrigins: [appOrigin]
        })))
        assert.strictEqual(error._tag, "StorageBackendError")
        if (error._tag === "StorageBackendError") {
          assert.strictEqual(error.reason, "invalid")
          assert.include(error.message, "does not implement bucket CORS")
        }
      }))
  })
}
