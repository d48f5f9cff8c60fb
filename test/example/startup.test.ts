/**
 * A request that reaches the example server while it starts (a load
 * balancer sends it as soon as the port accepts connections) is answered:
 * 503 `ServiceUnavailable` with `Retry-After` until the app's handler is
 * attached, never left unanswered. Before, the server listened before its
 * handler existed, and Node dropped such a request: its client waited until
 * its own timeout (the multi-server soak saw 30 s hangs after restarts).
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { tsxArgs } from "../support/processes.js"
import { freePort } from "./exampleServer.js"

type Answer = "refused" | "timeout" | number

const get = (port: number, path: string, token: string) =>
  new Promise<Answer>((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
    })
    req.setTimeout(5000, () => {
      req.destroy()
      resolve("timeout")
    })
    req.on("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED" ? "refused" : "timeout"))
  })

describe("the example server starting up", () => {
  it("answers every request it accepts, 503 until it is ready", async () => {
    const dir = mkdtempSync(join(tmpdir(), "effect-storage-startup-"))
    const port = await freePort()
    const child = spawn(process.execPath, tsxArgs("examples/server.ts"), {
      cwd: dir,
      env: {
        ...process.env,
        PORT: String(port),
        DATABASE_URL: `sqlite:${join(dir, "storage.db")}`,
        STORAGE_ROOT: join(dir, "objects"),
        STORAGE_TOKENS: "alice=tokenA"
      },
      stdio: "ignore"
    })
    try {
      // A request every few milliseconds from the spawn on, until one is served.
      const answers: Array<Promise<Answer>> = []
      const deadline = Date.now() + 45_000
      let served = false
      while (!served && Date.now() < deadline) {
        const answer = get(port, "/storage/uploads/none/parts", "tokenA")
        answers.push(answer)
        void answer.then((a) => (served ||= a === 403))
        await new Promise((r) => setTimeout(r, 3))
      }
      const all = await Promise.all(answers)
      const counts: Record<string, number> = {}
      for (const a of all) counts[String(a)] = (counts[String(a)] ?? 0) + 1
      expect(served, JSON.stringify(counts)).toBe(true)
      // Only refusals (not listening yet), 503s (listening, not ready) and real answers.
      expect(Object.keys(counts).filter((k) => !["refused", "503", "403"].includes(k)), JSON.stringify(counts))
        .toEqual([])
    } finally {
      child.kill("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
