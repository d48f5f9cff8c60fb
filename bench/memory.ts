/**
 * bench:memory: the example server's peak resident memory while 8 clients
 * each upload 256 MiB at once (each sending 4 parts of 16 MiB at a time, so
 * 32 part requests in flight), S3 backend on Ceph RGW.
 *
 * Peak: VmHWM of the server process (reset with /proc/PID/clear_refs just
 * before the load, so it covers the load only) and the highest VmRSS sampled
 * every 20 ms. Every run starts fresh server processes. Baselines in the
 * same run: the same server idle (after one warm-up upload), a bare Node
 * pass-through server under the same load, and @tus/server + @tus/s3-store
 * under 8 tus-js-client uploads of 256 MiB.
 *
 * Every server runs the same way: compiled by esbuild as `npm start`
 * compiles the example, run by plain node with the Node flags of
 * `npm start` (`startFlags`). Those flags favour memory, so the example and
 * @tus/server are also measured without them.
 */
import { writeFileSync } from "node:fs"
import {
  fmt,
  fmtRatio,
  fmtSpread,
  log,
  mib,
  pairedRatio,
  parseFlags,
  record,
  sleep,
  spread,
  table,
  withRetries
} from "./lib/common.js"
import { createDatabase, pgVersion, waitForServers } from "./lib/db.js"
import { memoryOf } from "./lib/processes.js"
import {
  apiUpload,
  compiledExampleServer,
  createBucket,
  deleteBucket,
  emptyBucket,
  newBucketName,
  partSize,
  proxyUpload,
  s3,
  s3Client,
  type Server,
  sourceFile,
  startExampleServer,
  startFlags,
  startProxyServer,
  startTusServer,
  tusUpload
} from "./upload/common.js"

const flags = parseFlags()
const clients = Number(flags.options.get("clients") ?? 8)
const perClient = Number(flags.options.get("size-mib") ?? (flags.quick ? 32 : 256)) * mib
const concurrency = 4

interface Peak {
  readonly hwm: number
  readonly sampled: number
  readonly idle: number
  readonly seconds: number
}

/** Resets the peak, runs the load while sampling, answers the peaks. */
const underLoad = async (server: Server, load: () => Promise<unknown>): Promise<Peak> => {
  const pid = server.process.pid!
  await sleep(500)
  const idle = memoryOf(pid)!.rss
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5")
  } catch {
    log("cannot reset VmHWM (not root?): the peak then includes start-up")
  }
  let sampled = 0
  const timer = setInterval(() => {
    const m = memoryOf(pid)
    if (m !== undefined) sampled = Math.max(sampled, m.rss)
  }, 20)
  const started = Date.now()
  try {
    await load()
  } finally {
    clearInterval(timer)
  }
  const m = memoryOf(pid)!
  return { hwm: m.hwm, sampled: Math.max(sampled, m.rss), idle, seconds: (Date.now() - started) / 1000 }
}

