/**
 * Starts the example server (`examples/server.ts`) as a separate process on
 * a free port, over a temp folder, and stops it afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { tsxArgs } from "../support/processes.js"

export interface ExampleServer {
  readonly url: string
  readonly dir: string
  readonly root: string
  readonly log: () => string
  readonly stop: () => Promise<void>
}

export const freePort = () =>
  new Promise<number>((ok, fail) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() =>
        typeof address === "object" && address !== null ? ok(address.port) : fail(new Error("no port"))
      )
    })
  })

export const startExampleServer = async (env: Record<string, string> = {}): Promise<ExampleServer> => {
  const dir = mkdtempSync(join(tmpdir(), "effect-storage-example-"))
  // A port given in `env` (known before the start, e.g. for a CORS origin) is used as is.
  const port = env.PORT === undefined ? await freePort() : Number(env.PORT)
  const root = join(dir, "objects")
  let output = ""
  // One process (no tsx wrapper), so a kill reaches the server itself.
  const child: ChildProcess = spawn(
    process.execPath,
    tsxArgs("examples/server.ts"),
    {
      cwd: dir,
      env: {
        ...process.env,
        PORT: String(port),
        DATABASE_URL: `sqlite:${join(dir, "storage.db")}`,
        STORAGE_ROOT: root,
        STORAGE_TOKENS: "alice=tokenA,bob=tokenB",
        ...env
      },
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 45_000
  let up = false
  while (!up && Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`example server exited: ${output}`)
    try {
      up = (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })).ok
    } catch {
      // not listening yet
    }
    if (!up) await new Promise((r) => setTimeout(r, 100))
  }
  if (!up) {
    child.kill("SIGKILL")
    throw new Error(`example server did not start within 45 s: ${output}`)
  }
  return {
    url,
    dir,
    root,
    log: () => output,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r))
        child.kill("SIGTERM")
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
        if (child.exitCode === null) child.kill("SIGKILL")
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** Polls until `check` holds (real time). */
export const waitFor = async (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}
