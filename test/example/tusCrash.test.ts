/**
 * Acknowledged bytes of a resumable upload survive kill -9 of the server:
 * the example server runs as its own process, takes part of an upload
 * over tus, is killed (SIGKILL) in the middle of a request, and started
 * again over the same database and storage; HEAD answers at least every
 * acknowledged byte and tus-js-client finishes the upload from there.
 * On SQLite + the filesystem backend and on PostgreSQL + Ceph RGW.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tus from "tus-js-client"
import { afterAll, describe, expect, inject, it } from "vitest"
import { createDatabase } from "../support/databases.js"
import { tsxArgs } from "../support/processes.js"
import { freePort } from "./exampleServer.js"

const MiB = 1024 * 1024
const auth = { Authorization: "Bearer tokenA" }

interface Server {
  readonly url: string
  readonly kill: () => Promise<void>
}

const start = async (env: Record<string, string>, port: number, dir: string): Promise<Server> => {
  let output = ""
  const child: ChildProcess = spawn(process.execPath, tsxArgs("examples/server.ts"), {
    cwd: dir,
    env: { ...process.env, PORT: String(port), STORAGE_TOKENS: "alice=tokenA", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 45_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`example server exited: ${output}`)
    const up = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)
    if (up) break
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url,
    kill: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((r) => child.once("exit", r))
      child.kill("SIGKILL")
      await exited
    }
  }
}

const tusHeaders = { ...auth, "Tus-Resumable": "1.0.0" }

const patch = (url: string, offset: number, body: Buffer) =>
  fetch(url, {
    method: "PATCH",
    headers: { ...tusHeaders, "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
    body: new Blob([Uint8Array.from(body)])
  })

/** Sends a PATCH whose body stops half-way: the request is in flight until the server dies. */
const stalledPatch = (url: string, offset: number, body: Uint8Array) =>
  new Promise<void>((resolve) => {
    const req = request(url, {
      method: "PATCH",
      headers: {
        ...tusHeaders,
        "Upload-Offset": String(offset),
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": String(body.length)
      }
    })
    req.on("error", () => {})
    req.write(body.subarray(0, body.length >> 1), () => setTimeout(resolve, 300))
  })

const crashAndResume = async (env: Record<string, string>, dir: string) => {
  const port = await freePort()
  const data = randomBytes(11 * MiB + 12_345)
  let server = await start(env, port, dir)
  try {
    const created = await fetch(`${server.url}/storage/tus/`, {
      method: "POST",
      headers: { ...tusHeaders, "Upload-Length": String(data.length), "Upload-Metadata": "filename Y3Jhc2guYmlu" }
    })
    expect(created.status).toBe(201)
    const uploadUrl = `${server.url}${created.headers.get("location")}`
    // Two requests cut off the part grid: a tail only, then a part and a tail.
    const cuts = [3 * MiB + 7, 6 * MiB + 1001]
    let acknowledged = 0
    for (const end of cuts) {
      const answer = await patch(uploadUrl, acknowledged, data.subarray(acknowledged, end))
      expect(answer.status).toBe(204)
      acknowledged = Number(answer.headers.get("upload-offset"))
      expect(acknowledged).toBe(end)
    }
    await stalledPatch(uploadUrl, acknowledged, data.subarray(acknowledged, acknowledged + 3 * MiB))
    await server.kill()

    server = await start(env, port, dir)
    const head = await fetch(uploadUrl, { method: "HEAD", headers: tusHeaders })
    expect(head.status).toBe(200)
    expect(Number(head.headers.get("upload-offset"))).toBe(acknowledged)

    const key = await new Promise<string>((resolve, reject) => {
      const upload = new tus.Upload(data, {
        uploadUrl,
        chunkSize: 2 * MiB + 3,
        retryDelays: null,
        headers: auth,
        onSuccess: ({ lastResponse }) => resolve(lastResponse.getHeader("Storage-Key") ?? ""),
        onError: reject
      })
      upload.start()
    })
    const file = await fetch(`${server.url}/storage/files/${key}`, { headers: auth })
    expect(file.status).toBe(200)
    const bytes = new Uint8Array(await file.arrayBuffer())
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"))
  } finally {
    await server.kill()
  }
}

const dirs: Array<string> = []
const drops: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const drop of drops) await drop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const servers = inject("servers")

describe("tus uploads survive kill -9 of the server", () => {
  it("SQLite + filesystem", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tus-crash-"))
    dirs.push(dir)
    await crashAndResume({ DATABASE_URL: `sqlite:${join(dir, "storage.db")}`, STORAGE_ROOT: join(dir, "objects") }, dir)
  }, 180_000)

  it.skipIf(!servers.ci && (servers.pg === undefined || servers.s3.ceph === undefined))(
    "PostgreSQL + Ceph RGW",
    async () => {
      const ceph = servers.s3.ceph
      if (servers.pg === undefined || ceph === undefined) throw new Error("PostgreSQL and Ceph RGW are needed")
      const dir = mkdtempSync(join(tmpdir(), "tus-crash-"))
      dirs.push(dir)
      const database = await createDatabase("pg", servers.pg)
      drops.push(database.drop)
      await crashAndResume({
        DATABASE_URL: database.url,
        STORAGE_BACKEND: "s3",
        S3_ENDPOINT: ceph.endpoint,
        S3_BUCKET: `tus-crash-${randomBytes(4).toString("hex")}`,
        S3_REGION: "us-east-1",
        S3_ACCESS_KEY_ID: ceph.accessKeyId,
        S3_SECRET_ACCESS_KEY: ceph.secretAccessKey,
        S3_FORCE_PATH_STYLE: "true",
        S3_CREATE_BUCKET: "true",
        STORAGE_PART_SIZE: "5MiB"
      }, dir)
    },
    180_000
  )
})