const main = async () => {
  const file = sourceFile(perClient)
  const client = s3Client()
  const bucket = newBucketName("memory")
  await createBucket(client, bucket)
  const results = new Map<string, Array<Peak>>([["api", []], ["api-plain", []], ["proxy", []], ["tus", []], [
    "tus-plain",
    []
  ]])
  const compiled = await compiledExampleServer()
  log(`Node flags of npm start: ${startFlags.join(" ") || "(none)"}`)
  /** The storage API compiled, with the flags of `npm start` or with none. */
  const measureApi = async (variant: "api" | "api-plain") => {
    const db = await createDatabase("pg", "memory")
    try {
      const api = await startExampleServer({
        DATABASE_URL: db.url,
        STORAGE_BACKEND: "s3",
        S3_ENDPOINT: s3.endpoint,
        S3_BUCKET: bucket,
        S3_REGION: s3.region,
        S3_ACCESS_KEY_ID: s3.accessKeyId,
        S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
        S3_FORCE_PATH_STYLE: "true",
        // Parallel uploads by one owner: the default cap of pending uploads is not the point here.
        STORAGE_MAX_PENDING_CLAIMS: "1000"
      }, { compiled, execArgv: variant === "api" ? startFlags : [] })
      try {
        await apiUpload(api.url, file, partSize, 1, "warmup.bin")
        await emptyBucket(client, bucket)
        return await underLoad(
          api,
          () =>
            Promise.all(
              Array.from({ length: clients }, (_, i) =>
                apiUpload(api.url, file, perClient, concurrency, `client-${i}.bin`))
            )
        )
      } finally {
        await api.stop()
      }
    } finally {
      await db.drop().catch(() => undefined)
      await emptyBucket(client, bucket)
    }
  }
  const measureProxy = async () => {
    const proxy = await startProxyServer(bucket, { compiled: true, execArgv: startFlags })
    try {
      await proxyUpload(proxy.url, "warmup.bin", file, partSize, 1)
      await emptyBucket(client, bucket)
      return await underLoad(
        proxy,
        () =>
          Promise.all(
            Array.from({ length: clients }, (_, i) =>
              proxyUpload(proxy.url, `proxy/${i}.bin`, file, perClient, concurrency))
          )
      )
    } finally {
      await proxy.stop()
      await emptyBucket(client, bucket)
    }
  }
  const measureTus = async (execArgv: ReadonlyArray<string>) => {
    const tus = await startTusServer(bucket, { compiled: true, execArgv })
    try {
      await tusUpload(tus.url, file, partSize, partSize)
      await emptyBucket(client, bucket)
      return await underLoad(
        tus,
        () => Promise.all(Array.from({ length: clients }, () => tusUpload(tus.url, file, perClient, partSize)))
      )
    } finally {
      await tus.stop()
      await emptyBucket(client, bucket)
    }
  }
  const sides: ReadonlyArray<readonly [string, () => Promise<Peak>]> = [
    ["api", () => measureApi("api")],
    ["api-plain", () => measureApi("api-plain")],
    ["proxy", measureProxy],
    ["tus", () => measureTus(startFlags)],
    ["tus-plain", () => measureTus([])]
  ]
  try {
    for (let run = 0; run < flags.runs; run++) {
      for (const [id, measure] of sides) {
        const peak = await withRetries(id, measure, async () => {
          await waitForServers()
          await emptyBucket(client, bucket)
        })
        results.get(id)!.push(peak)
        log(
          `run ${run + 1}/${flags.runs} ${id}: peak ${fmt(peak.hwm / mib, 1)} MiB (idle ${
            fmt(peak.idle / mib, 1)
          } MiB), ` +
            `${fmt((clients * perClient) / mib / peak.seconds, 1)} MiB/s`
        )
      }
    }
  } finally {
    await deleteBucket(client, bucket).catch((error) => log("could not delete the bucket", error))
    client.destroy()
  }

  const mb = (bytes: number) => bytes / 1e6
  const row = (label: string, peaks: ReadonlyArray<Peak>, ratio: string) => [
    label,
    fmtSpread(spread(peaks.map((p) => mb(p.hwm))), 0),
    fmtSpread(spread(peaks.map((p) => mb(p.sampled))), 0),
    ratio
  ]
  const idle = (peaks: ReadonlyArray<Peak>) => peaks.map((p) => ({ ...p, hwm: p.idle, sampled: p.idle }))
  /** The example's peak over the row's, per run: below 1 means the example uses less. */
  const ratioTo = (ours: ReadonlyArray<Peak>, peaks: ReadonlyArray<Peak>) =>
    fmtRatio(pairedRatio(ours.map((p) => p.hwm), peaks.map((p) => p.hwm)))
  const api = results.get("api")!
  const plain = results.get("api-plain")!
  const flagsLabel = startFlags.length === 0 ? "no flags" : startFlags.join(" ")
  const rows = [
    row(`effect-storage example server, as \`npm start\` runs it (compiled, node ${flagsLabel}), idle`, idle(api), ""),
    row("effect-storage example server, as `npm start` runs it, under the load", api, "1.00x (baseline)"),
    row(
      `@tus/server + @tus/s3-store, compiled, node ${flagsLabel}, ${clients} tus uploads of the same size`,
      results.get("tus")!,
      ratioTo(api, results.get("tus")!)
    ),
    row(
      `bare Node pass-through server, compiled, node ${flagsLabel}, same load`,
      results.get("proxy")!,
      ratioTo(api, results.get("proxy")!)
    ),
    row("effect-storage example server, compiled, plain node (no flags), idle", idle(plain), ""),
    row("effect-storage example server, compiled, plain node, under the load", plain, ""),
    row(
      "@tus/server + @tus/s3-store, compiled, plain node, same tus load",
      results.get("tus-plain")!,
      ratioTo(plain, results.get("tus-plain")!)
    )
  ]
  const idleWorst = Math.max(...api.map((p) => p.idle))
  const body = [
    `${clients} clients at once, each uploading ${perClient / mib} MiB in ${
      partSize / mib
    } MiB parts, ${concurrency} ` +
    `parts at a time (${clients * concurrency} part requests in flight; tus: one 16 MiB PATCH at a time per client), ` +
    `S3 backend on Ceph RGW, PostgreSQL; ${flags.runs} runs, fresh server processes each run. Every server is compiled ` +
    "by esbuild (packages left as imports) and run by node, with the flags of `npm start` or, below, with none. " +
    "Peak = VmHWM of the server process, reset (clear_refs) right before the load; \"sampled\" = highest VmRSS " +
    "seen every 20 ms. Memory in MB (10^6 bytes). The ratio is the example server's peak over the row's, per run, " +
    "each compared with the same Node flags (below 1: the example server uses less).",
    "",
    table(["process", "peak RSS MB (VmHWM)", "highest sampled RSS MB", "effect-storage peak vs this"], rows),
    "",
    `Aims: idle at most 100 MB as \`npm start\` runs it (worst run ${fmt(mb(idleWorst), 0)} MB: ` +
    `${idleWorst <= 100e6 ? "met" : "missed"}); under the load at most 1.0x @tus/server.`
  ].join("\n")
  record({
    benchmark: "bench:memory",
    flags,
    versions: [
      "effect",
      "@effect/platform-node",
      "@aws-sdk/client-s3",
      "@tus/server",
      "@tus/s3-store",
      "tus-js-client"
    ],
    servers: [await pgVersion(), `Ceph RGW at ${s3.endpoint}`],
    body
  })
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
