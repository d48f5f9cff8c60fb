/**
 * Shared pieces of the benchmarks: command-line flags, statistics, tables,
 * machine and version facts, and the RESULTS.md writer.
 */
import { execFileSync } from "node:child_process"
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export const benchDir = dirname(dirname(fileURLToPath(import.meta.url)))
export const repoDir = dirname(benchDir)
export const resultsFile = join(benchDir, "RESULTS.md")

// ---- flags ----

export interface Flags {
  /** Smaller sizes, for development: `--quick` or `BENCH_QUICK=1`. */
  readonly quick: boolean
  /** Repetitions of each side: `--runs=N` or `BENCH_RUNS` (default 3). */
  readonly runs: number
  /** Don't append to RESULTS.md: `--no-record`. */
  readonly record: boolean
  /** Every other `--name=value` flag. */
  readonly options: ReadonlyMap<string, string>
}

export const parseFlags = (argv: ReadonlyArray<string> = process.argv.slice(2)): Flags => {
  const options = new Map<string, string>()
  for (const arg of argv) {
    const match = /^--([^=]+)(?:=(.*))?$/.exec(arg)
    if (match !== null) options.set(match[1]!, match[2] ?? "true")
  }
  const quick = options.has("quick") || process.env.BENCH_QUICK === "1"
  const runsText = options.get("runs") ?? process.env.BENCH_RUNS
  const runs = runsText === undefined ? 3 : Math.max(1, Number.parseInt(runsText, 10) || 3)
  return { quick, runs, record: !options.has("no-record"), options }
}

// ---- statistics ----

export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const spread = (values: ReadonlyArray<number>): Spread => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
  n: values.length
})

/** Per-run ratios a[i] / b[i] of paired runs (same repetition), summarised. */
export const pairedRatio = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): Spread =>
  spread(a.slice(0, Math.min(a.length, b.length)).map((x, i) => x / b[i]!))

// ---- formatting ----

export const fmt = (value: number, digits = 2): string => {
  if (!Number.isFinite(value)) return "n/a"
  const abs = Math.abs(value)
  const d = abs >= 1000 ? 0 : abs >= 100 ? Math.min(digits, 1) : digits
  return value.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })
}

/** `median (min–max)`. */
export const fmtSpread = (s: Spread, digits = 2, unit = ""): string =>
  `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`

/** `1.23x (1.10–1.40)`. */
export const fmtRatio = (s: Spread): string => `${fmt(s.median, 2)}x (${fmt(s.min, 2)}–${fmt(s.max, 2)})`

export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const line = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n")
}

export const mib = 1024 * 1024

// ---- machine and versions ----

export const machine = (): string => {
  const cpus = os.cpus()
  const model = cpus[0]?.model.trim() ?? "unknown CPU"
  return `${cpus.length} cores (${model}), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB memory, ` +
    `Node ${process.version}, ${os.type()} ${os.release()}`
}

export const packageVersion = (name: string): string => {
  try {
    const pkg = JSON.parse(readFileSync(join(repoDir, "node_modules", name, "package.json"), "utf8")) as {
      version?: string
    }
    return pkg.version ?? "?"
  } catch {
    return "not installed"
  }
}

export const versions = (names: ReadonlyArray<string>): string =>
  names.map((name) => `${name} ${packageVersion(name)}`).join(", ")

/** Output of a command, or `undefined` when it is missing or fails. */
export const commandOutput = (command: string, args: ReadonlyArray<string>): string | undefined => {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 })
      .trim()
  } catch {
    return undefined
  }
}

/**
 * The commit the run measures, read when the run starts (a commit made while
 * it runs does not change what it measured), marked when the tree had
 * changes not committed (bench/RESULTS.md aside, which runs append to).
 */
export const gitRevision = (): string => {
  const rev = commandOutput("git", ["-C", repoDir, "rev-parse", "--short", "HEAD"]) ?? "unknown"
  const dirty = (commandOutput("git", ["-C", repoDir, "status", "--porcelain", "--untracked-files=no"]) ?? "")
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.endsWith("bench/RESULTS.md"))
  return dirty.length === 0 ? rev : `${rev} + uncommitted changes (${dirty.length} files): not a committed state`
}

/** `gitRevision()` as of the start of this run. */
export const revisionAtStart = gitRevision()

// ---- results ----

export interface Section {
  readonly benchmark: string
  readonly flags: Flags
  readonly versions: ReadonlyArray<string>
  readonly servers?: ReadonlyArray<string> | undefined
  readonly body: string
}

/** Prints the section and appends it, dated, to bench/RESULTS.md. */
export const record = (section: Section): void => {
  const now = new Date()
  const text = [
    `## ${section.benchmark}: ${now.toISOString().replace(/\.\d+Z$/, "Z")}${section.flags.quick ? " (quick)" : ""}`,
    "",
    `- Machine: ${machine()}`,
    `- Code: effect-storage ${revisionAtStart} (at the start of the run)`,
    `- Packages: ${versions(section.versions)}`,
    ...(section.servers === undefined || section.servers.length === 0
      ? []
      : [`- Servers: ${section.servers.join("; ")}`]),
    `- Command: \`npm run ${section.benchmark}${
      process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""
    }\``,
    "",
    section.body.trim(),
    "",
    ""
  ].join("\n")
  console.log(`\n${text}`)
  if (!section.flags.record) return
  if (!existsSync(resultsFile)) {
    writeFileSync(
      resultsFile,
      "# Benchmark results\n\nEach section is appended by one `npm run bench:*` run (see README.md in this folder).\n" +
        "Every figure is the median of the runs, with the spread (min–max) in parentheses.\n\n"
    )
  }
  appendFileSync(resultsFile, text)
  console.log(`(appended to ${resultsFile})`)
}

// ---- timing ----

/** Monotonic milliseconds, comparable across processes on the same machine (CLOCK_MONOTONIC). */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const log = (...args: ReadonlyArray<unknown>) => console.error("[bench]", ...args)

/**
 * Runs `attempt` up to `times` times. The servers here are shared (another
 * test run may restart PostgreSQL, say): after a failure, `recover` runs
 * (wait for the server, reset state) and the attempt is made again; the
 * failed attempt's figures are thrown away.
 */
export const withRetries = async <A>(
  label: string,
  attempt: () => Promise<A>,
  recover: () => Promise<void>,
  times = 4
): Promise<A> => {
  for (let i = 1;; i++) {
    try {
      return await attempt()
    } catch (error) {
      if (i >= times) throw error
      log(
        `${label} failed (attempt ${i}/${times}), retrying: ${error instanceof Error ? error.message : String(error)}`
      )
      await sleep(2_000)
      await recover()
    }
  }
}
