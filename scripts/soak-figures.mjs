#!/usr/bin/env node
// Renders the README's soak figures from test/soak/results.json (written by
// `npm run soak`), between the soak-figures markers. `--check` fails when
// the README is not what the results file says.
import { readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const results = JSON.parse(readFileSync(join(root, "test/soak/results.json"), "utf8"))
const readmeFile = join(root, "README.md")
const start = "<!-- soak-figures:start -->"
const end = "<!-- soak-figures:end -->"

const n = (x) => Number(x ?? 0).toLocaleString("en-US")
const sum = (list, f) => list.reduce((a, x) => a + Number(f(x) ?? 0), 0)
const variants = (suite) => results[suite]?.variants ?? []
const seconds = (ms) => (Number(ms) / 1000).toFixed(1)

const rows = []
const crash = variants("crash")
if (crash.length > 0) {
  rows.push([
    "kill -9 points survived",
    `**${n(sum(crash, (v) => v.killPoints))}** (${crash.map((v) => `${v.killPoints} on ${v.variant}`).join(", ")}); ` +
    `${n(sum(crash, (v) => v.killsWithQueue))} with deletes queued, ` +
    `${n(sum(crash, (v) => v.killsWithPendingClaims))} with uploads in flight`
  ])
  rows.push([
    "requests during the crash runs",
    `${n(sum(crash, (v) => v.requests))} (${n(sum(crash, (v) => v.networkFailures))} cut by a kill); ` +
    `${n(sum(crash, (v) => v.uploadsCompleted))} uploads completed; ` +
    `${n(sum(crash, (v) => v.verifiedSha256))} surviving objects verified by SHA-256`
  ])
}
const outage = variants("database outage")
if (outage.length > 0) {
  rows.push([
    "database outages",
    outage.map((v) =>
      `${v.database} down ${seconds(v.downMillis)} s under ${n(v.requests)} requests: ${
        n(v.answered503)
      } answered 503, ` +
      `uploads again ${seconds(v.recoveryMillis)} s after it was back, queue drained in ${seconds(v.drainMillis)} s`
    ).join(". ")
  ])
}
const store = variants("object store")
const a = store.find((v) => v.part === "a")
const b = store.find((v) => v.part === "b")
if (a !== undefined && b !== undefined) {
  const injected = (f) => Object.values(f).reduce((x, y) => x + y, 0) - (f.pass ?? 0)
  rows.push([
    "object-store faults injected",
    `uploads: ${n(a.s3Requests)} S3 requests through the fault proxy, ${
      n(injected(a.faults))
    } of them failed, reset or ` +
    `delayed; ${n(a.uploads)} uploads (${
      (a.bytes / 1e6).toFixed(1)
    } MB) byte-identical through the server and in Ceph. ` +
    `Deletes: ${n(b.queued)} queued, ${n(b.deleted)} deleted, ${n(b.deadLettered)} dead-lettered after their attempts`
  ])
}
const several = variants("several servers")
if (several.length > 0) {
  rows.push([
    "several servers",
    `${several[0].servers} example servers behind a round-robin proxy on one PostgreSQL database, ` +
    `each with its delete worker and sweeper, two of them killed -9 and restarted mid-run. ` +
    several.map((v) =>
      `${v.variant}: ${n(v.requests)} requests through the proxy (${n(v.requestsCut)} cut by the kills, ` +
      `${n(v.refusedRerouted)} sent on past a server that was down; the second kill with ` +
      `${n(v.leasedAtKill?.[1])} delete rows leased); ${n(v.uploadsCompleted)} uploads completed ` +
      `(${n(v.uploadsResumed)} resumed from the parts list), ${n(v.adopted)} adopted; ` +
      `${n(v.deletions)} deletions of ${n(v.deletedKeys)} keys (${n(v.doubleDeleted)} deleted twice, ` +
      `${n(v.deletionsMissing)} missing); ${n(v.verifiedSha256)} objects byte-identical at the end, ` +
      `${n(v.leaked)} stray; ${n(v.workerRunFailures)} worker or sweeper runs failed` +
      (v.sessionsBeforeReconcile === undefined
        ? ""
        : `; ${n(v.sessionsBeforeReconcile)} multipart sessions left for reconcile --apply, ${
          n(v.sessionsLeft)
        } after it`)
    ).join(". ")
  ])
}
const hostile = variants("hostile input")[0]
if (hostile !== undefined) {
  const fiveXX = Object.entries(hostile.statuses ?? {}).filter(([s]) => Number(s) >= 500).reduce((x, [, c]) => x + c, 0)
  rows.push([
    "hostile inputs tried",
    `${n(hostile.steps)} property steps (${n(hostile.apiCalls)} API calls in ${n(hostile.runs)} runs, ` +
    `${n(fiveXX)} answered 5xx); ${n(hostile.slowClients)} slow clients cut off within ` +
    `${seconds(hostile.slowCutOffMillisMax)} s; ${n(hostile.endlessBodies)} endless part bodies answered 413 early`
  ])
}
const all = Object.values(results).flatMap((s) => s.variants)
const lost = sum(all, (v) => v.lost)
const leaked = sum(all, (v) => v.leaked)
const wronglyDeleted = sum(all, (v) => v.wronglyDeleted)
rows.push([
  "**lost**",
  `**${n(lost)}** acknowledged uploads lost or changed, ${n(leaked)} objects leaked, ${
    n(wronglyDeleted)
  } wrongly deleted ` +
  `(counted from the final state of each run)`
])
const runs = Object.entries(results).map(([suite, s]) =>
  `${suite}: ${s.at.slice(0, 10)}, commit ${s.commit}${s.uncommittedChanges ? " with uncommitted changes" : ""}`
)

const block = [
  start,
  "",
  `From \`test/soak/results.json\`, written by \`npm run soak\` (${runs.join("; ")}); ` +
  "`node scripts/soak-figures.mjs` renders this table from it.",
  "",
  "| | |",
  "|---|---|",
  ...rows.map(([k, v]) => `| ${k} | ${v} |`),
  "",
  end
].join("\n")

const readme = readFileSync(readmeFile, "utf8")
const from = readme.indexOf(start)
const to = readme.indexOf(end)
if (from === -1 || to === -1) throw new Error(`README.md has no ${start} … ${end} block`)
const next = readme.slice(0, from) + block + readme.slice(to + end.length)
if (process.argv.includes("--check")) {
  if (next !== readme) {
    console.error("README.md's soak figures differ from test/soak/results.json: run node scripts/soak-figures.mjs")
    process.exit(1)
  }
} else {
  writeFileSync(readmeFile, next)
}
