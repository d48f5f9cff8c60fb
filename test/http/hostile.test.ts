/**
 * Hostile input against the storage HTTP API (a real server on a random
 * port, over a filesystem backend): traversal in download keys, missing and
 * wrong credentials, a part body longer than its size, a body that stops
 * mid-way, content types a browser would run, oversized headers. The
 * property-based sequences and the slow-client cases against the example
 * server are in test/soak/hostile.soak.ts.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { describeEachDialect } from "../support/databases.js"
import { sendEndlessBody } from "../support/endlessBody.js"
import { eventually } from "../support/eventually.js"
import { abort, bytes, complete, init, listParts, putPart, sha256, uploadWhole } from "./client.js"
import { call, raw, serverLayer, tokens } from "./harness.js"

const partSize = 64 * 1024
const base = mkdtempSync(join(tmpdir(), "effect-storage-hostile-"))
const root = join(base, "objects")
const secret = "TOP-SECRET-CONTENT-OUTSIDE-THE-ROOT"
afterAll(() => rmSync(base, { recursive: true, force: true }))

const port = Effect.map(HttpServer.HttpServer, (server) => (server.address as HttpServer.TcpAddress).port)

/** A request with the path sent exactly as given; answers status, headers and body. */
const rawRequest = (
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {}
) =>
  Effect.flatMap(
    port,
    (p) =>
      Effect.async<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resume) => {
        const req = http.request(
          { host: "127.0.0.1", port: p, path, method: options.method ?? "GET", headers: options.headers },
          (res) => {
            const chunks: Array<Buffer> = []
            res.on("data", (c: Buffer) => chunks.push(c))
            res.on("end", () =>
              resume(
                Effect.succeed({
                  status: res.statusCode ?? 0,
                  headers: res.headers,
                  body: Buffer.concat(chunks).toString()
                })
              ))
          }
        )
        req.on("error", (e) => resume(Effect.die(e)))
        req.end(options.body)
      })
  )

/**
 * Sends a part as a chunked body that never ends, as fast as the server
 * takes it, until the answer arrives (or 256 MiB went out): answers the
 * answer and how many bytes were sent by then.
 */
const endlessPart = (claimId: string, partNumber: number, user: keyof typeof tokens = "alice") =>
  Effect.flatMap(port, (p) =>
    Effect.promise(async () => {
      const { answer, sent } = await sendEndlessBody({
        port: p,
        path: `/storage/uploads/${claimId}/parts/${partNumber}`,
        token: tokens[user],
        chunkSize: 16 * 1024,
        limit: 256 * 1024 * 1024
      })
      const [head = "", body = ""] = answer.split("\r\n\r\n")
      return { head, body, sent }
    }))

/** Sends `sent` bytes of a body declared `declared` long, then destroys the connection. */
const truncatedPart = (claimId: string, partNumber: number, declared: number, sent: number) =>
  Effect.flatMap(port, (p) =>
    Effect.async<void>((resume) => {
      const socket = net.connect(p, "127.0.0.1", () => {
        socket.write(
          `PUT /storage/uploads/${claimId}/parts/${partNumber} HTTP/1.1\r\nHost: x\r\n` +
            `Authorization: Bearer ${tokens.alice}\r\nContent-Length: ${declared}\r\n\r\n`
        )
        socket.write(Buffer.alloc(sent, 1), () =>
          setTimeout(() => {
            socket.destroy()
            resume(Effect.void)
          }, 50))
      })
      socket.on("error", () => {})
    }))

/** The files of a claim's multipart session folder. */
const sessionFiles = (claimId: string) =>
  Effect.map(Effect.flatMap(ClaimStore, (claims) => claims.get(claimId)), (claim) => {
    const folder = join(root, ".multipart", claim.uploadId)
    return existsSync(folder) ? readdirSync(folder) : []
  })
const tempFiles = () => existsSync(join(root, ".tmp")) ? readdirSync(join(root, ".tmp")) : []

