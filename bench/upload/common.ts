/**
 * Pieces of bench:upload and bench:memory: the source file, the S3 server,
 * the example server and the tus server as child processes, and the clients.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { Upload } from "@aws-sdk/lib-storage"
import { type ChildProcess, execFile } from "node:child_process"
import { randomBytes, randomFillSync } from "node:crypto"
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync
} from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import type { Readable } from "node:stream"
import * as tus from "tus-js-client"
import { benchDir, log, mib, nowMs, repoDir } from "../lib/common.js"
import { spawnNode, spawnTs, stopProcess, waitForHttp } from "../lib/processes.js"

export const workDir = process.env.BENCH_WORK_DIR ?? "/tmp/effect-storage-bench"

export const s3 = {
  endpoint: process.env.BENCH_S3_ENDPOINT ?? "http://127.0.0.1:7480",
  accessKeyId: process.env.BENCH_S3_ACCESS_KEY_ID ?? "test",
  secretAccessKey: process.env.BENCH_S3_SECRET_ACCESS_KEY ?? "testsecret",
  region: "us-east-1",
  /** Ceph's config, for `radosgw-admin gc process` (deleted objects' space comes back at once). */
  cephConf: process.env.BENCH_CEPH_CONF ?? "/tmp/effect-storage-ceph/ceph.conf"
}

export const partSize = 16 * mib

// ---- the source file ----

/** A file of `size` random bytes, written once (in 16 MiB pieces, never held whole in memory). */
export const sourceFile = (size: number): string => {
  mkdirSync(workDir, { recursive: true })
  const path = join(workDir, `source-${size}.bin`)
  if (existsSync(path) && statSync(path).size === size) return path
  log(`writing ${path} (${size / mib} MiB of random bytes)`)
  const fd = openSync(path, "w")
  const chunk = Buffer.alloc(16 * mib)
  for (let written = 0; written < size; written += chunk.length) {
    randomFillSync(chunk)
    writeSync(fd, chunk, 0, Math.min(chunk.length, size - written))
  }
  closeSync(fd)
  return path
}

// ---- S3 ----

export const s3Client = () =>
  new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    // Streamed bodies as aws-chunked with a CRC32 trailer are refused by Ceph and Swift.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })

export const newBucketName = (label: string) => `bench-${label}-${randomBytes(4).toString("hex")}`

export const createBucket = async (client: S3Client, bucket: string) => {
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
}

/** Deletes every object and open multipart upload of the bucket, then gives Ceph the space back. */
export const emptyBucket = async (client: S3Client, bucket: string) => {
  while (true) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }))
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }))
    if (keys.length === 0) break
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }))
  }
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
  for (const u of uploads.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! }))
  }
  await collectGarbage()
}

export const deleteBucket = async (client: S3Client, bucket: string) => {
  await emptyBucket(client, bucket)
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined)
}

/** Ceph keeps deleted objects' data until its garbage collection runs (hours by default): run it now. */
export const collectGarbage = () =>
  new Promise<void>((resolve) => {
    if (!existsSync(s3.cephConf)) return resolve()
    execFile(
      "radosgw-admin",
      ["-c", s3.cephConf, "-n", "client.rgw", "--admin-socket", "", "gc", "process", "--include-all"],
      { timeout: 120_000 },
      () => resolve()
    )
  })

/** @aws-sdk/lib-storage's Upload: the SDK's own multipart upload (it reads parts into buffers). */
export const sdkUpload = async (client: S3Client, bucket: string, key: string, file: string, concurrency: number) => {
  const upload = new Upload({
    client,
    params: { Bucket: bucket, Key: key, Body: createReadStream(file), ContentType: "application/octet-stream" },
    partSize,
    queueSize: concurrency,
    leavePartsOnError: false
  })
  await upload.done()
}

/** A hand-written CreateMultipartUpload / UploadPart loop: each part streamed from the file, `concurrency` at once. */
export const handUpload = async (client: S3Client, bucket: string, key: string, file: string, concurrency: number) => {
  const size = statSync(file).size
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: "application/octet-stream" })
  )
  const count = Math.ceil(size / partSize)
  const etags = new Array<string>(count)
  let next = 0
  const lane = async () => {
    while (next < count) {
      const index = next++
      const start = index * partSize
      const end = Math.min(size, start + partSize)
      const out = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: index + 1,
          Body: createReadStream(file, { start, end: end - 1 }),
          ContentLength: end - start
        })
      )
      etags[index] = out.ETag!
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  await client.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }
    })
  )
}

