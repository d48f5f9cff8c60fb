/**
 * Summarises V8 CPU profiles (`node --cpu-prof`): self time by function and
 * by package, and inclusive time of chosen functions.
 *
 *   npx tsx bench/profile.ts PROFILE.cpuprofile [...more] [--top=30] [--match=regexp]
 */
import { readFileSync } from "node:fs"

interface Node {
  readonly id: number
  readonly callFrame: { functionName: string; url: string; lineNumber: number }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<Node>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly startTime: number
  readonly endTime: number
}

const args = process.argv.slice(2)
const files = args.filter((a) => !a.startsWith("--"))
const top = Number(args.find((a) => a.startsWith("--top="))?.slice(6) ?? 30)
const match = args.find((a) => a.startsWith("--match="))?.slice(8)

const pkgOf = (url: string): string => {
  if (url === "") return "(native/vm)"
  const nm = url.lastIndexOf("node_modules/")
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/")
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  if (url.startsWith("node:")) return "node:internal"
  const m = /\/work\/[^/]+\/(src|bench|examples)\//.exec(url)
  if (m !== null) return `effect-storage/${m[1]}`
  return url
}

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0)
  const idle = [...self.entries()]
    .filter(([id]) => ["(idle)", "(program)", "(garbage collector)"].includes(byId.get(id)!.callFrame.functionName))
  const byFn = new Map<string, number>()
  const byPkg = new Map<string, number>()
  for (const [id, us] of self) {
    const { functionName, lineNumber, url } = byId.get(id)!.callFrame
    const key = `${functionName || "(anonymous)"} ${
      url.replace(/^.*node_modules\//, "").replace(/^file:\/\/\/work\/[^/]+\//, "")
    }:${lineNumber + 1}`
    byFn.set(key, (byFn.get(key) ?? 0) + us)
    const pkg = ["(idle)", "(program)", "(garbage collector)"].includes(functionName) ? functionName : pkgOf(url)
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + us)
  }
  const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1)}%`.padStart(6)
  console.log(
    `\n== ${file}: ${(totalUs / 1e6).toFixed(2)} s sampled; ${
      idle.map(([id, us]) => `${byId.get(id)!.callFrame.functionName} ${pct(us)}`).join(", ")
    }`
  )
  console.log("-- self time by package")
  for (const [k, us] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pct(us)}  ${k}`)
  console.log("-- self time by function")
  for (const [k, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`)
  if (match !== undefined) {
    // Inclusive time of frames whose function name or url matches.
    const re = new RegExp(match)
    const inclusive = new Map<string, number>()
    for (const [id, us] of self) {
      const seen = new Set<string>()
      let cur: number | undefined = id
      while (cur !== undefined) {
        const { functionName, lineNumber, url } = byId.get(cur)!.callFrame
        const key = `${functionName} ${url.replace(/^.*\/work\/[^/]+\//, "")}:${lineNumber + 1}`
        if ((re.test(functionName) || re.test(url)) && !seen.has(key)) {
          seen.add(key)
          inclusive.set(key, (inclusive.get(key) ?? 0) + us)
        }
        cur = parent.get(cur)
      }
    }
    console.log(`-- inclusive time of frames matching /${match}/`)
    for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`)
  }
}
