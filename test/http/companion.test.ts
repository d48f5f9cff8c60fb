/**
 * Uppy's Companion S3 routes and browser sessions, spoken with plain fetch
 * the way `@uppy/aws-s3` does (its own run in Chromium is in
 * test/example/uppy-s3.test.ts): a session cookie from a bearer token, the
 * CSRF rule for cookies, a multipart upload straight to Ceph RGW through the
 * Companion routes, and a form upload (POST policy) whose claim is checked
 * against the storage before it can be adopted.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, type Vitest } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, inject } from "vitest"
import { DirectUploads } from "../../src/layers/DirectUploads.js"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { describeEachDialect, missingServer } from "../support/databases.js"
import { bytes, sha256 } from "./client.js"
import { directServerLayer, origin } from "./directHarness.js"
import { raw, tokens } from "./harness.js"

const base = mkdtempSync(join(tmpdir(), "effect-storage-companion-"))
afterAll(() => rmSync(base, { recursive: true, force: true }))

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly json: any
  readonly text: string
}

/** A fetch to the server, as a browser page of its own origin would send it (with `Origin` on unsafe methods). */
const request = (
  path: string,
  options: {
    method?: string
    cookie?: string
    origin?: string | null
    body?: unknown
    bearer?: string
    site?: string
  } = {}
) =>
  Effect.flatMap(origin, (base) =>
    Effect.promise(async (): Promise<Answer> => {
      const method = options.method ?? "GET"
      const headers: Record<string, string> = {}
      if (options.cookie !== undefined) headers.cookie = options.cookie
      if (options.bearer !== undefined) headers.authorization = `Bearer ${options.bearer}`
      const sentOrigin = options.origin === undefined ? base : options.origin
      if (method !== "GET" && sentOrigin !== null) headers.origin = sentOrigin
      if (options.body !== undefined) headers["content-type"] = "application/json"
      if (options.site !== undefined) headers["sec-fetch-site"] = options.site
      const response = await fetch(`${base}${path}`, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
      })
      const text = await response.text()
      let json: any
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: response.status, headers: response.headers, json, text }
    }))

/** Signs alice in: answers the `name=value` of her session cookie. */
const signIn = Effect.gen(function*() {
  const answer = yield* request("/storage/session", { method: "POST", bearer: tokens.alice })
  assert.strictEqual(answer.status, 200, answer.text)
  const setCookie = answer.headers.get("set-cookie") ?? ""
  return setCookie.split(";")[0]!
})

