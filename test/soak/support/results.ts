/**
 * The soak's figures, kept: each suite writes what it counted (seed,
 * commit, counts taken from the final state) to `test/soak/results.json`,
 * which the README's reliability figures are rendered from
 * (`node scripts/soak-figures.mjs`).
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export const resultsFile = join(dirname(fileURLToPath(import.meta.url)), "..", "results.json")

const git = (...args: Array<string>) => {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return undefined
  }
}

/** The commit the run started from, and whether the tree had changes (this file aside). */
const revision = (() => {
  const commit = git("rev-parse", "--short", "HEAD") ?? "unknown"
  const changed = (git("status", "--porcelain", "--", "src", "test", "examples") ?? "")
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.endsWith("test/soak/results.json"))
  return { commit, uncommittedChanges: changed.length > 0 }
})()

/**
 * Replaces the entry of `suite` in the results file with `figures` (one
 * object per variant), dated and with the revision.
 */
export const recordSoak = (suite: string, figures: ReadonlyArray<Record<string, unknown>>): void => {
  if (figures.length === 0) return
  const all: Record<string, unknown> = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, "utf8")) : {}
  all[suite] = { at: new Date().toISOString(), ...revision, variants: figures }
  const sorted = Object.fromEntries(Object.entries(all).sort(([a], [b]) => a.localeCompare(b)))
  writeFileSync(resultsFile, `${JSON.stringify(sorted, null, 2)}\n`)
}
