/**
 * Node arguments that run a TypeScript module of the repository in a child
 * process through tsx's loader, in that one process (a kill reaches the
 * module itself, not a tsx wrapper), from any working folder.
 */
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"

export const tsxArgs = (module: string): Array<string> => [
  "--import",
  pathToFileURL(resolve("node_modules/tsx/dist/loader.mjs")).href,
  resolve(module)
]
