/**
 * Signed download links: handed out by `POST /storage/links` to a user the
 * ACL allows, they download without a bearer token until they expire;
 * expired, tampered and borrowed links are refused with clear errors, and
 * `?access_token=` no longer authenticates.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DownloadLinks from "../../src/http/DownloadLinks.js"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import { freshDatabase } from "../support/databases.js"
import { bytes, sha256, uploadWhole } from "./client.js"
import { call, linkSecret, raw, serverLayer, tokens } from "./harness.js"

const createLink = (user: keyof typeof tokens | undefined, key: string) =>
  call(user, HttpClientRequest.post("/storage/links").pipe(HttpClientRequest.bodyUnsafeJson({ key })))

const anonymousGet = (url: string) => raw(undefined, HttpClientRequest.get(url))
const anonymousJson = (url: string) => call(undefined, HttpClientRequest.get(url))

layer(serverLayer(freshDatabase("sqlite"), MemoryObjectStorage.layer({ partSize: 64 * 1024 })), {
  timeout: "60 seconds",
  excludeTestServices: true
})("signed download links", (it) => {
  it.effect("a link made for an allowed user downloads without a bearer; others are refused", () =>
    Effect.gen(function*() {
      const data = bytes(3000)
      const { ticket } = yield* uploadWhole("alice", "photo.jpg", data, { contentType: "image/jpeg" })
      const made = yield* createLink("alice", ticket.key)
      assert.strictEqual(made.status, 200, made.text)
      assert.strictEqual(made.json.key, ticket.key)
      assert.match(made.json.url, /^\/storage\/files\/priv\/.+\?expires=\d+&signature=[\w-]{43}$/)
      const expiresIn = Date.parse(made.json.expiresAt) - Date.now()
      assert.isTrue(expiresIn > 14 * 60_000 && expiresIn <= 15 * 60_000 + 1000, `${expiresIn}`)

      const file = yield* anonymousGet(made.json.url)
      assert.strictEqual(file.status, 200)
      assert.strictEqual(sha256(file.body), sha256(data))
      assert.strictEqual(file.headers["cache-control"], "private, no-cache")
      // ranges work through a link too
      const part = yield* raw(
        undefined,
        HttpClientRequest.get(made.json.url).pipe(HttpClientRequest.setHeader("range", "bytes=0-9"))
      )
      assert.strictEqual(part.status, 206)

      // bob may not read alice's file, so he gets no link; nobody gets one anonymously
      const refused = yield* createLink("bob", ticket.key)
      assert.deepStrictEqual([refused.status, refused.json._tag], [403, "AccessDenied"])
      assert.strictEqual((yield* createLink(undefined, ticket.key)).status, 401)
      const badKey = yield* createLink("alice", "priv/../etc/passwd")
      assert.deepStrictEqual([badKey.status, badKey.json._tag], [422, "InvalidObjectKey"])
    }))

  it.effect("tampered, borrowed, malformed and expired links are refused: 403 InvalidDownloadLink, 410 expired", () =>
    Effect.gen(function*() {
      const first = (yield* uploadWhole("alice", "a.txt", bytes(100))).ticket
      const second = (yield* uploadWhole("alice", "b.txt", bytes(100))).ticket
      const link = (yield* createLink("alice", first.key)).json as { url: string }
      const url = new URL(link.url, "http://x")
      const expires = url.searchParams.get("expires")!
      const signature = url.searchParams.get("signature")!
      const filePath = url.pathname
      const refusals: Array<[string, string]> = [
        ["tampered signature", `${filePath}?expires=${expires}&signature=${flip(signature)}`],
        ["tampered expiry", `${filePath}?expires=${Number(expires) + 3600}&signature=${signature}`],
        ["another key's signature", `/storage/files/${second.key}?expires=${expires}&signature=${signature}`],
        ["no signature", `${filePath}?expires=${expires}`],
        ["no expiry", `${filePath}?signature=${signature}`],
        ["short signature", `${filePath}?expires=${expires}&signature=${signature.slice(1)}`],
        ["expiry not a number", `${filePath}?expires=soon&signature=${signature}`]
      ]
      for (const [what, path] of refusals) {
        const r = yield* anonymousJson(path)
        assert.deepStrictEqual([r.status, r.json?._tag], [403, "InvalidDownloadLink"], `${what}: ${r.text}`)
        assert.isString(r.json.message)
      }
      // A bearer token does not rescue a broken link: the link is what is checked.
      const withBearer = yield* call(
        "alice",
        HttpClientRequest.get(`${filePath}?expires=${expires}&signature=${flip(signature)}`)
      )
      assert.strictEqual(withBearer.status, 403)

      // Expired: a link signed with the server's secret and no time to live.
      const shortLived = DownloadLinks.make({ secret: linkSecret, ttl: 0 })
      const expired = yield* shortLived.sign(first.key)
      yield* Effect.sleep("1100 millis")
      const late = yield* anonymousJson(expired.url)
      assert.deepStrictEqual([late.status, late.json._tag], [410, "DownloadLinkExpired"], late.text)
      assert.match(late.json.message, /expired/)
      // Expired and tampered with: invalid, not expired.
      const lateTampered = yield* anonymousJson(
        expired.url.replace(/signature=(.)/, (_, c) => `signature=${c === "A" ? "B" : "A"}`)
      )
      assert.strictEqual(lateTampered.status, 403)
      // A link signed with another secret is refused.
      const foreign = DownloadLinks.make({ secret: Redacted.make("another-secret-another-secret-another-secret") })
      assert.strictEqual((yield* anonymousJson((yield* foreign.sign(first.key)).url)).status, 403)
    }))

  it.effect("?access_token= no longer authenticates a download", () =>
    Effect.gen(function*() {
      const { ticket } = yield* uploadWhole("alice", "c.txt", bytes(100))
      const viaQuery = yield* anonymousJson(`/storage/files/${ticket.key}?access_token=${tokens.alice}`)
      assert.deepStrictEqual([viaQuery.status, viaQuery.json._tag], [401, "Unauthenticated"])
      const viaHeader = yield* raw("alice", HttpClientRequest.get(`/storage/files/${ticket.key}`))
      assert.strictEqual(viaHeader.status, 200)
    }))
})

layer(Layer.empty)("DownloadLinks.layerFromConfig", (it) => {
  it.effect("without a secret, the filesystem default keeps one beside STORAGE_ROOT, shared by every instance", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "effect-storage-links-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const env = new Map([["STORAGE_ROOT", join(dir, "objects")]])
      const build = Effect.provide(
        DownloadLinks.DownloadLinks,
        DownloadLinks.layerFromConfig.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(env))))
      )
      const one = yield* build
      const secretFile = join(dir, "download-link.secret")
      assert.match(readFileSync(secretFile, "utf8"), /^[0-9a-f]{64}\n$/)
      assert.strictEqual(statSync(secretFile).mode & 0o077, 0, "only its owner may read the secret")
      const two = yield* build
      const link = yield* one.sign("priv/x.bin")
      const params = new URL(link.url, "http://x").searchParams
      yield* two.verify("priv/x.bin", { signature: params.get("signature"), expires: params.get("expires") })

      // A secret given in the environment wins; a short one stops start-up, naming the variable.
      const given = Effect.provide(
        DownloadLinks.DownloadLinks,
        DownloadLinks.layerFromConfig.pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["STORAGE_LINK_SECRET", "short"]]))))
        )
      )
      const failure = yield* Effect.flip(given)
      assert.include(String(failure), "STORAGE_LINK_SECRET")
    }).pipe(Effect.scoped))
})

/** The signature with its first character changed. */
const flip = (signature: string) => `${signature[0] === "A" ? "B" : "A"}${signature.slice(1)}`
