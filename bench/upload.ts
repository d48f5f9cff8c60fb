/**
 * bench:upload: a 1 GiB file in 16 MiB parts, 4 parts at once.
 *
 * Into S3 (Ceph RGW): through the example server's storage API
 * (`examples/server.ts`, STORAGE_BACKEND=s3), vs the AWS SDK straight to
 * the same server (@aws-sdk/lib-storage `Upload`, and a hand-written
 * CreateMultipartUpload/UploadPart loop streaming each part from the file),
 * vs @tus/server + @tus/s3-store in front of the same server (tus-js-client,
 * 16 MiB chunks), and tus-js-client with the same settings against the
 * example server's own tus endpoint (`/storage/tus/`) vs @tus/server again,
 * both compiled and run as `npm start` runs the example, each in a process
 * that serves only tus, so that their peak memory (VmHWM) compares too.
 * Onto disk: the example server with
 * STORAGE_BACKEND=filesystem vs a plain copy of the same file (a stream pipe
 * with an fsync at the end, which is what the backend guarantees, and
 * fs.copyFile). Sides interleave run by run; throughput is size over time,
 * the ratio is the storage API's over the other side's, per run.
 *
 * `--baseline=REV` adds the example server as of git revision REV (both
 * backends), run the same way, for before/after figures in one run.
 */
import { randomBytes } from "node:crypto"
import { createReadStream, createWriteStream } from "node:fs"
import { copyFile, mkdir, open, readdir, rm } from "node:fs/promises"
import { join } from "node:path"
import { pipeline } from "node:stream/promises"
import {
  benchDir,
  fmt,
  fmtRatio,
  fmtSpread,
  log,
  mib,
  pairedRatio,
  parseFlags,
  record,
  spread,
  table,
  withRetries
} from "./lib/common.js"
import { createDatabase, pgVersion, waitForServers } from "./lib/db.js"
import { exportRevision } from "./lib/library.js"
import { memoryOf } from "./lib/processes.js"
import {
  apiOneRequestFiles,
  apiSmallFiles,
  apiUpload,
  benchToken,
  compiledExampleServer,
  compileServer,
  createBucket,
  deleteBucket,
  emptyBucket,
  handUpload,
  newBucketName,
  partSize,
  proxyUpload,
  s3,
  s3Client,
  sdkSmallFiles,
  sdkUpload,
  type Server,
  sourceFile,
  startExampleServer,
  startFlags,
  startProxyServer,
  startTusServer,
  timed,
  tusUpload,
  workDir
} from "./upload/common.js"

const flags = parseFlags()
const size = Number(flags.options.get("size-mib") ?? (flags.quick ? 128 : 1024)) * mib
const concurrency = Number(flags.options.get("concurrency") ?? 4)
const only = flags.options.get("sides")?.split(",")
/** `--profile=DIR`: CPU profiles of the example servers (node --cpu-prof). */
const profileDir = flags.options.get("profile")
/** Small files: `--small-files=N` of `--small-size=BYTES` (10 KB), through the API and straight to the bucket. */
const smallCount = Number(flags.options.get("small-files") ?? (flags.quick ? 200 : 1000))
const smallSize = Number(flags.options.get("small-size") ?? 10_000)
/** `--baseline=REV`: also the example server as of git revision REV. */
const baselineRev = flags.options.get("baseline")

interface Side {
  readonly id: string
  readonly label: string
  readonly group: "s3" | "fs"
  readonly run: () => Promise<number>
}

