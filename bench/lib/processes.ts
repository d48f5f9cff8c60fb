/** Child processes of the benchmarks, run with tsx. */
import { type ChildProcess, fork, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { repoDir, sleep } from "./common.js"

/** Forks a TypeScript module with an IPC channel. */
export const forkTs = (
  module: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly execArgv?: ReadonlyArray<string> } = {}
): ChildProcess =>
  fork(module, [...args], {
    cwd: repoDir,
    execArgv: ["--import", "tsx", ...(options.execArgv ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })

/** Spawns a JavaScript module with plain node (no tsx). */
export const spawnNode = (
  module: string,
  args: ReadonlyArray<string>,
  options: {
    readonly env?: NodeJS.ProcessEnv
    readonly execArgv?: ReadonlyArray<string>
    readonly stdio?: "inherit" | "ignore" | "pipe" | number
  } = {}
): ChildProcess =>
  spawn(process.execPath, [...(options.execArgv ?? []), module, ...args], {
    cwd: repoDir,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", options.stdio ?? "inherit", options.stdio ?? "inherit"]
  })

/** Spawns a TypeScript module (no IPC) through tsx; output as `stdio` says. */
export const spawnTs = (
  module: string,
  args: ReadonlyArray<string>,
  options: Parameters<typeof spawnNode>[2] = {}
): ChildProcess => spawnNode(module, args, { ...options, execArgv: ["--import", "tsx", ...(options.execArgv ?? [])] })

/** Waits for the process to exit; kills it (SIGKILL) after `timeoutMs`. */
export const waitExit = (child: ChildProcess, timeoutMs = 30_000): Promise<number | null> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode)
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })

/** Stops a process we started: SIGTERM, then SIGKILL after `graceMs`. */
export const stopProcess = async (child: ChildProcess, graceMs = 5_000): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill("SIGTERM")
  await waitExit(child, graceMs)
}

/** Polls an HTTP URL until it answers 200. */
export const waitForHttp = async (url: string, timeoutMs = 60_000, child?: ChildProcess): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`the process for ${url} exited (${child.exitCode ?? child.signalCode})`)
    }
    try {
      // A connection taken while the server starts may never be answered: try again.
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) })
      await response.arrayBuffer()
      if (response.ok) return
    } catch {
      // not yet
    }
    await sleep(100)
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`)
}

/** Peak (VmHWM) and current (VmRSS) resident set of a process, in bytes. */
export const memoryOf = (pid: number): { readonly hwm: number; readonly rss: number } | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN)
    return { hwm: kb("VmHWM") * 1024, rss: kb("VmRSS") * 1024 }
  } catch {
    return undefined
  }
}

/** A process's CPU time (user + system) in seconds, from /proc (Linux; ticks of 10 ms). */
export const cpuSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}