// ---- the example server ----

export interface Server {
  readonly process: ChildProcess
  readonly url: string
  readonly stop: () => Promise<void>
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = http.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })

export const benchToken = "bench-token"

/**
 * The Node flags `npm start` runs the example server with (read from
 * package.json's start script), for running every server of a benchmark
 * the same way.
 */
export const startFlags: ReadonlyArray<string> = (JSON.parse(
  readFileSync(join(repoDir, "package.json"), "utf8")
) as { scripts: { start: string } }).scripts.start.split(/\s+/).filter((word) => word.startsWith("--"))

/**
 * examples/server.ts compiled ahead of time into one ES module (esbuild, the
 * packages left as imports), as a deployment would run it instead of tsx.
 * Written under node_modules/.cache so that the packages resolve.
 */
export const compiledExampleServer = (): Promise<string> =>
  compileServer(join(repoDir, "examples", "server.ts"), "server")

/** A server module compiled the way `npm start` compiles the example (see scripts/build-example.mjs). */
export const compileServer = async (entry: string, name: string): Promise<string> => {
  const { build } = await import("esbuild")
  const outfile = join(repoDir, "node_modules", ".cache", "effect-storage-bench", `${name}.mjs`)
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "warning"
  })
  return outfile
}

/**
 * `examples/server.ts` as its own process, its output in a log file: run
 * through tsx (as `npm run dev` runs it), or from `compiled`, built as `npm start` builds it (see compiledExampleServer).
 */
export const startExampleServer = async (
  env: NodeJS.ProcessEnv,
  options: {
    readonly execArgv?: ReadonlyArray<string>
    readonly compiled?: string | undefined
    /** Another checkout's `examples/server.ts` (`--baseline`), run through tsx. */
    readonly serverFile?: string | undefined
  } = {}
): Promise<Server> => {
  const port = await freePort()
  mkdirSync(workDir, { recursive: true })
  const logFile = join(workDir, `server-${port}.log`)
  const serverEnv = {
    PORT: String(port),
    STORAGE_TOKENS: `bench=${benchToken}`,
    STORAGE_MAX_UPLOAD_SIZE: "4GiB",
    STORAGE_PART_SIZE: `${partSize}`,
    ...env
  }
  const child = options.compiled === undefined
    ? spawnTs(options.serverFile ?? join(repoDir, "examples", "server.ts"), [], {
      env: serverEnv,
      execArgv: options.execArgv ?? [],
      stdio: openSync(logFile, "a")
    })
    : spawnNode(options.compiled, [], {
      env: serverEnv,
      execArgv: options.execArgv ?? [],
      stdio: openSync(logFile, "a")
    })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/healthz`, 120_000, child)
  log(`example server pid ${child.pid} on ${url} (log ${logFile})`)
  return { process: child, url, stop: () => stopProcess(child, 10_000) }
}

/** How a peer server runs: through tsx (the default), or compiled (`compileServer`) with these Node flags. */
export interface PeerStart {
  readonly compiled?: boolean | undefined
  readonly execArgv?: ReadonlyArray<string> | undefined
}

/** bench/upload/tus-server.ts: @tus/server + @tus/s3-store in front of the same S3 server. */
export const startTusServer = (bucket: string, start: PeerStart = {}): Promise<Server> =>
  startPeerServer("tus", "tus-server.ts", { TUS_BUCKET: bucket, TUS_PART_SIZE: String(partSize) }, start)

/** bench/upload/proxy-server.ts: a bare pass-through server, the floor for a server in the middle. */
export const startProxyServer = (bucket: string, start: PeerStart = {}): Promise<Server> =>
  startPeerServer("proxy", "proxy-server.ts", { PROXY_BUCKET: bucket }, start)

/** A server of bench/upload/ as its own process, pointed at the S3 server. */
const startPeerServer = async (
  name: string,
  module: string,
  env: NodeJS.ProcessEnv,
  start: PeerStart
): Promise<Server> => {
  const port = await freePort()
  const logFile = join(workDir, `${name}-${port}.log`)
  const entry = join(benchDir, "upload", module)
  const compiled = start.compiled === true ? await compileServer(entry, `peer-${name}`) : undefined
  const options: Parameters<typeof spawnNode>[2] = {
    execArgv: start.execArgv ?? [],
    env: {
      PORT: String(port),
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      ...env
    },
    stdio: openSync(logFile, "a")
  }
  const child = compiled === undefined ? spawnTs(entry, [], options) : spawnNode(compiled, [], options)
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/healthz`, 60_000, child)
  log(`${name} server pid ${child.pid} on ${url}`)
  return { process: child, url, stop: () => stopProcess(child, 10_000) }
}

