/**
 * Uppy (core, dashboard and tus plugin, bundled locally by
 * scripts/build-uppy.mjs) in headless Chromium, on the example server's
 * `/uppy` page: two files uploaded over tus download byte-identical. On
 * SQLite + the filesystem backend and on PostgreSQL + Ceph RGW.
 */
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Browser } from "playwright-core"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { chromiumAvailable, chromiumPath, launchChromium } from "../support/chromium.js"
import { createDatabase } from "../support/databases.js"
import { startExampleServer } from "./exampleServer.js"

const available = chromiumAvailable
const servers = inject("servers")

let browser: Browser
let files: string
const cleanups: Array<() => Promise<void>> = []

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

const uploadTwoFiles = async (env: Record<string, string>) => {
  const server = await startExampleServer(env)
  cleanups.push(server.stop)
  const one = { name: "scan.pdf", data: randomBytes(6 * 1024 * 1024 + 17) }
  const two = { name: "photo.jpg", data: randomBytes(300 * 1024 + 5) }
  for (const file of [one, two]) writeFileSync(join(files, file.name), file.data)

  const page = await browser.newPage()
  try {
    await page.goto(`${server.url}/uppy`)
    await page.fill("#token", "tokenA")
    await page.dispatchEvent("#token", "change")
    await page.locator(".uppy-Dashboard").waitFor({ timeout: 30_000 })
    await page.setInputFiles(".uppy-Dashboard-input >> nth=0", [join(files, one.name), join(files, two.name)])
    await page.locator(".uppy-StatusBar-actionBtn--upload").click()
    await page.locator("#done li").nth(1).waitFor({ timeout: 60_000 })

    for (const file of [one, two]) {
      const item = page.locator(`#done li[data-name="${file.name}"]`)
      const key = await item.getAttribute("data-key")
      expect(key).toMatch(new RegExp(`^priv/.+\\${file.name.slice(file.name.lastIndexOf("."))}$`))
      // through the API with the token, and through the page's signed link without one
      const direct = await fetch(`${server.url}/storage/files/${key}`, { headers: { authorization: "Bearer tokenA" } })
      expect(direct.status).toBe(200)
      expect(sha256(new Uint8Array(await direct.arrayBuffer()))).toBe(sha256(file.data))
      const href = await item.locator("a.download").getAttribute("href")
      const signed = await fetch(new URL(href!, server.url))
      expect(sha256(new Uint8Array(await signed.arrayBuffer()))).toBe(sha256(file.data))
    }
  } finally {
    await page.close()
  }
}

describe.runIf(available || servers.ci)("Uppy over tus in Chromium", () => {
  beforeAll(async () => {
    if (!available) throw new Error(`no Chromium at ${chromiumPath} and CI=true forbids skipping`)
    // Bundled here as `npm start` bundles it: from node_modules, no CDN.
    execFileSync(process.execPath, ["scripts/build-uppy.mjs"], { stdio: "inherit" })
    files = mkdtempSync(join(tmpdir(), "effect-storage-uppy-"))
    browser = await launchChromium()
  }, 90_000)

  afterAll(async () => {
    await browser?.close()
    for (const cleanup of cleanups) await cleanup()
    if (files !== undefined) rmSync(files, { recursive: true, force: true })
  })

  it("SQLite + filesystem: two files through the dashboard download byte-identical", async () => {
    await uploadTwoFiles({})
  }, 120_000)

  it("PostgreSQL + Ceph RGW: two files through the dashboard download byte-identical", async () => {
    const ceph = servers.s3.ceph
    if (servers.pg === undefined || ceph === undefined) {
      if (servers.ci) throw new Error("PostgreSQL and Ceph RGW are needed and CI=true forbids skipping")
      return
    }
    const database = await createDatabase("pg", servers.pg)
    cleanups.push(database.drop)
    await uploadTwoFiles({
      DATABASE_URL: database.url,
      STORAGE_BACKEND: "s3",
      S3_ENDPOINT: ceph.endpoint,
      S3_BUCKET: `uppy-${randomBytes(4).toString("hex")}`,
      S3_REGION: "us-east-1",
      S3_ACCESS_KEY_ID: ceph.accessKeyId,
      S3_SECRET_ACCESS_KEY: ceph.secretAccessKey,
      S3_FORCE_PATH_STYLE: "true",
      S3_CREATE_BUCKET: "true",
      STORAGE_PART_SIZE: "5MiB"
    })
  }, 120_000)
})

if (!available && !servers.ci) {
  describe("Uppy over tus in Chromium", () => {
    it.skipIf(true)(`needs Chromium at ${chromiumPath} (apt-get install chromium)`, () => {})
  })
}