describeEachDialect(
  "hostile input (filesystem backend)",
  (database) =>
    serverLayer(database, FileSystemObjectStorage.layer({ root, partSize }), {
      maxUploadSize: 10 * 1024 * 1024,
      allowPublicUploads: true
    }),
  (it) => {
    it.effect("download keys: traversal and encoded traversal never leave the root or reach internal files", () =>
      Effect.gen(function*() {
        // Something worth stealing next to the root, and the backend's own files in it.
        writeFileSync(join(base, "secret.txt"), secret)
        const pub =
          (yield* uploadWhole("alice", "p.png", bytes(100), { public: true, contentType: "image/png" })).ticket
        mkdirSync(join(root, ".meta", "zz"), { recursive: true })
        writeFileSync(join(root, ".meta", "zz", "leak.json"), secret)
        const hostile = [
          "pub/../secret.txt",
          "pub/../../secret.txt",
          "pub/%2e%2e/%2e%2e/secret.txt",
          "pub/%2E%2E/%2E%2E/secret.txt",
          "pub/..%2f..%2fsecret.txt",
          "pub%2f..%2f..%2fsecret.txt",
          "pub/%2e%2e%5c%2e%2e%5csecret.txt",
          "pub/..%5c..%5csecret.txt",
          "pub/%252e%252e/%252e%252e/secret.txt",
          "pub/%c0%ae%c0%ae/secret.txt",
          "pub/.%2e/secret.txt",
          "pub/./../secret.txt",
          "pub//../secret.txt",
          "pub/x/%00/../secret.txt",
          "pub/secret.txt%00.png",
          "%2e%2e/secret.txt",
          "%2fetc%2fpasswd",
          "/etc/passwd",
          "//etc/passwd",
          "pub/.meta/zz/leak.json",
          ".meta/zz/leak.json",
          "%2emeta/zz/leak.json",
          "pub/%2e%2e/.meta/zz/leak.json",
          "pub/../.meta/zz/leak.json",
          ".tmp/x",
          ".multipart/x/manifest.json",
          `${pub.key}/..`,
          `${pub.key}/../../../../../secret.txt`,
          `pub/${"a/".repeat(600)}x`,
          `pub/${"%2e%2e/".repeat(20)}secret.txt`
        ]
        for (const key of hostile) {
          for (const headers of [{}, { authorization: `Bearer ${tokens.alice}` }]) {
            const r = yield* rawRequest(`/storage/files/${key}`, { headers })
            assert.include([400, 401, 403, 404, 422], r.status, `${key}: ${r.status} ${r.body}`)
            assert.notInclude(r.body, secret, key)
            if (r.status !== 404 || r.body !== "") {
              assert.isString(JSON.parse(r.body)._tag, `${key}: ${r.body}`)
            }
          }
        }
        // The public file itself is served: the checks are not over-eager.
        assert.strictEqual((yield* rawRequest(`/storage/files/${pub.key}`)).status, 200)
      }))

    it.effect("missing, wrong and malformed credentials are 401 on every endpoint; nothing happens", () =>
      Effect.gen(function*() {
        const ticket = (yield* init("alice", { filename: "a.bin", size: 10 })).json
        const file = (yield* uploadWhole("alice", "f.bin", bytes(10))).ticket
        const endpoints: Array<[string, string, string | undefined]> = [
          ["POST", "/storage/uploads", JSON.stringify({ filename: "x.bin", size: 1 })],
          ["PUT", `/storage/uploads/${ticket.claimId}/parts/1`, "0123456789"],
          ["GET", `/storage/uploads/${ticket.claimId}/parts`, undefined],
          ["POST", `/storage/uploads/${ticket.claimId}/complete`, undefined],
          ["DELETE", `/storage/uploads/${ticket.claimId}`, undefined],
          ["GET", `/storage/files/${file.key}`, undefined],
          ["POST", "/storage/links", JSON.stringify({ key: file.key })]
        ]
        const credentials: Array<Record<string, string>> = [
          {},
          { authorization: "Bearer wrong-token" },
          { authorization: `Bearer ${tokens.alice}x` },
          { authorization: `Basic ${Buffer.from(`alice:${tokens.alice}`).toString("base64")}` },
          { authorization: "Bearer" },
          { authorization: "Bearer " },
          { authorization: tokens.alice },
          { authorization: `Token ${tokens.alice}` }
        ]
        for (const [method, path, body] of endpoints) {
          for (const headers of credentials) {
            const r = yield* rawRequest(path, {
              method,
              headers: { ...headers, ...(body?.startsWith("{") ? { "content-type": "application/json" } : {}) },
              ...(body === undefined ? {} : { body })
            })
            assert.strictEqual(r.status, 401, `${method} ${path} with ${JSON.stringify(headers)}: ${r.body}`)
            assert.strictEqual(JSON.parse(r.body)._tag, "Unauthenticated")
          }
        }
        const viaQuery = yield* rawRequest(`/storage/files/${file.key}?access_token=wrong`)
        assert.strictEqual(viaQuery.status, 401)
        // nor does the right token in the query string
        assert.strictEqual((yield* rawRequest(`/storage/files/${file.key}?access_token=${tokens.alice}`)).status, 401)
        // Nothing was done: the part, the completion and the abort never happened.
        assert.deepStrictEqual((yield* listParts("alice", ticket.claimId)).json, { parts: [] })
        assert.strictEqual((yield* putPart("alice", ticket.claimId, 1, bytes(10))).status, 200)
        assert.strictEqual((yield* complete("alice", ticket.claimId)).status, 200)
      }))

    it.effect("a part body longer than the part size is cut off early with a 413, never buffered or stored", () =>
      Effect.gen(function*() {
        const ticket = (yield* init("alice", { filename: "big.bin", size: 3 * partSize })).json
        const before = process.memoryUsage().rss
        for (let i = 0; i < 5; i++) {
          const r = yield* endlessPart(ticket.claimId, 1)
          assert.match(r.head, /^HTTP\/1\.1 413 /, r.head)
          assert.strictEqual(JSON.parse(r.body)._tag, "PartTooLarge")
          // Answered long before 256 MiB went out: only what the socket buffers held.
          assert.isBelow(r.sent, 32 * 1024 * 1024, `${r.sent} bytes sent before the answer`)
        }
        assert.isBelow(process.memoryUsage().rss - before, 64 * 1024 * 1024, "memory grew")
        // A declared length over the part size is refused before the body is read.
        const declared = yield* Effect.flatMap(port, (p) =>
          Effect.async<string>((resume) => {
            const socket = net.connect(p, "127.0.0.1", () =>
              socket.write(
                `PUT /storage/uploads/${ticket.claimId}/parts/2 HTTP/1.1\r\nHost: x\r\n` +
                  `Authorization: Bearer ${tokens.alice}\r\nContent-Length: ${1024 ** 3}\r\n\r\nabc`
              ))
            let answer = ""
            socket.on("data", (d) => {
              answer += d
              socket.destroy()
              resume(Effect.succeed(answer))
            })
            socket.on("error", () => {})
          }))
        assert.match(declared, /^HTTP\/1\.1 413 /)
        // Nothing was recorded or left behind.
        assert.deepStrictEqual((yield* listParts("alice", ticket.claimId)).json, { parts: [] })
        yield* eventually(Effect.sync(() => tempFiles().length === 0), { what: "temporary files to go" })
        assert.deepStrictEqual((yield* sessionFiles(ticket.claimId)).filter((f) => f.endsWith(".part")), [])
        // The connection-level refusals left the server fine.
        assert.strictEqual((yield* putPart("alice", ticket.claimId, 1, bytes(partSize))).status, 200)
        yield* abort("alice", ticket.claimId)
      }))

    it.effect("a body that stops mid-way records no part and leaves no file; a retry then succeeds", () =>
      Effect.gen(function*() {
        const data = bytes(2 * partSize)
        const ticket = (yield* init("alice", { filename: "cut.bin", size: data.length })).json
        for (const sent of [0, 1, partSize / 2, partSize - 1]) yield* truncatedPart(ticket.claimId, 1, partSize, sent)
        yield* Effect.sleep("200 millis")
        assert.deepStrictEqual((yield* listParts("alice", ticket.claimId)).json, { parts: [] })
        yield* eventually(Effect.sync(() => tempFiles().length === 0), { what: "temporary files to go" })
        assert.deepStrictEqual((yield* sessionFiles(ticket.claimId)).filter((f) => f.endsWith(".part")), [])
        yield* putPart("alice", ticket.claimId, 1, data.subarray(0, partSize))
        yield* putPart("alice", ticket.claimId, 2, data.subarray(partSize))
        assert.strictEqual((yield* complete("alice", ticket.claimId)).status, 200)
        const file = yield* raw("alice", HttpClientRequest.get(`/storage/files/${ticket.key}`))
        assert.strictEqual(sha256(file.body), sha256(data))
      }))

    it.effect("content types a browser would run are served as application/octet-stream, nosniff, sandboxed", () =>
      Effect.gen(function*() {
        const dangerous: Array<[string, string | undefined]> = [
          ["page.html", "text/html"],
          ["page.html", "TEXT/HTML; charset=utf-8"],
          ["page.html", undefined],
          ["page.htm", "application/octet-stream; x=text/html"],
          ["page.xhtml", "application/xhtml+xml"],
          ["image.svg", "image/svg+xml"],
          ["image.svg", "image/SVG+xml;charset=utf-8"],
          ["image.svg", undefined],
          ["script.js", "application/javascript"],
          ["script.mjs", "text/javascript"],
          ["script.js", "application/x-javascript"],
          ["data.xml", "text/xml"],
          ["data.xml", "application/xml"],
          ["style.css", "text/css"],
          ["notes.txt", "text/plain"],
          ["movie.swf", "application/x-shockwave-flash"],
          ["stream.bin", "multipart/x-mixed-replace; boundary=x"],
          ["page.png", "text/html"],
          ["x.png", "image/png\r\nX-Injected: 1"],
          ["x.png", "image/png<script>"],
          ["evil.HTML", undefined],
          ["evil", "text/html"]
        ]
        for (const isPublic of [false, true]) {
          for (const [filename, contentType] of dangerous) {
            const body = new TextEncoder().encode("<html><script>alert(document.domain)</script></html>")
            const opened = yield* init("alice", {
              filename,
              size: body.length,
              public: isPublic,
              ...(contentType === undefined ? {} : { contentType })
            })
            assert.strictEqual(opened.status, 201, `${filename} ${contentType}: ${opened.text}`)
            assert.strictEqual((yield* putPart("alice", opened.json.claimId, 1, body)).status, 200)
            const done = yield* complete("alice", opened.json.claimId)
            assert.strictEqual(done.status, 200)
            const r = yield* rawRequest(`/storage/files/${opened.json.key}`, {
              headers: { authorization: `Bearer ${tokens.alice}` }
            })
            const what = `${filename} ${JSON.stringify(contentType)} (public ${isPublic})`
            assert.strictEqual(r.status, 200, what)
            const served = r.headers["content-type"] ?? ""
            assert.notMatch(served, /html|xml|javascript|svg|css|text\/|flash|multipart/i, what)
            assert.include(["application/octet-stream", "image/png"], served, what)
            assert.strictEqual(r.headers["x-content-type-options"], "nosniff", what)
            assert.strictEqual(r.headers["content-security-policy"], "default-src 'none'; sandbox", what)
            assert.isUndefined(r.headers["x-injected"], what)
            if (served === "application/octet-stream") {
              assert.match(r.headers["content-disposition"]!, /^attachment;/, what)
            }
          }
        }
      }))

    it.effect("oversized headers are refused by Node (431); the server goes on serving", () =>
      Effect.gen(function*() {
        // Over Node's 16 KiB limit: 431, or a reset when the server closes
        // while the client is still writing; never served.
        const statuses: Array<number> = []
        for (const kib of [17, 17, 20, 64]) {
          const huge = yield* rawRequest("/storage/uploads/x/parts", {
            headers: { authorization: `Bearer ${tokens.alice}`, "x-padding": "a".repeat(kib * 1024) }
          }).pipe(Effect.catchAllDefect(() => Effect.succeed({ status: 0, headers: {}, body: "" })))
          assert.include([0, 431], huge.status)
          statuses.push(huge.status)
        }
        assert.include(statuses, 431)
        const many: Record<string, string> = {}
        for (let i = 0; i < 3000; i++) many[`x-h${i}`] = "v"
        const r = yield* rawRequest("/storage/uploads/x/parts", { headers: many }).pipe(
          Effect.catchAllDefect(() => Effect.succeed({ status: 0, headers: {}, body: "" }))
        )
        assert.include([0, 400, 401, 431], r.status)
        const ok = yield* call("alice", HttpClientRequest.get("/storage/uploads/nope/parts"))
        assert.strictEqual(ok.status, 403)
      }))
  },
  ["sqlite"],
  { liveClock: true }
)