const main = async () => {
  const file = sourceFile(size)
  const client = s3Client()
  const bucket = newBucketName("upload")
  await createBucket(client, bucket)
  const db = await createDatabase("pg", "upload")
  const fsRoot = join(workDir, `objects-${randomBytes(4).toString("hex")}`)
  const copyDir = join(workDir, `copies-${randomBytes(4).toString("hex")}`)
  await mkdir(copyDir, { recursive: true })
  const execArgv = (name: string) =>
    profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}/${name}`]
  const s3Env = {
    DATABASE_URL: db.url,
    STORAGE_BACKEND: "s3",
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: bucket,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: "true",
    S3_CREATE_BUCKET: "true"
  }
  const s3Server = await startExampleServer(s3Env, { execArgv: execArgv("api-s3") })
  const fsDb = await createDatabase("pg", "upload_fs")
  const fsEnv = { DATABASE_URL: fsDb.url, STORAGE_BACKEND: "filesystem", STORAGE_ROOT: fsRoot }
  const fsServer = await startExampleServer(fsEnv, { execArgv: execArgv("api-fs") })
  const baselineServer = baselineRev === undefined
    ? undefined
    : join(exportRevision(baselineRev), "..", "examples", "server.ts")
  const baselineDb = baselineServer === undefined ? undefined : await createDatabase("pg", "upload_base")
  const baselineFsDb = baselineServer === undefined ? undefined : await createDatabase("pg", "upload_base_fs")
  const baselineS3 = baselineServer === undefined
    ? undefined
    : await startExampleServer({ ...s3Env, DATABASE_URL: baselineDb!.url }, { serverFile: baselineServer })
  const baselineFs = baselineServer === undefined ? undefined : await startExampleServer(
    { ...fsEnv, DATABASE_URL: baselineFsDb!.url, STORAGE_ROOT: `${fsRoot}-baseline` },
    { serverFile: baselineServer }
  )
  const tusServer = await startTusServer(bucket)
  // The tus pair: each server in a process of its own that serves only tus,
  // both compiled and run as `npm start` runs the example, so their peak
  // memory compares too.
  const tusApiServer = await startExampleServer(s3Env, {
    compiled: await compiledExampleServer(),
    execArgv: [...startFlags, ...execArgv("api-tus")]
  })
  const tusPeerServer = await startTusServer(bucket, { compiled: true, execArgv: startFlags })
  // And an app that serves only the tus endpoint, the peer's own shape (the
  // example also carries the parts API, documents, pages and API docs).
  const tusLeanServer = await startExampleServer(s3Env, {
    compiled: await compileServer(join(benchDir, "upload", "tus-only-server.ts"), "tus-only"),
    execArgv: [...startFlags, ...execArgv("api-tus-lean")]
  })
  // Resident memory of both before any upload: how much of the peak is the process itself.
  const idleOf = (server: { readonly process: { readonly pid?: number | undefined } }) =>
    server.process.pid === undefined ? Number.NaN : memoryOf(server.process.pid)?.rss ?? Number.NaN
  const tusIdle = { ours: idleOf(tusApiServer), theirs: idleOf(tusPeerServer), lean: idleOf(tusLeanServer) }
  const proxyServer = await startProxyServer(bucket)
  let n = 0
  /** tus-js-client into one of our servers' tus endpoint, as the bench token. */
  const ourTusUpload = (server: Server) =>
    tusUpload(server.url, file, size, partSize, {
      path: "/storage/tus/",
      headers: { Authorization: `Bearer ${benchToken}` }
    })
  const sides: Array<Side> = [
    {
      id: "api-s3",
      label: "effect-storage API (example server, S3 backend)",
      group: "s3",
      run: () => timed(() => apiUpload(s3Server.url, file, size, concurrency))
    },
    {
      // tus-js-client sends one PATCH at a time (@tus/s3-store has no concatenation): the API at 1 part too.
      id: "api-s3-x1",
      label: "effect-storage API (example server, S3 backend), 1 part at a time",
      group: "s3",
      run: () => timed(() => apiUpload(s3Server.url, file, size, 1))
    },
    ...(baselineS3 === undefined ? [] : [{
      id: "api-s3-baseline",
      label: `effect-storage API as of ${baselineRev} (before), S3 backend`,
      group: "s3" as const,
      run: () => timed(() => apiUpload(baselineS3.url, file, size, concurrency))
    }]),
    {
      id: "sdk-upload",
      label: "AWS SDK `Upload` (@aws-sdk/lib-storage), direct",
      group: "s3",
      run: () => timed(() => sdkUpload(client, bucket, `direct/${n++}.bin`, file, concurrency))
    },
    {
      id: "sdk-loop",
      label: "AWS SDK UploadPart loop (streamed parts), direct",
      group: "s3",
      run: () => timed(() => handUpload(client, bucket, `loop/${n++}.bin`, file, concurrency))
    },
    {
      id: "proxy",
      label: "bare Node pass-through server (http body to UploadPart, no checks, no database)",
      group: "s3",
      run: () => timed(() => proxyUpload(proxyServer.url, `proxy/${n++}.bin`, file, size, concurrency))
    },
    {
      id: "tus",
      label: "@tus/server + @tus/s3-store (tus-js-client, 16 MiB chunks)",
      group: "s3",
      run: () => timed(() => tusUpload(tusServer.url, file, size, partSize))
    },
    {
      id: "tus-peer",
      label: `@tus/server + @tus/s3-store, compiled, node ${startFlags.join(" ")} (tus-js-client, 16 MiB chunks)`,
      group: "s3",
      run: () => timed(() => tusUpload(tusPeerServer.url, file, size, partSize))
    },
    {
      id: "api-tus",
      label: `effect-storage tus endpoint (example server compiled, node ${
        startFlags.join(" ")
      }, S3 backend; tus-js-client, 16 MiB chunks)`,
      group: "s3",
      run: () => timed(() => ourTusUpload(tusApiServer))
    },
    {
      id: "api-tus-lean",
      label: `effect-storage tus endpoint alone (bench/upload/tus-only-server.ts compiled, node ${
        startFlags.join(" ")
      }, S3 backend; tus-js-client, 16 MiB chunks)`,
      group: "s3",
      run: () => timed(() => ourTusUpload(tusLeanServer))
    },
    {
      id: "api-fs",
      label: "effect-storage API (example server, filesystem backend)",
      group: "fs",
      run: () => timed(() => apiUpload(fsServer.url, file, size, concurrency))
    },
    ...(baselineFs === undefined ? [] : [{
      id: "api-fs-baseline",
      label: `effect-storage API as of ${baselineRev} (before), filesystem backend`,
      group: "fs" as const,
      run: () => timed(() => apiUpload(baselineFs.url, file, size, concurrency))
    }]),
    {
      id: "pipe-fsync",
      label: "stream pipe to a new file + fsync",
      group: "fs",
      run: () =>
        timed(async () => {
          const target = join(copyDir, `pipe-${n++}.bin`)
          await pipeline(createReadStream(file), createWriteStream(target))
          const handle = await open(target, "r+")
          await handle.datasync()
          await handle.close()
        })
    },
    {
      id: "copyfile",
      label: "fs.copyFile (no fsync)",
      group: "fs",
      run: () => timed(() => copyFile(file, join(copyDir, `copy-${n++}.bin`)))
    }
  ].filter((side) => only === undefined || only.includes(side.id)) as Array<Side>
  const times = new Map<string, Array<number>>(sides.map((side) => [side.id, []]))
  let tusMemory: { readonly ours: number; readonly theirs: number; readonly lean: number } | undefined
  const smallRates = new Map<string, Array<number>>([["api-one", []], ["api", []], ["sdk", []], ["api-baseline", []]])
  try {
    for (let run = 0; run < flags.runs; run++) {
      for (const side of sides) {
        const ms = await withRetries(side.id, side.run, async () => {
          await waitForServers()
          await emptyBucket(client, bucket)
        })
        times.get(side.id)!.push(ms)
        log(`run ${run + 1}/${flags.runs} ${side.id}: ${fmt(ms, 0)} ms, ${fmt(size / mib / (ms / 1000), 1)} MiB/s`)
        // Nothing left behind between sides: Ceph keeps its data in memory.
        if (side.group === "s3") await emptyBucket(client, bucket)
        else {
          // The stored objects go; the backend's own folders (.tmp, .multipart) stay, the server uses them.
          for (const root of [fsRoot, `${fsRoot}-baseline`]) {
            for (const entry of await readdir(root).catch(() => [] as Array<string>)) {
              if (!entry.startsWith(".")) await rm(join(root, entry), { recursive: true, force: true })
            }
          }
          await rm(copyDir, { recursive: true, force: true })
          await mkdir(copyDir, { recursive: true })
        }
      }
    }
    // Small files: every upload is a full exchange with the API (open, one part, complete).
    if (smallCount > 0) {
      const small = new Uint8Array(smallSize).map((_, i) => i % 251)
      const smallSides: Array<readonly [string, () => Promise<unknown>]> = [
        ["api-one", () => apiOneRequestFiles(s3Server.url, smallCount, small, concurrency)],
        ["api", () => apiSmallFiles(s3Server.url, smallCount, small, concurrency)],
        ["sdk", () => sdkSmallFiles(client, bucket, `small/${n++}/`, smallCount, small, concurrency)],
        ...(baselineS3 === undefined
          ? []
          : [["api-baseline", () => apiSmallFiles(baselineS3.url, smallCount, small, concurrency)] as const])
      ]
      for (let run = 0; run < flags.runs; run++) {
        for (const [id, upload] of smallSides) {
          const ms = await timed(() => upload())
          smallRates.get(id)!.push(smallCount / (ms / 1000))
          log(`run ${run + 1}/${flags.runs} small ${id}: ${fmt(smallCount / (ms / 1000), 0)} files/s`)
          await emptyBucket(client, bucket)
        }
      }
    }
    // Peak resident memory since start of the two processes that served only tus.
    const ours = tusApiServer.process.pid === undefined ? undefined : memoryOf(tusApiServer.process.pid)
    const theirs = tusPeerServer.process.pid === undefined ? undefined : memoryOf(tusPeerServer.process.pid)
    const lean = tusLeanServer.process.pid === undefined ? undefined : memoryOf(tusLeanServer.process.pid)
    if (ours !== undefined && theirs !== undefined && lean !== undefined) {
      tusMemory = { ours: ours.hwm, theirs: theirs.hwm, lean: lean.hwm }
    }
  } finally {
    await tusApiServer.stop()
    await tusPeerServer.stop()
    await tusLeanServer.stop()
    await s3Server.stop()
    await fsServer.stop()
    await baselineS3?.stop()
    await baselineFs?.stop()
    await baselineDb?.drop()
    await baselineFsDb?.drop()
    if (baselineServer !== undefined) await rm(`${fsRoot}-baseline`, { recursive: true, force: true })
    await tusServer.stop()
    await proxyServer.stop()
    await deleteBucket(client, bucket).catch((error) => log("could not delete the bucket", error))
    client.destroy()
    await db.drop()
    await fsDb.drop()
    await rm(fsRoot, { recursive: true, force: true })
    await rm(copyDir, { recursive: true, force: true })
  }

  const throughput = (id: string) => (times.get(id) ?? []).map((ms) => size / mib / (ms / 1000))
  const rows: Array<Array<string>> = []
  const reference = (group: Side["group"]) => (group === "s3" ? "api-s3" : "api-fs")
  for (const side of sides) {
    const ours = throughput(reference(side.group))
    const values = throughput(side.id)
    rows.push([
      side.group === "s3" ? "S3 (Ceph RGW)" : "local disk",
      side.label,
      fmtSpread(spread(values), 1),
      side.id === reference(side.group) ? "1.00x (baseline)" : fmtRatio(pairedRatio(ours, values))
    ])
  }
  const x1 = throughput("api-s3-x1")
  const tusSide = throughput("tus")
  const sameParallelism = x1.length > 0 && tusSide.length > 0
    ? `\n\nAt the same parallelism as tus (one part or PATCH at a time): the API ${
      fmtSpread(spread(x1), 1)
    } MiB/s, tus ${fmtSpread(spread(tusSide), 1)} MiB/s: ${fmtRatio(pairedRatio(x1, tusSide))}.`
    : ""
  const apiTus = throughput("api-tus")
  const tusPeer = throughput("tus-peer")
  const tusAgainstTus = apiTus.length > 0 && tusPeer.length > 0
    ? `\n\ntus-js-client, same settings (${partSize / mib} MiB chunks, one PATCH at a time), against the example ` +
      `server's tus endpoint vs @tus/server + @tus/s3-store (both compiled, node ${startFlags.join(" ")}): ${
        fmtSpread(spread(apiTus), 1)
      } vs ${fmtSpread(spread(tusPeer), 1)} MiB/s, ${fmtRatio(pairedRatio(apiTus, tusPeer))}` +
      (tusMemory === undefined
        ? "."
        : `; peak server memory (VmHWM since start of each process, which served only tus) ${
          fmt(tusMemory.ours / mib, 0)
        } vs ${fmt(tusMemory.theirs / mib, 0)} MiB, ${fmt(tusMemory.ours / tusMemory.theirs, 2)}x; of which above ` +
          `the process's own resident memory before the first upload (${fmt(tusIdle.ours / mib, 0)} vs ${
            fmt(tusIdle.theirs / mib, 0)
          } MiB): ${fmt((tusMemory.ours - tusIdle.ours) / mib, 0)} vs ${
            fmt((tusMemory.theirs - tusIdle.theirs) / mib, 0)
          } MiB, ${fmt((tusMemory.ours - tusIdle.ours) / (tusMemory.theirs - tusIdle.theirs), 2)}x.`)
    : ""
  const apiTusLean = throughput("api-tus-lean")
  const leanAgainstTus = apiTusLean.length > 0 && tusPeer.length > 0
    ? `\n\nThe same against an app that serves only the tus endpoint (bench/upload/tus-only-server.ts: the ` +
      `storage stack with its workers and /storage/tus/, the peer's own shape): ${fmtSpread(spread(apiTusLean), 1)} ` +
      `vs ${fmtSpread(spread(tusPeer), 1)} MiB/s, ${fmtRatio(pairedRatio(apiTusLean, tusPeer))}` +
      (tusMemory === undefined
        ? "."
        : `; peak server memory ${fmt(tusMemory.lean / mib, 0)} vs ${fmt(tusMemory.theirs / mib, 0)} MiB, ${
          fmt(tusMemory.lean / tusMemory.theirs, 2)
        }x (before the first upload: ${fmt(tusIdle.lean / mib, 0)} vs ${fmt(tusIdle.theirs / mib, 0)} MiB).`)
    : ""
  const smallOne = smallRates.get("api-one")!
  const smallApi = smallRates.get("api")!
  const smallSdk = smallRates.get("sdk")!
  const smallTable = smallCount === 0 ? "" : "\n\n" + [
    `${smallCount} files of ${smallSize.toLocaleString("en-US")} bytes, ${concurrency} at a time; files per second ` +
    "(the API in one request: POST /storage/files; in three: open, one part, complete; the SDK: one PutObject " +
    "straight to the bucket):",
    "",
    table(["upload path", "files/s", "one-request API vs this"], [
      [
        "effect-storage API, one request (example server, S3 backend)",
        fmtSpread(spread(smallOne), 0),
        "1.00x (baseline)"
      ],
      [
        "effect-storage API, three requests",
        fmtSpread(spread(smallApi), 0),
        fmtRatio(pairedRatio(smallOne, smallApi))
      ],
      ...(smallRates.get("api-baseline")!.length === 0 ? [] : [[
        `effect-storage API as of ${baselineRev} (before), three requests`,
        fmtSpread(spread(smallRates.get("api-baseline")!), 0),
        fmtRatio(pairedRatio(smallOne, smallRates.get("api-baseline")!))
      ]]),
      ["AWS SDK PutObject, direct", fmtSpread(spread(smallSdk), 0), fmtRatio(pairedRatio(smallOne, smallSdk))]
    ]),
    "",
    `The three-request API against PutObject: ${fmtRatio(pairedRatio(smallApi, smallSdk))}.`
  ].join("\n")
  const body = [
    `${size / mib} MiB from a file on disk, ${partSize / mib} MiB parts, ${concurrency} parts at once ` +
    `(tus: one ${partSize / mib} MiB PATCH after the other: @tus/s3-store has no concatenation extension, so ` +
    `tus-js-client's parallelUploads cannot be used); ${flags.runs} runs per side, interleaved; client, servers and ` +
    "S3 on this machine. The example server runs `examples/server.ts` (`node --import tsx`) over PostgreSQL; " +
    "the S3 client settings are forcePathStyle, us-east-1, requestChecksumCalculation WHEN_REQUIRED everywhere. " +
    "The ratio is the storage API's MiB/s over the other side's, per run (above 1 means the API is faster).",
    "",
    table(["target", "upload path", "MiB/s", "effect-storage API vs this"], rows) + sameParallelism + tusAgainstTus +
    leanAgainstTus +
    smallTable
  ].join("\n")
  record({
    benchmark: "bench:upload",
    flags,
    versions: [
      "effect",
      "@effect/platform-node",
      "@aws-sdk/client-s3",
      "@aws-sdk/lib-storage",
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