// ---- the clients ----

interface Reply {
  readonly status: number
  readonly body: string
}

const request = (
  agent: http.Agent,
  method: string,
  url: string,
  headers: http.OutgoingHttpHeaders,
  body?: string | Uint8Array | Readable
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
      res.on("error", reject)
    })
    req.on("error", reject)
    if (body === undefined) req.end()
    else if (typeof body === "string" || body instanceof Uint8Array) req.end(body)
    else body.pipe(req)
  })

/** Runs `upload(i)` for i in 0..count-1, `concurrency` at a time; answers the results. */
const pooled = async <A>(count: number, concurrency: number, upload: (i: number) => Promise<A>): Promise<Array<A>> => {
  const results: Array<A> = []
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) results.push(await upload(next++))
  }))
  return results
}

/** `pooled` over one keep-alive agent of `concurrency` sockets, closed at the end. */
const pooledHttp = async <A>(
  count: number,
  concurrency: number,
  upload: (agent: http.Agent) => Promise<A>
): Promise<Array<A>> => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  try {
    return await pooled(count, concurrency, () => upload(agent))
  } finally {
    agent.destroy()
  }
}

/**
 * Small files through the storage API, `concurrency` uploads at once, each
 * the full exchange (open, one part, complete). Answers the keys.
 */
export const apiSmallFiles = (
  baseUrl: string,
  count: number,
  bytes: Uint8Array,
  concurrency: number
): Promise<Array<string>> => {
  const auth = { authorization: `Bearer ${benchToken}` }
  return pooledHttp(count, concurrency, async (agent) => {
    const opened = await request(
      agent,
      "POST",
      `${baseUrl}/storage/uploads`,
      { ...auth, "content-type": "application/json" },
      JSON.stringify({ filename: "avatar.png", size: bytes.length, contentType: "image/png" })
    )
    if (opened.status !== 201) throw new Error(`POST /storage/uploads: ${opened.status} ${opened.body}`)
    const ticket = JSON.parse(opened.body) as { claimId: string; key: string }
    const part = await request(
      agent,
      "PUT",
      `${baseUrl}/storage/uploads/${ticket.claimId}/parts/1`,
      { ...auth, "content-type": "application/octet-stream", "content-length": bytes.length },
      bytes
    )
    if (part.status !== 200) throw new Error(`PUT part: ${part.status} ${part.body}`)
    const done = await request(agent, "POST", `${baseUrl}/storage/uploads/${ticket.claimId}/complete`, auth)
    if (done.status !== 200) throw new Error(`POST complete: ${done.status} ${done.body}`)
    return ticket.key
  })
}

/** Small files through the API in one request each (`POST /storage/files`), `concurrency` at once. */
export const apiOneRequestFiles = (
  baseUrl: string,
  count: number,
  bytes: Uint8Array,
  concurrency: number
): Promise<Array<string>> => {
  const headers = { authorization: `Bearer ${benchToken}`, "content-type": "image/png", "content-length": bytes.length }
  return pooledHttp(count, concurrency, async (agent) => {
    const done = await request(agent, "POST", `${baseUrl}/storage/files?filename=avatar.png`, headers, bytes)
    if (done.status !== 201) throw new Error(`POST /storage/files: ${done.status} ${done.body}`)
    return (JSON.parse(done.body) as { key: string }).key
  })
}

