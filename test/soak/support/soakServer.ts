/**
 * The example server (`examples/server.ts`) as a separate process, like
 * test/example/exampleServer.ts starts it, plus what the soak suites need:
 * `kill9` (SIGKILL, no cleanup), `restart` on the same data folder, database
 * and port, the process id (to read its memory) and whether it is alive.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { freePort } from "../../example/exampleServer.js"
import { tsxArgs } from "../../support/processes.js"

export interface SoakServerOptions {
  /** Extra environment (DATABASE_URL, STORAGE_*). Without DATABASE_URL: SQLite in the data folder. */
  readonly env?: Record<string, string>
  /** A name for the logs. */
  readonly name?: string
  /** Sees every chunk of every incarnation's output (the kept log is trimmed across restarts). */
  readonly onOutput?: (chunk: string) => void
  /**
   * Runs the compiled example (`build/example/server.mjs`, from
   * `buildExample`) with plain node instead of the sources through tsx:
   * it starts in a fraction of the time on a busy machine.
   */
  readonly compiled?: boolean
}

/** Compiles the example server (`scripts/build-example.mjs`) for `compiled` servers. */
export const buildExample = (): void => {
  execFileSync(process.execPath, ["scripts/build-example.mjs"], { stdio: "inherit" })
}

export class SoakServer {
  readonly dir: string
  readonly root: string
  readonly url: string
  private child: ChildProcess | undefined
  private output = ""
  /** Every incarnation's exit: [pid, code, signal]. */
  readonly exits: Array<readonly [number, number | null, NodeJS.Signals | null]> = []
  starts = 0
  startMillis: Array<number> = []

  private constructor(
    readonly port: number,
    readonly env: Record<string, string>,
    readonly name: string,
    private readonly onOutput?: (chunk: string) => void,
    private readonly compiled = false
  ) {
    this.dir = mkdtempSync(join(tmpdir(), "effect-storage-soak-"))
    this.root = join(this.dir, "objects")
    this.url = `http://127.0.0.1:${port}`
  }

  static async start(options: SoakServerOptions = {}): Promise<SoakServer> {
    const server = new SoakServer(
      await freePort(),
      options.env ?? {},
      options.name ?? "example server",
      options.onOutput,
      options.compiled
    )
    await server.launch()
    return server
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  /** Whether the current incarnation is running. */
  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  /** The current incarnation's log (and the tail of earlier ones). */
  log(): string {
    return this.output
  }

  /** The resident memory of the process, in bytes (Linux). */
  rss(): number {
    const pid = this.pid
    if (pid === undefined) return 0
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return match === null ? 0 : Number(match[1]) * 1024
  }

  /** Starts an incarnation and waits until /healthz answers. */
  async launch(): Promise<void> {
    if (this.alive) throw new Error(`${this.name} is already running`)
    const started = Date.now()
    // Keep the log bounded across many restarts.
    if (this.output.length > 200_000) this.output = this.output.slice(-100_000)
    this.output += `\n---- start #${++this.starts} ----\n`
    const child = spawn(
      process.execPath,
      this.compiled ? [resolve("build/example/server.mjs")] : tsxArgs("examples/server.ts"),
      {
        cwd: this.dir,
        env: {
          ...process.env,
          PORT: String(this.port),
          DATABASE_URL: `sqlite:${join(this.dir, "storage.db")}`,
          STORAGE_ROOT: this.root,
          STORAGE_TOKENS: "alice=tokenA,bob=tokenB",
          ...this.env
        },
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    this.child = child
    const seen = (d: Buffer) => {
      this.output += d
      this.onOutput?.(String(d))
    }
    child.stdout!.on("data", seen)
    child.stderr!.on("data", seen)
    child.once("exit", (code, signal) => this.exits.push([child.pid ?? -1, code, signal]))
    const deadline = Date.now() + 45_000
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${this.name} exited during start-up:\n${this.output.slice(-5000)}`)
      }
      try {
        const res = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) })
        await res.arrayBuffer()
        if (res.ok) {
          this.startMillis.push(Date.now() - started)
          return
        }
      } catch {
        // not listening (or not serving) yet
      }
      await sleep(50)
    }
    child.kill("SIGKILL")
    throw new Error(`${this.name} did not start within 45 s:\n${this.output.slice(-5000)}`)
  }

  /** SIGKILL: the process gets no chance to clean up. Resolves when it is gone. */
  async kill9(): Promise<void> {
    const child = this.child
    if (child === undefined || !this.alive) return
    const exited = new Promise((r) => child.once("exit", r))
    child.kill("SIGKILL")
    await exited
  }

  /** Kills (SIGKILL) and starts again on the same folder, database and port. */
  async restart(): Promise<void> {
    await this.kill9()
    await this.launch()
  }

  /** SIGTERM (then SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const child = this.child
    if (child === undefined || !this.alive) return
    const exited = new Promise((r) => child.once("exit", r))
    child.kill("SIGTERM")
    await Promise.race([exited, sleep(5000)])
    if (this.alive) await this.kill9()
  }

  /** Stops the server and removes its folder. */
  async dispose(): Promise<void> {
    await this.stop()
    if (process.env.SOAK_KEEP === "1") {
      writeFileSync(join(this.dir, "server.log"), this.output)
      console.log(`[soak] kept ${this.dir} (log in server.log)`)
    } else rmSync(this.dir, { recursive: true, force: true })
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