const companionSuite = (it: Vitest.MethodsNonLive<any>, kind: "embedded" | "s3") => {
  it.effect("a session cookie from a bearer token: HttpOnly, SameSite=Strict, Secure over TLS; it authenticates", () =>
    Effect.gen(function*() {
      const answer = yield* request("/storage/session", { method: "POST", bearer: tokens.alice })
      assert.strictEqual(answer.status, 200)
      assert.strictEqual(answer.json.principal, "alice")
      const setCookie = answer.headers.get("set-cookie") ?? ""
      assert.match(setCookie, /^effect_storage_session=[\w-]+\.\d+\.[\w-]{43};/)
      assert.match(setCookie, /HttpOnly/)
      assert.match(setCookie, /SameSite=Strict/)
      assert.notMatch(setCookie, /Secure/)
      const overTls = yield* Effect.flatMap(origin, (base) =>
        Effect.promise(() =>
          fetch(`${base}/storage/session`, {
            method: "POST",
            headers: { authorization: `Bearer ${tokens.alice}`, "x-forwarded-proto": "https" }
          })
        ))
      assert.match(overTls.headers.get("set-cookie") ?? "", /Secure/)
      // no token, no session
      assert.strictEqual((yield* request("/storage/session", { method: "POST" })).status, 401)

      const cookie = setCookie.split(";")[0]!
      const settings = yield* request("/storage/companion/settings", { cookie })
      assert.strictEqual(settings.status, 200, settings.text)
      assert.deepStrictEqual(settings.json.formUploads, kind === "s3")
      assert.strictEqual((yield* request("/storage/companion/settings")).status, 401)
      const forged = cookie.replace(/=[\w-]+\./, `=${Buffer.from("bob").toString("base64url")}.`)
      assert.strictEqual((yield* request("/storage/companion/settings", { cookie: forged })).status, 401)
      const logout = yield* request("/storage/session", { method: "DELETE" })
      assert.strictEqual(logout.status, 204)
      assert.match(logout.headers.get("set-cookie") ?? "", /Max-Age=0/)
    }))

  it.effect("CSRF: a cookie on an unsafe method is accepted only from the server's own origin", () =>
    Effect.gen(function*() {
      const cookie = yield* signIn
      const body = { filename: "a.bin", type: "application/octet-stream", metadata: { size: 10 } }
      const foreign = yield* request("/storage/companion/s3/multipart", {
        method: "POST",
        cookie,
        body,
        origin: "http://evil.example"
      })
      assert.deepStrictEqual([foreign.status, foreign.json._tag], [401, "Unauthenticated"])
      const noOrigin = yield* request("/storage/companion/s3/multipart", { method: "POST", cookie, body, origin: null })
      assert.strictEqual(noOrigin.status, 401)
      const claims = yield* ClaimStore
      assert.strictEqual(yield* claims.countPendingByOwner("alice"), 0)
      const own = yield* request("/storage/companion/s3/multipart", { method: "POST", cookie, body })
      assert.strictEqual(own.status, 200, own.text)
      // a bearer token needs no Origin (no browser sends it on its own)
      const bearer = yield* request("/storage/companion/s3/multipart", {
        method: "POST",
        bearer: tokens.alice,
        body,
        origin: null
      })
      assert.strictEqual(bearer.status, 200, bearer.text)
    }))

  it.effect("CSRF: a cookie on a GET from another site or a sibling subdomain is refused (Sec-Fetch-Site)", () =>
    Effect.gen(function*() {
      const cookie = yield* signIn
      const claims = yield* ClaimStore
      const pending = yield* claims.countPendingByOwner("alice")
      // Companion's /s3/params opens an upload on a GET: an <img> elsewhere must not.
      const path = "/storage/companion/s3/params?filename=a.txt&type=text/plain&metadata[size]=5"
      for (const site of ["cross-site", "same-site"]) {
        const refused = yield* request(path, { cookie, site })
        assert.deepStrictEqual([refused.status, refused.json._tag], [401, "Unauthenticated"], site)
      }
      assert.strictEqual(yield* claims.countPendingByOwner("alice"), pending)
      const own = yield* request("/storage/companion/settings", { cookie, site: "same-origin" })
      assert.strictEqual(own.status, 200, own.text)
      const typed = yield* request("/storage/companion/settings", { cookie, site: "none" })
      assert.strictEqual(typed.status, 200, typed.text)
    }))

  it.effect("create needs the size in the metadata; the key must be the claim's", () =>
    Effect.gen(function*() {
      const cookie = yield* signIn
      const noSize = yield* request("/storage/companion/s3/multipart", {
        method: "POST",
        cookie,
        body: { filename: "a.bin", type: "text/plain", metadata: { name: "a.bin" } }
      })
      assert.deepStrictEqual([noSize.status, noSize.json._tag], [422, "InvalidUploadSize"])
      const a = (yield* request("/storage/companion/s3/multipart", {
        method: "POST",
        cookie,
        body: { filename: "a.bin", metadata: { size: "10" } }
      })).json
      const b = (yield* request("/storage/companion/s3/multipart", {
        method: "POST",
        cookie,
        body: { filename: "b.bin", metadata: { size: 10 } }
      })).json
      const crossed = yield* request(
        `/storage/companion/s3/multipart/${a.uploadId}/1?key=${encodeURIComponent(b.key)}`,
        {
          cookie
        }
      )
      assert.deepStrictEqual([crossed.status, crossed.json._tag], [403, "AccessDenied"])
    }))

  it.effect("another user's session can neither sign, list, complete nor abort the upload", () =>
    Effect.gen(function*() {
      const alice = yield* signIn
      const bob = (yield* request("/storage/session", { method: "POST", bearer: tokens.bob })).headers
        .get("set-cookie")!.split(";")[0]!
      const { key, uploadId } = (yield* request("/storage/companion/s3/multipart", {
        method: "POST",
        cookie: alice,
        body: { filename: "mine.bin", metadata: { size: 10 } }
      })).json
      const q = `key=${encodeURIComponent(key)}`
      for (
        const answer of [
          yield* request(`/storage/companion/s3/multipart/${uploadId}/1?${q}`, { cookie: bob }),
          yield* request(`/storage/companion/s3/multipart/${uploadId}?${q}`, { cookie: bob }),
          yield* request(`/storage/companion/s3/multipart/${uploadId}/complete?${q}`, {
            method: "POST",
            cookie: bob,
            body: { parts: [] }
          })
        ]
      ) assert.deepStrictEqual([answer.status, answer.json._tag], [403, "AccessDenied"])
      // abort answers as for an unknown upload, and leaves alice's alone
      assert.strictEqual(
        (yield* request(`/storage/companion/s3/multipart/${uploadId}?${q}`, { method: "DELETE", cookie: bob })).status,
        200
      )
      assert.strictEqual((yield* (yield* ClaimStore).get(uploadId)).status, "pending")
      assert.strictEqual(
        (yield* request(`/storage/companion/s3/multipart/${uploadId}/1?${q}`, { cookie: alice })).status,
        200
      )
    }))

  it.effect("a multipart upload through the Companion routes, completed from the storage's own part list", () =>
    Effect.gen(function*() {
      const cookie = yield* signIn
      const settings = (yield* request("/storage/companion/settings", { cookie })).json
      const partSize = settings.partSize as number
      const data = bytes(partSize + 4321)
      const created = yield* request("/storage/companion/s3/multipart", {
        method: "POST",
        cookie,
        body: { filename: "movie.mp4", type: "video/mp4", metadata: { name: "movie.mp4", size: data.length } }
      })
      assert.strictEqual(created.status, 200, created.text)
      const { key, uploadId } = created.json
      const q = `key=${encodeURIComponent(key)}`
      for (const n of [1, 2]) {
        const signed = yield* request(`/storage/companion/s3/multipart/${uploadId}/${n}?${q}`, { cookie })
        assert.strictEqual(signed.status, 200, signed.text)
        const body = data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length))
        const put = yield* Effect.flatMap(
          origin,
          (base) => Effect.promise(() => fetch(new URL(signed.json.url, base), { method: "PUT", body: body.slice() }))
        )
        assert.strictEqual(put.status, 200)
        assert.isString(put.headers.get("etag"))
      }
      const listed = yield* request(`/storage/companion/s3/multipart/${uploadId}?${q}`, { cookie })
      assert.deepStrictEqual(listed.json.map((p: any) => [p.PartNumber, p.Size]), [[1, partSize], [2, 4321]])
      // the client's part list is ignored: bogus ETags change nothing
      const done = yield* request(`/storage/companion/s3/multipart/${uploadId}/complete?${q}`, {
        method: "POST",
        cookie,
        body: { parts: [{ PartNumber: 1, ETag: "bogus" }] }
      })
      assert.strictEqual(done.status, 200, done.text)
      assert.strictEqual(done.json.key, key)
      const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${key}`))
      assert.strictEqual(sha256(file.body), sha256(data))
      // abort after completion changes nothing
      const aborted = yield* request(`/storage/companion/s3/multipart/${uploadId}?${q}`, { method: "DELETE", cookie })
      assert.strictEqual(aborted.status, 200)
      assert.strictEqual((yield* (yield* ClaimStore).get(uploadId)).status, "uploaded")
    }))

  if (kind === "embedded") {
    it.effect("no form uploads on the embedded backends: /s3/params says so", () =>
      Effect.gen(function*() {
        const cookie = yield* signIn
        const pending = yield* (yield* ClaimStore).countPendingByOwner("alice")
        const answer = yield* request("/storage/companion/s3/params?filename=a.txt&type=text/plain&metadata[size]=5", {
          cookie
        })
        assert.deepStrictEqual([answer.status, answer.json._tag], [422, "MultipartNotSupported"])
        assert.strictEqual(yield* (yield* ClaimStore).countPendingByOwner("alice"), pending)
      }))
  } else {
    it.effect("a form upload (POST policy) pins the size; the claim is recorded only once the storage holds it", () =>
      Effect.gen(function*() {
        const cookie = yield* signIn
        const data = bytes(3000)
        const params = yield* request(
          `/storage/companion/s3/params?filename=notes.txt&type=text/plain&metadata[size]=${data.length}`,
          { cookie }
        )
        assert.strictEqual(params.status, 200, params.text)
        const { fields, url } = params.json
        assert.strictEqual(new URL(url).port, "7480")
        const post = (body: Uint8Array, overrides: Record<string, string> = {}) =>
          Effect.promise(async () => {
            const form = new FormData()
            for (const [name, value] of Object.entries({ ...fields, ...overrides })) form.append(name, value as string)
            form.append("file", new Blob([body.slice()]))
            const response = await fetch(url, { method: "POST", body: form })
            return { status: response.status, text: await response.text() }
          })
        const direct = yield* DirectUploads
        const claims = yield* ClaimStore
        // not yet uploaded: nothing to record, nothing adoptable
        yield* direct.settle({ id: "alice" }, [fields.key])
        assert.strictEqual((yield* claims.getByKey(fields.key)).status, "pending")
        // a file of another size, or another key or type, is refused by the storage
        const larger = yield* post(bytes(data.length + 1))
        assert.strictEqual(larger.status, 400, larger.text)
        assert.include(larger.text, "EntityTooLarge")
        const smaller = yield* post(bytes(data.length - 1))
        assert.strictEqual(smaller.status, 400, smaller.text)
        assert.strictEqual((yield* post(data, { key: `${fields.key}.other` })).status, 403)
        assert.strictEqual((yield* post(data, { "Content-Type": "text/html" })).status, 403)
        yield* direct.settle({ id: "alice" }, [fields.key])
        assert.strictEqual((yield* claims.getByKey(fields.key)).status, "pending")
        const sent = yield* post(data)
        assert.isTrue(sent.status === 204 || sent.status === 201 || sent.status === 200, sent.text)
        // bob cannot settle alice's upload; alice can, then adopt it once
        yield* direct.settle({ id: "bob" }, [fields.key])
        assert.strictEqual((yield* claims.getByKey(fields.key)).status, "pending")
        assert.strictEqual((yield* Effect.flip(claims.consume(fields.key)))._tag, "ClaimNotFound")
        yield* direct.settle({ id: "alice" }, [fields.key])
        assert.strictEqual((yield* claims.getByKey(fields.key)).status, "uploaded")
        yield* claims.consume(fields.key)
        const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${fields.key}`))
        assert.strictEqual(sha256(file.body), sha256(data))
      }))
  }
}

describeEachDialect(
  "Companion S3 routes (filesystem backend)",
  (database) =>
    directServerLayer(
      database,
      FileSystemObjectStorage.layer({
        root: join(base, `objects-${randomBytes(4).toString("hex")}`),
        partSize: S3ObjectStorage.minimumPartSize
      })
    ),
  (it) => companionSuite(it, "embedded"),
  ["sqlite"],
  { liveClock: true }
)

const ceph = inject("servers").s3.ceph
if (ceph === undefined) {
  missingServer("Companion S3 routes (Ceph RGW)", "Ceph RGW (scripts/s3/all.sh up)")
} else {
  describeEachDialect(
    "Companion S3 routes (Ceph RGW)",
    (database) =>
      directServerLayer(
        database,
        S3ObjectStorage.layer({
          bucket: `companion-${randomBytes(4).toString("hex")}`,
          endpoint: ceph.endpoint,
          credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
          forcePathStyle: true,
          createBucket: true,
          partSize: S3ObjectStorage.minimumPartSize
        })
      ),
    (it) => companionSuite(it, "s3"),
    ["sqlite"],
    { liveClock: true }
  )
}
