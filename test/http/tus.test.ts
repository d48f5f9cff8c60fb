/**
 * The tus endpoint judged by tus-js-client (unmodified, in Node): tus 1.0
 * and the IETF draft, on SQLite + the filesystem backend and on
 * PostgreSQL + Ceph RGW.
 */
import { assert } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createHash, randomBytes } from "node:crypto"
import { createReadStream, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tus from "tus-js-client"
import { inject } from "vitest"
import { tusPath } from "../../src/http/Tus.js"
import { DeleteWorker } from "../../src/layers/DeleteWorker.js"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { resumableTailPrefix } from "../../src/schema/Naming.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { describeEachDialect, missingServer } from "../support/databases.js"
import { baseUrl, ChecksumHttpStack, runUpload, tokens, tusServerLayer } from "./tusHarness.js"

const MiB = 1024 * 1024
/** Divides neither the filesystem's 4 MiB parts nor S3's 5 MiB ones. */
const chunkSize = 3 * MiB + 333 * 1024 + 7

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** A download through the storage API, as alice. */
const download = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url, { headers: { Authorization: `Bearer ${tokens.alice}` } })
    assert.strictEqual(response.status, 200)
    return new Uint8Array(await response.arrayBuffer())
  })

type Protocol = "tus-v1" | "ietf-draft-03" | "ietf-draft-05"

/**
 * Uploads `size` random bytes from a file with tus-js-client, aborts the
 * upload in the middle of its third request, resumes it from its stored
 * URL with a new `Upload`, and checks the result byte for byte.
 */
const abortAndResume = (protocol: Protocol, size: number) =>
  Effect.gen(function*() {
    const url = yield* baseUrl
    const data = randomBytes(size)
    const dir = mkdtempSync(join(tmpdir(), "tus-client-"))
    const path = join(dir, "report.pdf")
    writeFileSync(path, data)
    // The third request stalls half-way: the client aborts it in flight.
    const stack = new ChecksumHttpStack(3)
    const options = {
      endpoint: `${url}${tusPath}`,
      chunkSize,
      protocol,
      retryDelays: null,
      headers: { Authorization: `Bearer ${tokens.alice}` },
      metadata: { filename: "report.pdf", filetype: "application/pdf" },
      httpStack: stack
    } as const

    // First run: abort in the middle of the third request.
    let stored: string | null = null
    yield* Effect.async<void, Error>((resume) => {
      const first: tus.Upload = new tus.Upload(createReadStream(path), {
        ...options,
        onUploadUrlAvailable: () => {
          stored = first.url
        },
        onProgress: (sent) => {
          if (sent > 2 * chunkSize + chunkSize / 4 && stored !== null) {
            first.options.onProgress = null
            void first.abort().then(() => resume(Effect.void))
          }
        },
        onSuccess: () => resume(Effect.fail(new Error("the upload finished before it was aborted"))),
        onError: (error) => resume(Effect.fail(error))
      })
      first.start()
    })
    assert.isNotNull(stored)
    const uploadUrl: string = stored!
    assert.match(uploadUrl, new RegExp(`${tusPath}[0-9a-f-]+$`))

    // What the server acknowledged: the two whole requests, never a byte of the aborted one.
    const head = yield* Effect.promise(() =>
      fetch(uploadUrl, {
        method: "HEAD",
        headers: {
          Authorization: `Bearer ${tokens.alice}`,
          ...(protocol === "tus-v1"
            ? { "Tus-Resumable": "1.0.0" }
            : { "Upload-Draft-Interop-Version": protocol === "ietf-draft-03" ? "5" : "6" })
        }
      })
    )
    assert.strictEqual(head.headers.get("upload-offset"), String(2 * chunkSize))
    assert.strictEqual(head.headers.get("cache-control"), "no-store")

    // Second run: a new Upload resumes from the stored URL.
    const resumed = new tus.Upload(createReadStream(path), {
      ...options,
      httpStack: new ChecksumHttpStack(),
      // As tus-js-client's defaults do: a 423 (the aborted request still finishing on the server) is retried.
      retryDelays: [200, 1000, 3000],
      uploadUrl
    })
    let resumedFrom = -1
    resumed.options.onChunkComplete = (chunk, accepted) => {
      if (resumedFrom < 0) resumedFrom = accepted - chunk
    }
    const done = yield* runUpload(resumed)
    assert.strictEqual(resumedFrom, 2 * chunkSize, "resumed where the server stood")
    assert.strictEqual(stack.checksummed, 3)
    assert.isAbove((resumed.options.httpStack as ChecksumHttpStack).checksummed, 1)
    const key = done.lastResponse.getHeader("Storage-Key")
    assert.isString(key)
    assert.match(key!, /^priv\/.+\.pdf$/)

    // The business record adopts it exactly as any upload: uploaded, byte-identical.
    const claim = yield* (yield* ClaimStore).getByKey(key!)
    assert.strictEqual(claim.status, "uploaded")
    assert.strictEqual(claim.contentType, "application/pdf")
    const file = yield* download(`${url}/storage/files/${key}`)
    assert.strictEqual(file.length, size)
    assert.strictEqual(sha256(file), sha256(data))
    const json = yield* Effect.promise(() =>
      fetch(uploadUrl, { headers: { Authorization: `Bearer ${tokens.alice}` } }).then((r) => r.json())
    )
    assert.deepInclude(json, { key, size, offset: size, status: "uploaded", originalFilename: "report.pdf" })

    // Every tail object was queued for deletion: once the worker ran, none is left.
    yield* (yield* DeleteWorker).runOnce
    const objects = yield* ObjectStorage
    const tails = yield* Stream.runCollect(objects.listObjects(resumableTailPrefix))
    assert.deepStrictEqual(Chunk.toArray(tails).map((o) => o.key), [])
    const multipart = Option.getOrThrow(objects.multipart)
    const sessions = yield* Stream.runCollect(multipart.listMultipartUploads())
    assert.isFalse(Chunk.some(sessions, (s) => s.key === key), "the session was completed")
  })

