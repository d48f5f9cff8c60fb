import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ExampleServer, startExampleServer, waitFor } from "./exampleServer.js"

const partSize = 64 * 1024
let server: ExampleServer

beforeAll(async () => {
  server = await startExampleServer({
    STORAGE_PART_SIZE: "64KiB",
    STORAGE_DELETE_INTERVAL: "1s",
    STORAGE_SWEEP_INTERVAL: "1s",
    STORAGE_CLAIM_TTL: "3s"
  })
}, 60_000)

afterAll(async () => {
  await server?.stop()
})

const as = (token: string) => ({ authorization: `Bearer ${token}` })

const json = async (method: string, path: string, token: string, body?: unknown) => {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...as(token), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? null : JSON.stringify(body)
  })
  const text = await res.text()
  return { status: res.status, body: text === "" ? undefined : JSON.parse(text) }
}

const upload = async (token: string, name: string, data: Uint8Array) => {
  const ticket = (await json("POST", "/storage/uploads", token, { filename: name, size: data.length })).body
  for (let n = 1; n <= ticket.partCount; n++) {
    const res = await fetch(`${server.url}/storage/uploads/${ticket.claimId}/parts/${n}`, {
      method: "PUT",
      headers: as(token),
      body: Buffer.from(data.subarray((n - 1) * partSize, n * partSize))
    })
    expect(res.status).toBe(200)
  }
  const done = await json("POST", `/storage/uploads/${ticket.claimId}/complete`, token)
  expect(done.status).toBe(200)
  return ticket as { claimId: string; key: string; partCount: number }
}

const onDisk = (key: string) => existsSync(join(server.root, key))

describe("the example server", () => {
  it(
    "adopts an upload into a document, serves it to the owner only, and deletes it from disk with the document",
    async () => {
      const data = new Uint8Array(150_000).map((_, i) => i % 251)
      const { key } = await upload("tokenA", "photo.jpg", data)
      expect(onDisk(key)).toBe(true)

      const created = await json("POST", "/documents", "tokenA", { title: "Trip", files: [key] })
      expect(created.status).toBe(201)
      expect(created.body.files).toEqual([key])
      expect((await json("GET", `/documents/${created.body.id}`, "tokenA")).body.title).toBe("Trip")
      expect((await json("GET", `/documents/${created.body.id}`, "tokenB")).status).toBe(404)

      // the document's owner may read the adopted file; nobody else
      const mine = await fetch(`${server.url}/storage/files/${key}`, { headers: as("tokenA") })
      expect(mine.status).toBe(200)
      expect(new Uint8Array(await mine.arrayBuffer())).toEqual(data)
      expect((await fetch(`${server.url}/storage/files/${key}`, { headers: as("tokenB") })).status).toBe(403)

      // an upload can be adopted only once
      const twice = await json("POST", "/documents", "tokenA", { title: "Copy", files: [key] })
      expect([twice.status, twice.body._tag]).toEqual([422, "ClaimNotFound"])

      expect((await json("DELETE", `/documents/${created.body.id}`, "tokenA")).status).toBe(204)
      await waitFor(() => !onDisk(key), "the deleted document's file to leave the disk")
    },
    60_000
  )

  it("replacing a document's file deletes the old one and keeps the new one", async () => {
    const first = await upload("tokenA", "v1.pdf", new Uint8Array(1000))
    const second = await upload("tokenA", "v2.pdf", new Uint8Array(2000))
    const doc = (await json("POST", "/documents", "tokenA", { title: "Spec", files: [first.key] })).body
    const updated = await json("PUT", `/documents/${doc.id}`, "tokenA", { title: "Spec v2", files: [second.key] })
    expect(updated.status).toBe(200)
    await waitFor(() => !onDisk(first.key), "the replaced file to leave the disk")
    expect(onDisk(second.key)).toBe(true)
    // someone else's upload cannot be attached
    const bobs = await upload("tokenB", "b.pdf", new Uint8Array(10))
    const stolen = await json("PUT", `/documents/${doc.id}`, "tokenA", { title: "x", files: [second.key, bobs.key] })
    expect(stolen.status).toBe(422)
    expect((await json("GET", `/documents/${doc.id}`, "tokenA")).body.files).toEqual([second.key])
  }, 60_000)

  it("an abandoned upload is swept and its multipart session removed from disk", async () => {
    const ticket = (await json("POST", "/storage/uploads", "tokenB", { filename: "big.bin", size: 3 * partSize })).body
    await fetch(`${server.url}/storage/uploads/${ticket.claimId}/parts/1`, {
      method: "PUT",
      headers: as("tokenB"),
      body: Buffer.alloc(partSize)
    })
    const sessions = () => readdirSync(join(server.root, ".multipart")).length
    expect(sessions()).toBeGreaterThan(0)
    // TTL 3 s + one sweep interval of grace, then the worker's next run
    await waitFor(() => sessions() === 0, "the abandoned session to be removed", 30_000)
    const listed = await json("GET", `/storage/uploads/${ticket.claimId}/parts`, "tokenB")
    expect(listed.status).toBe(403)
  }, 60_000)

  it("serves the upload page, the API docs, the OpenAPI document and Prometheus metrics", async () => {
    const page = await fetch(server.url + "/")
    expect(page.headers.get("content-type")).toContain("text/html")
    expect(await page.text()).toContain("id=\"files\"")
    expect((await fetch(server.url + "/docs")).status).toBe(200)
    const openapi = await (await fetch(server.url + "/openapi.json")).json()
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining(["/storage/uploads", "/storage/uploads/{claimId}/parts/{partNumber}", "/documents"])
    )
    const metrics = await (await fetch(server.url + "/metrics")).text()
    expect(metrics).toMatch(/^# TYPE storage_uploads_started_total counter$/m)
    expect(metrics).toMatch(/^storage_uploads_started_total \d+/m)
    expect(metrics).toMatch(/^storage_delete_queue_depth \d+/m)
  }, 30_000)
})