/** The same small files straight to the bucket with the SDK's PutObject, `concurrency` at once. */
export const sdkSmallFiles = async (
  client: S3Client,
  bucket: string,
  prefix: string,
  count: number,
  bytes: Uint8Array,
  concurrency: number
): Promise<void> => {
  await pooled(count, concurrency, (i) =>
    client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${i}.png`, Body: bytes, ContentType: "image/png" })
    ))
}

/**
 * Uploads `length` bytes of `file` (from offset 0) through the storage API:
 * open the upload, PUT the parts `concurrency` at once (each streamed from
 * the file), complete. Answers the object's key.
 */
export const apiUpload = async (
  baseUrl: string,
  file: string,
  length: number,
  concurrency: number,
  filename = "bench.bin"
): Promise<string> => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const auth = { authorization: `Bearer ${benchToken}` }
  try {
    const opened = await request(
      agent,
      "POST",
      `${baseUrl}/storage/uploads`,
      { ...auth, "content-type": "application/json" },
      JSON.stringify({ filename, size: length, contentType: "application/octet-stream" })
    )
    if (opened.status !== 201) throw new Error(`POST /storage/uploads: ${opened.status} ${opened.body}`)
    const ticket = JSON.parse(opened.body) as { claimId: string; partSize: number; partCount: number; key: string }
    let next = 1
    const lane = async () => {
      while (next <= ticket.partCount) {
        const partNumber = next++
        const start = (partNumber - 1) * ticket.partSize
        const end = Math.min(length, start + ticket.partSize)
        const reply = await request(
          agent,
          "PUT",
          `${baseUrl}/storage/uploads/${ticket.claimId}/parts/${partNumber}`,
          { ...auth, "content-type": "application/octet-stream", "content-length": end - start },
          createReadStream(file, { start, end: end - 1 })
        )
        if (reply.status !== 200) throw new Error(`PUT part ${partNumber}: ${reply.status} ${reply.body}`)
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, ticket.partCount) }, lane))
    const done = await request(agent, "POST", `${baseUrl}/storage/uploads/${ticket.claimId}/complete`, auth)
    if (done.status !== 200) throw new Error(`POST complete: ${done.status} ${done.body}`)
    const info = JSON.parse(done.body) as { key: string; size: number }
    if (info.size !== length) throw new Error(`the stored object has ${info.size} bytes, expected ${length}`)
    return info.key
  } finally {
    agent.destroy()
  }
}

/** The same client protocol against bench/upload/proxy-server.ts. */
export const proxyUpload = async (baseUrl: string, key: string, file: string, length: number, concurrency: number) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  try {
    const q = `key=${encodeURIComponent(key)}`
    const opened = await request(agent, "POST", `${baseUrl}/uploads?${q}`, {})
    const { uploadId } = JSON.parse(opened.body) as { uploadId: string }
    const count = Math.ceil(length / partSize)
    const etags = new Array<string>(count)
    let next = 1
    const lane = async () => {
      while (next <= count) {
        const partNumber = next++
        const start = (partNumber - 1) * partSize
        const end = Math.min(length, start + partSize)
        const reply = await request(
          agent,
          "PUT",
          `${baseUrl}/uploads/${encodeURIComponent(uploadId)}/parts/${partNumber}?${q}`,
          { "content-length": end - start },
          createReadStream(file, { start, end: end - 1 })
        )
        if (reply.status !== 200) throw new Error(`proxy part ${partNumber}: ${reply.status} ${reply.body}`)
        etags[partNumber - 1] = (JSON.parse(reply.body) as { etag: string }).etag
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
    const done = await request(
      agent,
      "POST",
      `${baseUrl}/uploads/${encodeURIComponent(uploadId)}/complete?${q}`,
      { "content-type": "application/json" },
      JSON.stringify(etags)
    )
    if (done.status !== 200) throw new Error(`proxy complete: ${done.status} ${done.body}`)
  } finally {
    agent.destroy()
  }
}

/** tus-js-client from Node: `chunkSize` bytes per PATCH, one after the other (no parallel uploads: see README). */
export const tusUpload = (
  baseUrl: string,
  file: string,
  length: number,
  chunkSize: number,
  /** Another endpoint (effect-storage's: `/storage/tus/` with the bench token). */
  target: { readonly path: string; readonly headers?: Record<string, string> } = { path: "/files/" }
): Promise<void> =>
  new Promise((resolve, reject) => {
    const upload = new tus.Upload(createReadStream(file, { start: 0, end: length - 1 }), {
      endpoint: `${baseUrl}${target.path}`,
      headers: target.headers ?? {},
      chunkSize,
      uploadSize: length,
      retryDelays: [],
      metadata: { filename: "bench.bin", filetype: "application/octet-stream" },
      onError: reject,
      onSuccess: () => resolve()
    })
    upload.start()
  })

/** Runs `f`, answering its duration in ms. */
export const timed = async (f: () => Promise<unknown>): Promise<number> => {
  const started = nowMs()
  await f()
  return nowMs() - started
}
