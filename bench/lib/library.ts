/**
 * The library under test: this checkout's `src/`, or (for before/after
 * figures in the same run) `src/` as of another git revision, exported to a
 * temp folder next to a link to this checkout's node_modules.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import type * as Src from "../../src/index.js"
import { repoDir } from "./common.js"

export type Library = typeof Src

/** Exports `src/`, `examples/` and package.json of `rev`; answers the exported `src/` folder. */
export const exportRevision = (rev: string): string => {
  const sha = execFileSync("git", ["-C", repoDir, "rev-parse", "--short", rev], { encoding: "utf8" }).trim()
  const dir = join(tmpdir(), `effect-storage-bench-${sha}`)
  if (!existsSync(join(dir, "examples", "server.ts"))) {
    mkdirSync(dir, { recursive: true })
    execFileSync("sh", ["-c", `git -C "${repoDir}" archive ${sha} src examples package.json | tar -x -C "${dir}"`])
  }
  if (!existsSync(join(dir, "node_modules"))) symlinkSync(join(repoDir, "node_modules"), join(dir, "node_modules"))
  return join(dir, "src")
}

/** This checkout's library, or the one in `srcDir` (from `exportRevision`). */
export const loadLibrary = async (srcDir?: string): Promise<Library> =>
  srcDir === undefined
    ? await import("../../src/index.js")
    : (await import(pathToFileURL(join(srcDir, "index.ts")).href)) as Library
