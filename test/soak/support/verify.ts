/**
 * The end of a soak run: with the clients stopped, the sweeper must reap
 * what they abandoned and the worker drain the queue (no dead letter); then
 * exactly the referenced objects must remain, each byte-identical to what
 * its client sent.
 */
import { expect } from "vitest"
import { request, sha256 } from "./http.js"
import { sleep } from "./soakServer.js"
import { checkInvariants, type Inspector, type Snapshot } from "./state.js"
import { tokenOf, type User, type Workload } from "./workload.js"

export interface FinalFigures {
  readonly drainMillis: number
  readonly objectsAtEnd: number
  readonly documents: number
  readonly verifiedSha256: number
  readonly sessionsLeft: number
  readonly tempFilesLeft: number
  /** Acknowledged objects missing at the end, or whose bytes differ: counted, not assumed. */
  readonly lost: number
  /** Objects at the end that nothing references. */
  readonly leaked: number
  /** What is wrong, one line each (empty when all is well); the caller asserts it after recording the figures. */
  readonly problems: ReadonlyArray<string>
}

export const drainAndVerify = async (
  url: string,
  inspector: Inspector,
  workload: Workload,
  context: string,
  timeoutMs = 60_000
): Promise<FinalFigures & { readonly snapshot: Snapshot }> => {
  const drainStart = Date.now()
  let depth = await inspector.queueDepth()
  while ((depth.live > 0 || depth.pendingClaims > 0) && Date.now() - drainStart < timeoutMs) {
    await sleep(250)
    depth = await inspector.queueDepth()
  }
  const drainMillis = Date.now() - drainStart
  expect(depth, `the queue drains and the sweeper reaps (${context})`).toEqual({ live: 0, dead: 0, pendingClaims: 0 })
  const final = await inspector.snapshot()
  expect([...checkInvariants(final), ...workload.check(final)], context).toEqual([])
  const referenced = new Set([
    ...final.docRefs.keys(),
    ...[...final.claims.values()].filter((c) => c.status === "uploaded").map((c) => c.key)
  ])
  const leaked = [...final.objects].filter((k) => !referenced.has(k))
  const missing = [...referenced].filter((k) => !final.objects.has(k))
  const contents = await verifyContents(url, final, workload)
  return {
    snapshot: final,
    drainMillis,
    objectsAtEnd: final.objects.size,
    documents: final.docs.size,
    verifiedSha256: contents.verified,
    sessionsLeft: final.sessions,
    tempFilesLeft: final.tempFiles,
    lost: missing.length + contents.mismatches.length,
    leaked: leaked.length,
    problems: [
      ...leaked.map((k) => `object nobody references: ${k} (${context})`),
      ...missing.map((k) => `referenced object missing: ${k} (${context})`),
      ...contents.mismatches.map((m) => `download of a surviving object: ${m} (${context})`)
    ]
  }
}

/** Downloads every referenced object whose bytes a client knows, as its owner: how many matched, and what did not. */
export const verifyContents = async (
  url: string,
  s: Snapshot,
  workload: Workload
): Promise<{ readonly verified: number; readonly mismatches: ReadonlyArray<string> }> => {
  let verified = 0
  const mismatches: Array<string> = []
  const owners = new Map<string, User>()
  for (const [key, docIds] of s.docRefs) owners.set(key, s.docs.get(docIds[0]!)!.owner as User)
  for (const claim of s.claims.values()) if (claim.status === "uploaded") owners.set(claim.key, claim.createdBy as User)
  for (const [key, owner] of owners) {
    const record = workload.uploads.get(key)
    if (record === undefined) continue // its init's answer was lost: bytes unknown
    const out = await request(url, "GET", `/storage/files/${key}`, { token: tokenOf[owner], timeoutMs: 30_000 })
    if (out.kind !== "response" || out.status !== 200) {
      mismatches.push(`${key}: ${out.kind === "response" ? out.status : out.kind}`)
    } else if (sha256(out.body) !== record.sha) {
      mismatches.push(`${key}: SHA-256 differs (${out.body.length} bytes, ${record.size} sent)`)
    } else verified++
  }
  return { verified, mismatches }
}
