/**
 * Downloads that skip the app server: with `DownloadRedirect` on, an
 * authorized `GET /storage/files/{key}` answers 302 to a short-lived
 * presigned GET on Ceph RGW, which serves the bytes with the content type
 * and `Content-Disposition` the proxy sends. Off by default, refused
 * requests are never redirected, and backends that cannot presign keep
 * proxying.
 */
import { assert, type Vitest } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, inject } from "vitest"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { describeEachDialect, missingServer } from "../support/databases.js"
import { bytes, sha256 } from "./client.js"
import { completeDirect, directServerLayer, openDirect, origin, putTo, signPart } from "./directHarness.js"
import { tokens } from "./harness.js"

const base = mkdtempSync(join(tmpdir(), "effect-storage-redirect-"))
afterAll(() => rmSync(base, { recursive: true, force: true }))

/** A completed direct upload of alice's; answers its key. */
const uploaded = (data: Uint8Array, filename: string, contentType: string) =>
  Effect.gen(function*() {
    const ticket = (yield* openDirect("alice", { filename, size: data.length, contentType })).json
    const signed = (yield* signPart("alice", ticket.claimId, 1)).json
    assert.strictEqual((yield* putTo(signed.url, data)).status, 200)
    assert.strictEqual((yield* completeDirect("alice", ticket.claimId)).status, 200)
    return ticket.key as string
  })

/** A download without following redirects. */
const get = (path: string, user?: keyof typeof tokens) =>
  Effect.flatMap(origin, (base) =>
    Effect.promise(() =>
      fetch(`${base}${path}`, {
        redirect: "manual",
        headers: user === undefined ? {} : { authorization: `Bearer ${tokens[user]}` }
      })
    ))

const redirectSuite = (it: Vitest.MethodsNonLive<any>, storageOrigin: string | undefined) => {
  it.effect("an authorized download answers as configured; a refused one is never redirected", () =>
    Effect.gen(function*() {
      const data = bytes(20_000)
      const key = yield* uploaded(data, "Résumé 2026.pdf", "application/pdf")
      const answer = yield* get(`/storage/files/${key}`, "alice")
      if (storageOrigin === undefined) {
        // no presigning backend: proxied as always
        assert.strictEqual(answer.status, 200)
        assert.strictEqual(sha256(new Uint8Array(yield* Effect.promise(() => answer.arrayBuffer()))), sha256(data))
      } else {
        assert.strictEqual(answer.status, 302)
        const location = answer.headers.get("location")!
        assert.strictEqual(new URL(location).origin, storageOrigin)
        assert.include(location, "X-Amz-Expires=300")
        const file = yield* Effect.promise(() => fetch(location))
        assert.strictEqual(file.status, 200)
        assert.strictEqual(file.headers.get("content-type"), "application/pdf")
        assert.strictEqual(
          file.headers.get("content-disposition"),
          "inline; filename=\"R_sum_ 2026.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf"
        )
        assert.strictEqual(sha256(new Uint8Array(yield* Effect.promise(() => file.arrayBuffer()))), sha256(data))
      }
      // bob may not read it, and an anonymous caller neither: no redirect, no URL
      for (const [user, status] of [["bob", 403], [undefined, 401]] as const) {
        const refused = yield* get(`/storage/files/${key}`, user)
        assert.strictEqual(refused.status, status)
        assert.isNull(refused.headers.get("location"))
      }
    }))
}

describeEachDialect(
  "download redirects (filesystem backend: no presigning, proxied)",
  (database) =>
    directServerLayer(
      database,
      FileSystemObjectStorage.layer({ root: join(base, `objects-${randomBytes(4).toString("hex")}`) }),
      {},
      { redirectDownloads: true }
    ),
  (it) => redirectSuite(it, undefined),
  ["sqlite"],
  { liveClock: true }
)

const ceph = inject("servers").s3.ceph
const cephLayer = (database: Parameters<typeof directServerLayer>[0], redirectDownloads: boolean) =>
  directServerLayer(
    database,
    S3ObjectStorage.layer({
      bucket: `redirect-${randomBytes(4).toString("hex")}`,
      endpoint: ceph!.endpoint,
      credentials: { accessKeyId: ceph!.accessKeyId, secretAccessKey: ceph!.secretAccessKey },
      forcePathStyle: true,
      createBucket: true
    }),
    {},
    { redirectDownloads }
  )
if (ceph === undefined) {
  missingServer("download redirects (Ceph RGW)", "Ceph RGW (scripts/s3/all.sh up)")
} else {
  describeEachDialect(
    "download redirects (Ceph RGW: 302 to a presigned GET)",
    (database) => cephLayer(database, true),
    (it) => redirectSuite(it, new URL(ceph.endpoint).origin),
    ["sqlite"],
    { liveClock: true }
  )
  describeEachDialect(
    "download redirects off by default (Ceph RGW)",
    (database) => cephLayer(database, false),
    (it) =>
      it.effect("the proxy serves the bytes itself", () =>
        Effect.gen(function*() {
          const data = bytes(1000)
          const key = yield* uploaded(data, "a.bin", "application/octet-stream")
          const answer = yield* get(`/storage/files/${key}`, "alice")
          assert.strictEqual(answer.status, 200)
          assert.isNull(answer.headers.get("location"))
          assert.strictEqual(sha256(new Uint8Array(yield* Effect.promise(() => answer.arrayBuffer()))), sha256(data))
        })),
    ["sqlite"],
    { liveClock: true }
  )
}
