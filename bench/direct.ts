/**
 * bench:direct: direct uploads (the client sends the bytes straight to S3
 * with URLs the server signs) against proxied uploads (every byte through
 * the app server), both through the example server (`examples/server.ts`,
 * compiled, STORAGE_BACKEND=s3 on Ceph RGW), and against the AWS SDK's own
 * `Upload` (@aws-sdk/lib-storage) from the same client.
 *
 * Two ratios, run by run:
 * - the app server's CPU seconds per GiB uploaded (user + system time of
 *   its process, from /proc), direct over proxied: the issue's aim is under
 *   2%. Each side is billed from its first request until the server is
 *   quiet again (no CPU tick for 2 s), so the garbage one side leaves is
 *   collected on its own bill, not on the next side's;
 * - direct throughput over the SDK's `Upload`: the aim is at least 0.95x.
 *
 * Default: 512 MiB in 16 MiB parts, 4 parts at once, 3 runs of each side,
 * interleaved. `--quick`: 128 MiB, 1 run.
 */
import { createReadStream } from "node:fs"
import * as http from "node:http"
import { join } from "node:path"
import { fmt, fmtRatio, fmtSpread, log, mib, pairedRatio, parseFlags, record, spread, table } from "./lib/common.js"
import { cpuSeconds } from "./lib/processes.js"
import {
  benchToken,
  compiledExampleServer,
  createBucket,
  deleteBucket,
  emptyBucket,
  newBucketName,
  partSize,
  s3,
  s3Client,
  sdkUpload,
  sourceFile,
  startExampleServer,
  timed,
  workDir
} from "./upload/common.js"

const flags = parseFlags()
const size = Number(flags.options.get("size") ?? (flags.quick ? 128 : 512)) * mib
const runs = flags.quick && !flags.options.has("runs") ? 1 : flags.runs
const concurrency = 4

/**
 * Waits until the process has used no CPU for `quietMs` (ticks of 10 ms,
 * read every 250 ms), at most `maxMs`: V8 collects an upload's garbage
 * (and shrinks its heap) in the idle seconds after it.
 */
const settle = async (pid: number, quietMs = 2000, maxMs = 60_000) => {
  const start = Date.now()
  let last = cpuSeconds(pid)
  let quietSince = Date.now()
  while (Date.now() - quietSince < quietMs && Date.now() - start < maxMs) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    const now = cpuSeconds(pid)
    if (now !== last) {
      last = now
      quietSince = Date.now()
    }
  }
}

interface Reply {
  readonly status: number
  readonly body: string
}

const send = (
  agent: http.Agent,
  method: string,
  url: string,
  headers: http.OutgoingHttpHeaders,
  body?: string | NodeJS.ReadableStream
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on("error", reject)
    })
    req.on("error", reject)
    if (body === undefined || typeof body === "string") req.end(body)
    else body.pipe(req)
  })

/**
 * A direct upload: open it, have the parts' URLs signed (up to 100 per
 * request), PUT the parts there (`concurrency` at once, streamed from the
 * file), complete.
 */
const directUpload = async (baseUrl: string, file: string, length: number): Promise<string> => {
  const app = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const storage = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const auth = { authorization: `Bearer ${benchToken}` }
  try {
    const opened = await send(
      app,
      "POST",
      `${baseUrl}/storage/direct/uploads`,
      { ...auth, "content-type": "application/json" },
      JSON.stringify({ filename: "bench.bin", size: length, contentType: "application/octet-stream" })
    )
    if (opened.status !== 201) throw new Error(`open: ${opened.status} ${opened.body}`)
    const ticket = JSON.parse(opened.body) as { claimId: string; partSize: number; partCount: number }
    // The part URLs, signed up to 100 per request.
    const urls = new Map<number, { url: string; headers: Record<string, string> }>()
    for (let first = 1; first <= ticket.partCount; first += 100) {
      const partNumbers = Array.from({ length: Math.min(100, ticket.partCount - first + 1) }, (_, i) => first + i)
      const signed = await send(
        app,
        "POST",
        `${baseUrl}/storage/direct/uploads/${ticket.claimId}/signatures`,
        { ...auth, "content-type": "application/json" },
        JSON.stringify({ partNumbers })
      )
      if (signed.status !== 200) throw new Error(`sign: ${signed.status} ${signed.body}`)
      for (const part of (JSON.parse(signed.body) as { parts: Array<any> }).parts) urls.set(part.partNumber, part)
    }
    let next = 1
    const lane = async () => {
      while (next <= ticket.partCount) {
        const partNumber = next++
        const { headers, url } = urls.get(partNumber)!
        const start = (partNumber - 1) * ticket.partSize
        const end = Math.min(length, start + ticket.partSize)
        const put = await send(storage, "PUT", url, headers, createReadStream(file, { start, end: end - 1 }))
        if (put.status !== 200) throw new Error(`PUT ${partNumber}: ${put.status} ${put.body}`)
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, ticket.partCount) }, lane))
    const done = await send(app, "POST", `${baseUrl}/storage/direct/uploads/${ticket.claimId}/complete`, auth)
    if (done.status !== 200) throw new Error(`complete: ${done.status} ${done.body}`)
    const info = JSON.parse(done.body) as { key: string; size: number }
    if (info.size !== length) throw new Error(`the object has ${info.size} bytes, expected ${length}`)
    return info.key
  } finally {
    app.destroy()
    storage.destroy()
  }
}

