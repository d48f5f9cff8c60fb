/**
 * The upload page driven in headless Chromium (Debian's, through
 * playwright-core): a multi-part upload reaches 100% and is downloadable;
 * an interrupted upload resumes from the parts already recorded.
 */
import { createHash } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Browser, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { chromiumAvailable, chromiumPath, launchChromium } from "../support/chromium.js"
import { type ExampleServer, startExampleServer } from "./exampleServer.js"

const available = chromiumAvailable
const ci = inject("servers").ci

const partSize = 64 * 1024
let server: ExampleServer
let browser: Browser
let files: string

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

const makeFile = (name: string, size: number) => {
  const data = new Uint8Array(size).map((_, i) => (i * 7 + size) % 256)
  const path = join(files, name)
  writeFileSync(path, data)
  return { path, data }
}

const openPage = async (): Promise<Page> => {
  const page = await browser.newPage()
  await page.goto(server.url + "/")
  await page.fill("#token", "tokenA")
  await page.dispatchEvent("#token", "change")
  return page
}

const uploadRow = (page: Page, name: string) => page.locator(`.upload[data-name="${name}"]`).first()

describe.runIf(available || ci)("the upload page in Chromium", () => {
  beforeAll(async () => {
    if (!available) throw new Error(`no Chromium at ${chromiumPath} and CI=true forbids skipping`)
    files = mkdtempSync(join(tmpdir(), "effect-storage-browser-"))
    server = await startExampleServer({ STORAGE_PART_SIZE: "64KiB" })
    browser = await launchChromium()
  }, 90_000)

  afterAll(async () => {
    await browser?.close()
    await server?.stop()
    if (files !== undefined) rmSync(files, { recursive: true, force: true })
  })

  it("uploads a multi-part file to 100% and the object downloads byte-identical", async () => {
    const { data, path } = makeFile("holiday.jpg", partSize * 4 + 999)
    const page = await openPage()
    await page.setInputFiles("#files", path)
    await page.click("#upload")
    const row = uploadRow(page, "holiday.jpg")
    await row.locator(".status[data-state=\"done\"]").waitFor({ timeout: 30_000 })
    expect(await row.locator(".progress").evaluate((el) => (el as HTMLProgressElement).value)).toBe(100)
    const key = await row.getAttribute("data-key")
    expect(key).toMatch(/^priv\/.+\.jpg$/)

    const href = await row.locator("a.download").getAttribute("href")
    // a signed link, with no token in it
    expect(href).toMatch(/\?expires=\d+&signature=[\w-]{43}$/)
    expect(href).not.toContain("token")
    const download = await fetch(new URL(href!, server.url))
    expect(download.status).toBe(200)
    expect(sha256(new Uint8Array(await download.arrayBuffer()))).toBe(sha256(data))
    await page.close()
  }, 60_000)

  it("resumes an interrupted upload, sending only the parts not yet recorded", async () => {
    const { data, path } = makeFile("video.mp4", partSize * 5 + 10)
    const page = await openPage()
    // the network drops part 4 the first time
    const sent: Array<number> = []
    let dropped = false
    await page.route("**/parts/*", async (route) => {
      const n = Number(route.request().url().split("/").pop())
      if (n === 4 && !dropped) {
        dropped = true
        return route.abort("connectionreset")
      }
      sent.push(n)
      return route.continue()
    })
    await page.setInputFiles("#files", path)
    await page.click("#upload")
    const first = uploadRow(page, "video.mp4")
    await first.locator(".status[data-state=\"error\"]").waitFor({ timeout: 30_000 })
    // what the server recorded before the failure
    const ticket = await page.evaluate(() =>
      JSON.parse(Object.entries(localStorage).find(([k]) => k.startsWith("effect-storage.ticket:"))![1])
    )
    const listed = await (await fetch(`${server.url}/storage/uploads/${ticket.claimId}/parts`, {
      headers: { authorization: "Bearer tokenA" }
    })).json()
    const recorded: Array<number> = listed.parts.map((p: { partNumber: number }) => p.partNumber)
    expect(recorded).not.toContain(4)
    expect(recorded.length).toBeGreaterThan(0)
    const before = sent.length

    // pick the same file again: the page lists the recorded parts and sends the rest
    await page.setInputFiles("#files", [])
    await page.setInputFiles("#files", path)
    await page.click("#upload")
    const second = uploadRow(page, "video.mp4")
    await second.locator(".status[data-state=\"done\"]").waitFor({ timeout: 30_000 })
    const resent = sent.slice(before).sort()
    expect(resent).toEqual([1, 2, 3, 4, 5, 6].filter((n) => !recorded.includes(n)))

    const key = await second.getAttribute("data-key")
    const download = await fetch(`${server.url}/storage/files/${key}`, { headers: { authorization: "Bearer tokenA" } })
    expect(sha256(new Uint8Array(await download.arrayBuffer()))).toBe(sha256(data))
    await page.close()
  }, 60_000)
})

if (!available && !ci) {
  describe("the upload page in Chromium", () => {
    it.skipIf(true)(`needs Chromium at ${chromiumPath} (apt-get install chromium)`, () => {})
  })
}
