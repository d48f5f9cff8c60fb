/**
 * Uppy with its unmodified `@uppy/aws-s3` plugin (Companion mode) in
 * headless Chromium, on the example server's direct-upload page: two files
 * (one small, one of three parts) go straight to Ceph RGW through
 * 127.0.0.1:7480 (the page's requests show every byte went there, and the
 * server's part endpoint counted none), then the same page on the embedded
 * default (filesystem backend), where the "presigned" URLs are the
 * server's own signed part endpoint. Both uploads are then adopted by a
 * document and download byte-identical.
 */
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Browser } from "playwright-core"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { chromiumAvailable, chromiumPath, launchChromium } from "../support/chromium.js"
import { type ExampleServer, freePort, startExampleServer } from "./exampleServer.js"

const available = chromiumAvailable
const ci = inject("servers").ci
const ceph = inject("servers").s3.ceph

const MiB = 1024 * 1024
const partSize = 5 * MiB

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

interface SentRequest {
  readonly origin: string
  readonly method: string
  readonly path: string
  readonly bytes: number
}

/** The metric's value in the server's Prometheus text (0 when absent). */
const metric = async (server: ExampleServer, name: string) => {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return line === undefined ? 0 : Number(line.split(" ").pop())
}

const uppySuite = (
  title: string,
  env: (origin: string) => Record<string, string>,
  storageOrigin: () => string | undefined
) =>
  describe.runIf(available || ci)(title, () => {
    let server: ExampleServer
    let browser: Browser
    let files: string

    beforeAll(async () => {
      if (!available) throw new Error(`no Chromium at ${chromiumPath} and CI=true forbids skipping`)
      files = mkdtempSync(join(tmpdir(), "effect-storage-uppy-"))
      const port = await freePort()
      server = await startExampleServer({
        PORT: String(port),
        STORAGE_PART_SIZE: "5MiB",
        ...env(`http://127.0.0.1:${port}`)
      })
      browser = await launchChromium()
    }, 90_000)

    afterAll(async () => {
      await browser?.close()
      await server?.stop()
      if (files !== undefined) rmSync(files, { recursive: true, force: true })
    })

    it(
      "uploads two files with @uppy/aws-s3, the bytes never through the app server unless it is the storage",
      async () => {
        const small = new Uint8Array(randomBytes(200 * 1024))
        const large = new Uint8Array(randomBytes(partSize * 2 + 12_345))
        writeFileSync(join(files, "notes.txt"), small)
        writeFileSync(join(files, "film.bin"), large)
        const bytesBefore = await metric(server, "storage_uploaded_bytes_total")

        const page = await browser.newPage()
        const sent: Array<SentRequest> = []
        page.on("request", (request) => {
          const url = new URL(request.url())
          const body = request.postDataBuffer()
          sent.push({ origin: url.origin, method: request.method(), path: url.pathname, bytes: body?.length ?? 0 })
        })
        await page.goto(`${server.url}/direct`)
        await page.setInputFiles("#files", [join(files, "notes.txt"), join(files, "film.bin")])
        await page.click("#upload")
        await page.locator("#status[data-state=\"finished\"]").waitFor({ timeout: 60_000 })
        const results = await page.evaluate(() => window.directUploads)
        expect(results.map((r) => [r.name, r.state]).sort()).toEqual([["film.bin", "done"], ["notes.txt", "done"]])
        const keyOf = (name: string) => results.find((r) => r.name === name)!.key!

        const storage = storageOrigin()
        const toApp = sent.filter((r) => r.origin === server.url)
        if (storage !== undefined) {
          // Every byte went to the storage: three part PUTs and one form POST there ...
          const toStorage = sent.filter((r) => r.origin === storage)
          expect(toStorage.filter((r) => r.method === "PUT")).toHaveLength(3)
          expect(toStorage.filter((r) => r.method === "POST")).toHaveLength(1)
          // ... and none to the app server, whose part endpoints counted nothing.
          expect(toApp.filter((r) => r.method === "PUT")).toEqual([])
          expect(Math.max(...toApp.map((r) => r.bytes))).toBeLessThan(4096)
          expect(await metric(server, "storage_uploaded_bytes_total")).toBe(bytesBefore)
        } else {
          // The embedded default: the same page sends the parts to the server's own signed URLs.
          const puts = toApp.filter((r) => r.method === "PUT")
          expect(puts.map((r) => r.path.split("/").slice(0, 4).join("/"))).toEqual(
            puts.map(() => "/storage/direct/parts")
          )
          expect(puts).toHaveLength(4)
          expect(await metric(server, "storage_uploaded_bytes_total") - bytesBefore).toBe(small.length + large.length)
        }

        // A document adopts both (the form upload is checked against the storage first).
        const auth = { authorization: "Bearer tokenA", "content-type": "application/json" }
        const created = await fetch(`${server.url}/documents`, {
          method: "POST",
          headers: auth,
          body: JSON.stringify({ title: "trip", files: [keyOf("notes.txt"), keyOf("film.bin")] })
        })
        expect(created.status, await created.clone().text()).toBe(201)
        for (const [name, data] of [["notes.txt", small], ["film.bin", large]] as const) {
          const download = await fetch(`${server.url}/storage/files/${keyOf(name)}`, { headers: auth })
          expect(download.status).toBe(200)
          expect(sha256(new Uint8Array(await download.arrayBuffer()))).toBe(sha256(data))
        }
        await page.close()
      },
      120_000
    )
  })

if (ceph === undefined) {
  describe("Uppy @uppy/aws-s3 straight to Ceph RGW", () => {
    it.skipIf(!ci)("needs Ceph RGW (scripts/s3/all.sh up)", () => {
      throw new Error("Ceph RGW is not reachable, and CI=true forbids skipping")
    })
  })
} else {
  const bucket = `uppy-${randomBytes(4).toString("hex")}`
  uppySuite(
    "Uppy @uppy/aws-s3 straight to Ceph RGW",
    (origin) => ({
      STORAGE_BACKEND: "s3",
      S3_ENDPOINT: ceph.endpoint,
      S3_BUCKET: bucket,
      S3_REGION: "us-east-1",
      S3_ACCESS_KEY_ID: ceph.accessKeyId,
      S3_SECRET_ACCESS_KEY: ceph.secretAccessKey,
      S3_FORCE_PATH_STYLE: "true",
      S3_CREATE_BUCKET: "true",
      // the bucket's CORS rule for the page's own origin, applied when the server starts
      S3_CORS_ORIGINS: origin
    }),
    () => new URL(ceph.endpoint).origin
  )
}

uppySuite("Uppy @uppy/aws-s3 on the embedded default (filesystem backend)", () => ({}), () => undefined)

if (!available && !ci) {
  describe("Uppy @uppy/aws-s3 in Chromium", () => {
    it.skipIf(true)(`needs Chromium at ${chromiumPath} (apt-get install chromium)`, () => {})
  })
}