const suite = (it: Vitest.MethodsNonLive<any>) => {
  it.effect(
    "tus 1.0: a 20 MiB file in odd chunks with checksums, aborted mid-request and resumed from its URL",
    () => abortAndResume("tus-v1", 20 * MiB),
    { timeout: 120_000 }
  )

  it.effect(
    "IETF draft (interop 6, draft-05): aborted mid-request, resumed, byte-identical",
    () => abortAndResume("ietf-draft-05", 12 * MiB),
    { timeout: 120_000 }
  )

  it.effect(
    "IETF draft (interop 5, draft-03): aborted mid-request, resumed, byte-identical",
    () => abortAndResume("ietf-draft-03", 11 * MiB + 5),
    { timeout: 120_000 }
  )
}

describeEachDialect(
  "tus endpoint (SQLite + filesystem)",
  (database) =>
    tusServerLayer(database, FileSystemObjectStorage.layer({ root: mkdtempSync(join(tmpdir(), "tus-objects-")) })),
  (it) => suite(it),
  ["sqlite"],
  { liveClock: true }
)

const ceph = inject("servers").s3.ceph
if (ceph === undefined) {
  missingServer("tus endpoint (PostgreSQL + Ceph RGW)", "Ceph RGW (scripts/s3/all.sh up)")
} else {
  describeEachDialect(
    "tus endpoint (PostgreSQL + Ceph RGW)",
    (database) =>
      tusServerLayer(
        database,
        S3ObjectStorage.layer({
          bucket: `tus-${randomBytes(4).toString("hex")}`,
          endpoint: ceph.endpoint,
          credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
          forcePathStyle: true,
          createBucket: true,
          partSize: S3ObjectStorage.minimumPartSize
        })
      ),
    (it) => suite(it),
    ["pg"],
    { liveClock: true }
  )
}