/** A proxied upload through the storage API: every part's bytes go through the server. */
const proxiedUpload = async (baseUrl: string, file: string, length: number): Promise<void> => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const auth = { authorization: `Bearer ${benchToken}` }
  try {
    const opened = await send(
      agent,
      "POST",
      `${baseUrl}/storage/uploads`,
      { ...auth, "content-type": "application/json" },
      JSON.stringify({ filename: "bench.bin", size: length, contentType: "application/octet-stream" })
    )
    if (opened.status !== 201) throw new Error(`open: ${opened.status} ${opened.body}`)
    const ticket = JSON.parse(opened.body) as { claimId: string; partSize: number; partCount: number }
    let next = 1
    const lane = async () => {
      while (next <= ticket.partCount) {
        const partNumber = next++
        const start = (partNumber - 1) * ticket.partSize
        const end = Math.min(length, start + ticket.partSize)
        const put = await send(
          agent,
          "PUT",
          `${baseUrl}/storage/uploads/${ticket.claimId}/parts/${partNumber}`,
          { ...auth, "content-type": "application/octet-stream", "content-length": end - start },
          createReadStream(file, { start, end: end - 1 })
        )
        if (put.status !== 200) throw new Error(`PUT ${partNumber}: ${put.status} ${put.body}`)
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, ticket.partCount) }, lane))
    const done = await send(agent, "POST", `${baseUrl}/storage/uploads/${ticket.claimId}/complete`, auth)
    if (done.status !== 200) throw new Error(`complete: ${done.status} ${done.body}`)
  } finally {
    agent.destroy()
  }
}

const main = async () => {
  const file = sourceFile(size)
  const client = s3Client()
  const bucket = newBucketName("direct")
  await createBucket(client, bucket)
  const server = await startExampleServer({
    STORAGE_BACKEND: "s3",
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: bucket,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: "true",
    STORAGE_PART_SIZE: String(partSize),
    DATABASE_URL: `sqlite:${join(workDir, `direct-${bucket}.db`)}`,
    STORAGE_ROOT: join(workDir, `direct-${bucket}`),
    STORAGE_RUN_WORKERS: "false"
  }, { compiled: await compiledExampleServer() })
  const pid = server.process.pid!
  const gib = size / (1024 * mib)
  const results = { proxied: [] as Array<number>, direct: [] as Array<number>, sdk: [] as Array<number> }
  const cpu = { proxied: [] as Array<number>, direct: [] as Array<number> }
  try {
    // one warm-up of each server path, not counted
    await proxiedUpload(server.url, file, 8 * mib)
    await directUpload(server.url, file, 8 * mib)
    for (let run = 1; run <= runs; run++) {
      for (const side of ["proxied", "direct", "sdk"] as const) {
        await settle(pid)
        const before = cpuSeconds(pid)
        const ms = await timed(() =>
          side === "proxied"
            ? proxiedUpload(server.url, file, size)
            : side === "direct"
            ? directUpload(server.url, file, size)
            : sdkUpload(client, bucket, `sdk-${run}.bin`, file, concurrency)
        )
        await settle(pid)
        const used = cpuSeconds(pid) - before
        results[side].push(size / mib / (ms / 1000))
        if (side !== "sdk") cpu[side].push(used / gib)
        log(
          `run ${run} ${side}: ${fmt(ms / 1000)} s, ${fmt(size / mib / (ms / 1000))} MiB/s, server CPU ${
            fmt(used, 3)
          } s`
        )
        await emptyBucket(client, bucket)
      }
    }
  } finally {
    await server.stop()
    await deleteBucket(client, bucket)
    client.destroy()
  }
  const cpuRatio = pairedRatio(cpu.direct, cpu.proxied)
  const speedRatio = pairedRatio(results.direct, results.sdk)
  const body = [
    `${size / mib} MiB in ${
      partSize / mib
    } MiB parts, ${concurrency} at once, ${runs} run(s) of each side, into Ceph RGW. App server CPU: from a quiet server (no CPU tick for 2 s) at the side's first request until it is quiet again after its last, so each side pays for its own garbage collection.`,
    "",
    table(["side", "throughput (MiB/s)", "app server CPU (s per GiB)"], [
      [
        "proxied (PUT parts through the server)",
        fmtSpread(spread(results.proxied), 1),
        fmtSpread(spread(cpu.proxied), 3)
      ],
      ["direct (signed URLs, bytes to S3)", fmtSpread(spread(results.direct), 1), fmtSpread(spread(cpu.direct), 3)],
      ["AWS SDK Upload (no app server)", fmtSpread(spread(results.sdk), 1), "-"]
    ]),
    "",
    `- App server CPU per GiB, direct / proxied: ${fmtRatio(cpuRatio)} (aim: under 0.02x)`,
    `- Throughput, direct / AWS SDK Upload: ${fmtRatio(speedRatio)} (aim: at least 0.95x)`
  ].join("\n")
  record({
    benchmark: "bench:direct",
    flags,
    versions: ["@aws-sdk/client-s3", "@aws-sdk/lib-storage"],
    servers: [`Ceph RGW at ${s3.endpoint}`],
    body
  })
}

await main()
