/**
 * An `ObjectStorage` on Amazon S3 or an S3-compatible server (checked
 * against Ceph RADOS Gateway and OpenStack Swift's s3api), through
 * `@aws-sdk/client-s3`.
 *
 * - Every request is sent with the fiber's abort signal: interrupting a
 *   call aborts its HTTP request.
 * - Bodies are streamed. A stream of known size goes straight into the
 *   request with that `Content-Length`; a stream of unknown size is first
 *   spooled to a temporary file (never to memory), then uploaded from it.
 *   `putObject` is one `PutObject`, so it is bounded by S3's 5 GiB limit for
 *   a single upload; larger objects go through `multipart`.
 * - The multipart contract is checked here, since S3 servers accept gaps,
 *   and both Ceph and Swift accept a second `CompleteMultipartUpload` of a
 *   finished session (Swift even accepts parts for it): a session counts as
 *   open only while `ListMultipartUploads` shows it, `putPart` and
 *   `completeMultipart` look there first, and completion checks the stored
 *   parts' sizes and ETags (from `ListParts`) before it asks S3.
 * - S3 user metadata keys come back lowercased: that is S3's rule.
 *
 * @since 0.1.0
 */
import type * as S3 from "@aws-sdk/client-s3"
import * as NodeStream from "@effect/platform-node/NodeStream"
import type * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash, createHmac, randomUUID } from "node:crypto"
import { createReadStream } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Readable } from "node:stream"
import { removeQuietly, writeNewFile } from "../../internal/files.js"
import { unquoteETag } from "../../internal/objectStorage.js"
import { importOptional } from "../../internal/optionalPeer.js"
import {
  type DriverNotInstalled,
  isStorageBackendError,
  ObjectNotFound,
  PartETagMismatch,
  PartNumberOutOfRange,
  PartTooSmall,
  StorageBackendError,
  UploadSessionNotFound
} from "../../schema/Errors.js"
import type { ObjectInfo } from "../../schema/Models.js"
import { defaultContentType } from "../../schema/Naming.js"
import * as ObjectStorage from "../../services/ObjectStorage.js"
import type {
  CompleteMultipartInput,
  DriverBody,
  DriverPutObjectInput,
  DriverPutPartInput,
  GetObjectInput,
  MultipartDriver,
  MultipartSession,
  MultipartUploadSummary,
  ObjectStorageDriver,
  ObjectSummary,
  PartInfo,
  PresignedPost,
  PresignedRequest,
  Presigner,
  StoredPart
} from "../../services/ObjectStorage.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface S3ObjectStorageOptions {
  readonly bucket: string
  /** The server's URL, for S3-compatible servers; AWS's own endpoint when absent. */
  readonly endpoint?: string | undefined
  /** `us-east-1` when absent and an endpoint is given; else the SDK's default chain. */
  readonly region?: string | undefined
  /** The SDK's default credential chain (environment, profile, ...) when absent. */
  readonly credentials?: {
    readonly accessKeyId: string
    readonly secretAccessKey: string
    readonly sessionToken?: string | undefined
  } | undefined
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
  readonly forcePathStyle?: boolean | undefined
  /** The multipart part size: 16 MiB when absent, zero or negative; raised to S3's 5 MiB minimum. */
  readonly partSize?: number | undefined
  /** Create the bucket when it is missing, while the layer is built. Default false. */
  readonly createBucket?: boolean | undefined
  /** Where bodies of unknown size are spooled before upload; the OS temp folder when absent. */
  readonly spoolDirectory?: string | undefined
  /**
   * Apply a bucket CORS rule for these origins (the app's own, e.g.
   * `https://app.example.com`) while the layer is built, so that browsers
   * can send direct uploads (PUT parts, POST forms) and read the `ETag`
   * header. It replaces the bucket's CORS configuration. Absent or empty:
   * the bucket's CORS is left alone.
   */
  readonly corsOrigins?: ReadonlyArray<string> | undefined
}

/**
 * The default part size: 16 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPartSize = 16 * 1024 * 1024

/**
 * S3's smallest allowed non-final part: 5 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const minimumPartSize = 5 * 1024 * 1024

/**
 * S3's most parts per object: 10,000.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxPartCount = 10_000

/**
 * S3's largest single `PutObject`: 5 GiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxSingleUploadSize = 5 * 1024 * 1024 * 1024

/**
 * Builds a backend on a new S3 client, destroyed with the scope. With
 * `createBucket`, the bucket is created when missing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: S3ObjectStorageOptions
): Effect.Effect<ObjectStorage.ObjectStorage["Type"], StorageBackendError | DriverNotInstalled, Scope.Scope> =>
  Effect.gen(function*() {
    const sdk = yield* loadSdk
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => makeClient(sdk, options)),
      (client) => Effect.sync(() => client.destroy())
    )
    const requested = options.partSize !== undefined && options.partSize > 0 ? options.partSize : defaultPartSize
    if (requested < minimumPartSize) {
      yield* Effect.logWarning(
        `S3ObjectStorage: part size ${requested} is below S3's minimum; using ${minimumPartSize}`
      )
    }
    const backend = makeDriver({
      sdk,
      client,
      bucketUrl: bucketUrl(options),
      bucket: options.bucket,
      partSize: Math.max(requested, minimumPartSize),
      spoolDirectory: options.spoolDirectory ?? tmpdir()
    })
    if (options.createBucket === true) yield* backend.ensureBucket
    if (options.corsOrigins !== undefined && options.corsOrigins.length > 0) {
      yield* backend.applyCors(options.corsOrigins)
    }
    return ObjectStorage.make(backend.driver)
  })

/**
 * A layer with an S3 backend; the client lives as long as the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: S3ObjectStorageOptions
): Layer.Layer<ObjectStorage.ObjectStorage, StorageBackendError | DriverNotInstalled> =>
  Layer.scoped(ObjectStorage.ObjectStorage, make(options))

// ---- internal ----

type Sdk = typeof S3

/** The AWS SDK, an optional peer dependency: loaded only when an S3 backend is built. */
const loadSdk: Effect.Effect<Sdk, DriverNotInstalled> = importOptional(
  "@aws-sdk/client-s3",
  "3.1175.0",
  "The S3 backend",
  () => import("@aws-sdk/client-s3")
)

/**
 * The bucket's URL, where a form upload is posted: `endpoint/bucket` for
 * path-style servers, else `bucket.endpoint` (AWS's regional endpoint when
 * no endpoint is given).
 */
const bucketUrl = (options: S3ObjectStorageOptions): string => {
  const region = options.region ?? "us-east-1"
  const endpoint = new URL(options.endpoint ?? `https://s3.${region}.amazonaws.com`)
  const base = endpoint.pathname.replace(/\/+$/, "")
  if (options.forcePathStyle === true) return `${endpoint.origin}${base}/${encodeURIComponent(options.bucket)}`
  return `${endpoint.protocol}//${options.bucket}.${endpoint.host}${base}`
}

/** `20261201T203329Z`: SigV4's timestamp. */
const amzDate = (date: Date) => date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "")

/** RFC 3986 percent-encoding, as SigV4 wants it. */
const escapeUri = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data, "utf8").digest()

const makeClient = (sdk: Sdk, options: S3ObjectStorageOptions): S3.S3Client => {
  const config: S3.S3ClientConfig = {
    // The SDK's default ("when supported") sends streamed bodies as
    // aws-chunked with a trailing checksum, which Ceph (411) and Swift (501)
    // refuse. Checksums are then sent only where S3 requires one.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  }
  if (options.endpoint !== undefined) config.endpoint = options.endpoint
  const region = options.region ?? (options.endpoint !== undefined ? "us-east-1" : undefined)
  if (region !== undefined) config.region = region
  if (options.forcePathStyle !== undefined) config.forcePathStyle = options.forcePathStyle
  if (options.credentials !== undefined) {
    const { accessKeyId, secretAccessKey, sessionToken } = options.credentials
    config.credentials = sessionToken === undefined
      ? { accessKeyId, secretAccessKey }
      : { accessKeyId, secretAccessKey, sessionToken }
  }
  const client = new sdk.S3Client(config)
  addDeleteObjectsContentMd5(client)
  return client
}

/**
 * Swift's s3api refuses `DeleteObjects` without `Content-MD5`, which SDK v3
 * no longer sends (it sends a CRC32 checksum instead). Added after
 * serialisation and before signing, so the header is signed too.
 */
const addDeleteObjectsContentMd5 = (client: S3.S3Client) =>
  client.middlewareStack.add(
    (next, context) => (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown }
      const body = request.body
      if (
        (context.commandName === "DeleteObjectsCommand" || context.commandName === "PutBucketCorsCommand") &&
        request.headers !== undefined &&
        (typeof body === "string" || body instanceof Uint8Array)
      ) {
        request.headers["content-md5"] = createHash("md5").update(body).digest("base64")
      }
      return next(args)
    },
    { step: "build", name: "effectStorageDeleteObjectsContentMd5" }
  )

interface S3Failure {
  readonly code: string
  readonly status: number | undefined
  readonly message: string
}

/** The S3 error code and HTTP status of an SDK error (`NotFound`/403 with no code for HEAD requests). */
const s3Failure = (error: unknown): S3Failure => {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    readonly name?: unknown
    readonly Code?: unknown
    readonly message?: unknown
    readonly $metadata?: { readonly httpStatusCode?: unknown }
  }
  const code = typeof e.Code === "string" ? e.Code : typeof e.name === "string" ? e.name : "Unknown"
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined
  const message = typeof e.message === "string" ? e.message : String(error)
  return { code, status, message }
}

const accessDeniedCodes: ReadonlyArray<string> = [
  "AccessDenied",
  "AllAccessDisabled",
  "AccountProblem",
  "ExpiredToken",
  "InvalidAccessKeyId",
  "InvalidToken",
  "SignatureDoesNotMatch"
]

/** Failures that the same request can never turn into a success. */
const invalidCodes: ReadonlyArray<string> = [
  "BadDigest",
  "EntityTooLarge",
  "IncompleteBody",
  "InvalidArgument",
  "InvalidBucketName",
  "InvalidDigest",
  "InvalidObjectName",
  "InvalidRequest",
  "KeyTooLongError",
  "MalformedXML",
  "MetadataTooLarge",
  "MissingContentLength",
  "NotImplemented"
]

const backendError = (operation: string, cause: unknown): StorageBackendError => {
  const failure = s3Failure(cause)
  const reason = failure.status === 403 || accessDeniedCodes.includes(failure.code)
    ? "access_denied"
    : failure.code === "NoSuchBucket"
    ? "bucket_not_found"
    : invalidCodes.includes(failure.code)
    ? "invalid"
    : "transient"
  // Ceph leaves the message out ("UnknownError"); the code says it all then.
  const detail = failure.message !== "" && failure.message !== "UnknownError" ? `: ${failure.message}` : ""
  const status = failure.status === undefined ? "" : ` (HTTP ${failure.status})`
  const message = `${operation}: ${failure.code}${status}${detail}`
  return new StorageBackendError({ operation, reason, message, cause })
}

/** How long a session seen open is trusted to stay open, for parts (see `knownOpen`). */
const openSessionMemory = 30_000

/** A bounded memory of (key, upload id) pairs seen open, each for `ttl` milliseconds. */
const makeSessionMemory = (ttl: number) => {
  const seen = new Map<string, number>()
  const id = (key: string, uploadId: string) => `${uploadId}\u0000${key}`
  return {
    add: (key: string, uploadId: string) => {
      if (seen.size >= 10_000) seen.delete(seen.keys().next().value!)
      seen.set(id(key, uploadId), Date.now() + ttl)
    },
    has: (key: string, uploadId: string) => (seen.get(id(key, uploadId)) ?? 0) > Date.now(),
    forget: (key: string, uploadId: string) => void seen.delete(id(key, uploadId))
  }
}

/** The failure of one key of a `DeleteObjects` answer, classified like a failed request. */
const keyFailure = (code: string, message: string): StorageBackendError =>
  new StorageBackendError({
    operation: "deleteObjects",
    reason: accessDeniedCodes.includes(code)
      ? "access_denied"
      : code === "NoSuchBucket"
      ? "bucket_not_found"
      : invalidCodes.includes(code)
      ? "invalid"
      : "transient",
    message: `deleteObjects: ${code}${message === "" ? "" : `: ${message}`}`
  })

/** Whether a failure is a `StorageBackendError` caused by one of the S3 codes. */
const causedBy = (...codes: ReadonlyArray<string>) => (error: unknown): boolean =>
  isStorageBackendError(error) && codes.includes(s3Failure(error.cause).code)

const causedByStatus = (status: number) => (error: unknown): boolean =>
  isStorageBackendError(error) && s3Failure(error.cause).status === status

/**
 * A payload ready for the SDK: bytes, or a Node stream of exactly `length`
 * bytes. `failed` aborts when the body fails: the SDK pipes a stream body
 * into the request, and a pipe does not end its destination when the source
 * fails, so the request must be aborted or it waits for the missing bytes.
 */
interface Payload {
  readonly body: Readable | Uint8Array
  readonly length: number
  readonly failed: AbortSignal
}

const neverAborted = new AbortController().signal

/** The request's abort signal: the fiber's interruption, or the body's failure. */
const uploadSignal = (interrupted: AbortSignal, payload: Payload) => AbortSignal.any([interrupted, payload.failed])

interface BackendConfig {
  readonly sdk: Sdk
  readonly client: S3.S3Client
  readonly bucketUrl: string
  readonly bucket: string
  readonly partSize: number
  readonly spoolDirectory: string
}

const makeDriver = ({ bucket, bucketUrl, client, partSize, sdk, spoolDirectory }: BackendConfig) => {
  /**
   * One SDK call: interruption aborts the request; `refine` turns the S3
   * codes an operation knows into its typed errors, the rest become
   * `StorageBackendError`.
   */
  const call = <A, E = never>(
    operation: string,
    send: (abortSignal: AbortSignal) => Promise<A>,
    refine?: (failure: S3Failure) => E | undefined
  ): Effect.Effect<A, E | StorageBackendError> =>
    Effect.tryPromise({
      try: send,
      catch: (cause) => refine?.(s3Failure(cause)) ?? backendError(operation, cause)
    })

  const sessionNotFound = (uploadId: string) =>
    new UploadSessionNotFound({ message: `no open multipart upload ${uploadId}` })

  const bucketMissing = (operation: string) =>
    new StorageBackendError({ operation, reason: "bucket_not_found", message: `${operation}: no bucket ${bucket}` })

  const bucketExists = (operation: string) =>
    call(operation, (abortSignal) => client.send(new sdk.HeadBucketCommand({ Bucket: bucket }), { abortSignal })).pipe(
      Effect.as(true),
      Effect.catchIf(causedByStatus(404), () => Effect.succeed(false))
    )

  const ensureBucket = Effect.gen(function*() {
    if (yield* bucketExists("createBucket")) return
    yield* call(
      "createBucket",
      (abortSignal) => client.send(new sdk.CreateBucketCommand({ Bucket: bucket }), { abortSignal })
    ).pipe(
      Effect.catchIf(causedBy("BucketAlreadyOwnedByYou"), () => Effect.void)
    )
  })

  /**
   * One CORS rule for direct uploads from the app's origins: PUT (parts),
   * POST (forms), GET and HEAD, any request header, and `ETag` exposed (the
   * browser reads each part's ETag from the answer).
   */
  const applyCors = (origins: ReadonlyArray<string>) =>
    call("applyCors", (abortSignal) =>
      client.send(
        new sdk.PutBucketCorsCommand({
          Bucket: bucket,
          CORSConfiguration: {
            CORSRules: [{
              AllowedOrigins: [...origins],
              AllowedMethods: ["GET", "HEAD", "PUT", "POST"],
              AllowedHeaders: ["*"],
              ExposeHeaders: ["ETag"],
              MaxAgeSeconds: 3600
            }]
          }
        }),
        { abortSignal }
      )).pipe(
        Effect.mapError((error) =>
          causedBy("NotImplemented")(error)
            ? new StorageBackendError({
              operation: "applyCors",
              reason: "invalid",
              message: "applyCors: this S3 server does not implement bucket CORS (Swift's s3api: set the " +
                "container's CORS metadata through the Swift API instead)",
              cause: error
            })
            : error
        ),
        Effect.asVoid
      )

  /**
   * HEAD answers a bare 404 both for a missing key and a missing bucket;
   * only on that 404 is the bucket asked about, to tell them apart.
   */
  const headObject = (operation: string, key: string) =>
    call(
      operation,
      (abortSignal) => client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })
    )
      .pipe(
        Effect.catchIf(
          causedByStatus(404),
          () =>
            Effect.flatMap(bucketExists(operation), (exists) =>
              Effect.fail(exists ? new ObjectNotFound({ key }) : bucketMissing(operation)))
        ),
        Effect.map((out): ObjectInfo => ({
          key,
          size: out.ContentLength ?? 0,
          eTag: unquoteETag(out.ETag),
          contentType: out.ContentType ?? defaultContentType,
          lastModified: toUtc(out.LastModified),
          metadata: out.Metadata ?? {}
        }))
      )

  /**
   * Streams a body into a Node `Readable` for the SDK. The body's own
   * failure (its `E`, or a length other than the declared one) is what the
   * call fails with, not the SDK's report of an aborted upload.
   */
  const withStreamedBody = <E, A, E2>(
    stream: Stream.Stream<Uint8Array, E>,
    length: number,
    use: (payload: Payload) => Effect.Effect<A, E2>
  ): Effect.Effect<A, E | E2> =>
    Effect.suspend(() => {
      let bodyFailure: Cause.Cause<E> | undefined
      const failed = new AbortController()
      const readable = NodeStream.toReadableNever(Stream.catchAllCause(stream, (cause) => {
        bodyFailure = cause
        failed.abort()
        return Stream.fail(new Error("the body stream failed"))
      }))
      // The failure is reported from `bodyFailure`; without a listener of its
      // own, an "error" the SDK no longer listens for would crash the process.
      readable.on("error", () => {})
      return use({ body: readable, length, failed: failed.signal }).pipe(
        Effect.catchAll((error): Effect.Effect<never, E | E2> =>
          bodyFailure === undefined ? Effect.fail(error) : Effect.failCause(bodyFailure)
        ),
        Effect.ensuring(Effect.sync(() => readable.destroy()))
      )
    })

  /** Spools a body of unknown length to a temporary file, then uploads from that file. */
  const withSpooledBody = <E, A, E2>(
    operation: string,
    stream: Stream.Stream<Uint8Array, E>,
    use: (payload: Payload) => Effect.Effect<A, E2>
  ): Effect.Effect<A, E | E2 | StorageBackendError> =>
    Effect.acquireUseRelease(
      Effect.sync(() => join(spoolDirectory, `effect-storage-spool-${randomUUID()}`)),
      (path) =>
        Effect.flatMap(writeNewFile(operation, path, stream), ({ size }) =>
          Effect.suspend(() => {
            const readable = createReadStream(path)
            return use({ body: readable, length: size, failed: neverAborted }).pipe(
              Effect.ensuring(Effect.sync(() => readable.destroy()))
            )
          })),
      removeQuietly
    )

  /** The body in the form the SDK needs, its length known (`make` checked it against `size`). */
  const withPayload = <E, A, E2>(
    operation: string,
    body: DriverBody<E>,
    size: number | undefined,
    use: (payload: Payload) => Effect.Effect<A, E2>
  ): Effect.Effect<A, E | E2 | StorageBackendError> =>
    body instanceof Uint8Array
      ? use({ body, length: body.byteLength, failed: neverAborted })
      : size === undefined
      ? withSpooledBody(operation, body, use)
      : withStreamedBody(body, size, use)

  const putObject = <E>(input: DriverPutObjectInput<E>) =>
    Effect.gen(function*() {
      const { contentType } = input
      const metadata = { ...input.metadata }
      const sent = yield* withPayload("putObject", input.body, input.size, (payload) =>
        payload.length > maxSingleUploadSize
          ? Effect.fail(
            new StorageBackendError({
              operation: "putObject",
              reason: "invalid",
              message: `putObject: ${payload.length} bytes is above S3's single-upload limit; use multipart`
            })
          )
          : call("putObject", (abortSignal) =>
            client.send(
              new sdk.PutObjectCommand({
                Bucket: bucket,
                Key: input.key,
                Body: payload.body,
                ContentLength: payload.length,
                ContentType: contentType,
                Metadata: metadata
              }),
              { abortSignal: uploadSignal(abortSignal, payload) }
            )).pipe(Effect.map((out) => ({ eTag: unquoteETag(out.ETag), size: payload.length }))))
      // PutObject answers no date; the time of its answer stands in for it.
      const lastModified = yield* DateTime.now
      return { key: input.key, size: sent.size, eTag: sent.eTag, contentType, lastModified, metadata }
    })

  /** An empty read: the range starts at or past the end (S3 answers 416 to that). */
  const emptyRead = (key: string) => Effect.map(headObject("getObject", key), (info) => ({ info, body: Stream.empty }))

  const getObject = Effect.fnUntraced(function*(input: GetObjectInput) {
    const range = input.range === undefined ? undefined : `bytes=${input.range.start}-${input.range.end ?? ""}`
    return yield* call(
      "getObject",
      (abortSignal) =>
        client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: input.key, Range: range }), { abortSignal }),
      (failure) => failure.code === "NoSuchKey" ? new ObjectNotFound({ key: input.key }) : undefined
    ).pipe(
      Effect.map((out) => {
        const info: ObjectInfo = {
          key: input.key,
          size: totalSize(out.ContentRange) ?? out.ContentLength ?? 0,
          eTag: unquoteETag(out.ETag),
          contentType: out.ContentType ?? defaultContentType,
          lastModified: toUtc(out.LastModified),
          metadata: out.Metadata ?? {}
        }
        const body = out.Body
        if (!(body instanceof Readable)) {
          return { info, body: Stream.fail(backendError("getObject", new Error("the response has no body stream"))) }
        }
        // Run once, the stream destroys the response (and frees its socket) when it ends or is interrupted.
        return {
          info,
          body: NodeStream.fromReadable<StorageBackendError>(() => body, (cause) => backendError("getObject", cause))
        }
      }),
      Effect.catchIf(causedBy("InvalidRange"), () => emptyRead(input.key))
    )
  })

  const statObject = (key: string) => headObject("statObject", key)

  const deleteObject = (key: string) =>
    call(
      "deleteObject",
      (abortSignal) => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })
    ).pipe(
      // S3 answers 204 for a missing key; some servers answer NoSuchKey.
      Effect.catchIf(causedBy("NoSuchKey"), () => Effect.void)
    )

  /**
   * One `DeleteObjects` request of at most 1,000 keys; answers the keys S3
   * could not delete, each with why. A failed request fails all of its keys.
   */
  const deleteBatch = (
    keys: ReadonlyArray<string>
  ): Effect.Effect<ReadonlyArray<readonly [string, StorageBackendError]>> =>
    call("deleteObjects", (abortSignal) =>
      client.send(
        new sdk.DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true }
        }),
        { abortSignal }
      )).pipe(
        Effect.map((out) =>
          (out.Errors ?? [])
            .filter((e) => e.Code !== "NoSuchKey")
            .map((e) => [e.Key ?? "", keyFailure(e.Code ?? "Unknown", e.Message ?? "")] as const)
        ),
        Effect.catchAll((error) => Effect.succeed(keys.map((key) => [key, error] as const)))
      )

  const deleteObjects = (all: ReadonlyArray<string>) =>
    Effect.map(
      Effect.forEach(Chunk.chunksOf(Chunk.unsafeFromArray(all), 1000), (batch) =>
        deleteBatch(Chunk.toReadonlyArray(batch)), { concurrency: 4 }),
      (failures) =>
        new Map(failures.flat()) as ReadonlyMap<string, StorageBackendError>
    )

  const copyObject = Effect.fnUntraced(function*(from: string, to: string) {
    // S3 refuses a copy onto itself that changes nothing; it is a no-op.
    if (from === to) return yield* headObject("copyObject", from)
    yield* call(
      "copyObject",
      (abortSignal) =>
        client.send(new sdk.CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: copySource(bucket, from) }), {
          abortSignal
        }),
      (failure) => failure.code === "NoSuchKey" ? new ObjectNotFound({ key: from }) : undefined
    )
    // The copy's answer lacks size and content type; read them back.
    return yield* headObject("copyObject", to)
  })

  const listObjects = (prefix?: string): Stream.Stream<ObjectSummary, StorageBackendError> =>
    Stream.paginateChunkEffect(undefined as string | undefined, (token) =>
      Effect.map(
        call("listObjects", (abortSignal) =>
          client.send(
            new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }),
            { abortSignal }
          )),
        (out) =>
          [
            Chunk.fromIterable((out.Contents ?? []).map((o): ObjectSummary => ({
              key: o.Key ?? "",
              size: o.Size ?? 0,
              eTag: unquoteETag(o.ETag),
              lastModified: toUtc(o.LastModified)
            }))),
            out.IsTruncated === true && out.NextContinuationToken !== undefined
              ? Option.some(out.NextContinuationToken)
              : Option.none()
          ] as const
      ))

  // ---- multipart ----

  interface UploadsPage {
    readonly uploads: ReadonlyArray<MultipartUploadSummary>
    readonly next: Option.Option<{ readonly keyMarker: string; readonly uploadIdMarker: string }>
  }

  const listUploadsPage = (
    prefix: string | undefined,
    marker: { readonly keyMarker: string; readonly uploadIdMarker: string } | undefined
  ): Effect.Effect<UploadsPage, StorageBackendError> =>
    Effect.map(
      call("listMultipartUploads", (abortSignal) =>
        client.send(
          new sdk.ListMultipartUploadsCommand({
            Bucket: bucket,
            Prefix: prefix,
            KeyMarker: marker?.keyMarker,
            UploadIdMarker: marker?.uploadIdMarker,
            MaxUploads: 1000
          }),
          { abortSignal }
        )),
      (out) => ({
        uploads: (out.Uploads ?? []).map((u): MultipartUploadSummary => ({
          key: u.Key ?? "",
          uploadId: u.UploadId ?? "",
          initiated: toUtc(u.Initiated)
        })),
        next: out.IsTruncated === true && out.NextKeyMarker !== undefined
          ? Option.some({ keyMarker: out.NextKeyMarker, uploadIdMarker: out.NextUploadIdMarker ?? "" })
          : Option.none()
      })
    )

  const listMultipartUploads = (prefix?: string): Stream.Stream<MultipartUploadSummary, StorageBackendError> =>
    Stream.paginateChunkEffect(
      undefined as { readonly keyMarker: string; readonly uploadIdMarker: string } | undefined,
      (marker) =>
        Effect.map(listUploadsPage(prefix, marker), (page) => [Chunk.fromIterable(page.uploads), page.next] as const)
    )

  /**
   * Fails unless the session is listed as open. Listing is the only check
   * both servers get right: Ceph and Swift accept a repeated completion, and
   * Swift accepts parts for, and lists the parts of, a finished session.
   */
  const requireOpenSession = (key: string, uploadId: string) =>
    Effect.gen(function*() {
      let marker: { readonly keyMarker: string; readonly uploadIdMarker: string } | undefined
      while (true) {
        const page = yield* listUploadsPage(key, marker)
        if (page.uploads.some((u) => u.key === key && u.uploadId === uploadId)) {
          knownOpen.add(key, uploadId)
          return
        }
        // Uploads of `key` itself sort before those of longer keys sharing the prefix.
        if (Option.isNone(page.next) || page.uploads.some((u) => u.key !== key)) {
          return yield* sessionNotFound(uploadId)
        }
        marker = page.next.value
      }
    })

  /** Both codes mean "no such session": Ceph answers `NoSuchKey` where S3 says `NoSuchUpload`. */
  const noSuchSession = (uploadId: string) => (failure: S3Failure) =>
    failure.code === "NoSuchUpload" || failure.code === "NoSuchKey" ? sessionNotFound(uploadId) : undefined

  /**
   * Sessions this process saw open a moment ago (opened here, or listed):
   * a part for one of them skips the listing, a round trip per part. This
   * process's completions and aborts forget theirs at once; a session
   * another process closes is forgotten after `openSessionMemory` (on
   * Ceph and AWS the part is then refused by S3 itself). Completion always
   * lists: it is the step that must never run twice.
   */
  const knownOpen = makeSessionMemory(openSessionMemory)

  const initMultipart: MultipartDriver["initMultipart"] = Effect.fnUntraced(function*(input) {
    const out = yield* call("initMultipart", (abortSignal) =>
      client.send(
        new sdk.CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: input.key,
          ContentType: input.contentType,
          Metadata: { ...input.metadata }
        }),
        { abortSignal }
      ))
    if (out.UploadId === undefined || out.UploadId === "") {
      return yield* new StorageBackendError({
        operation: "initMultipart",
        reason: "transient",
        message: "initMultipart: the server answered no upload id"
      })
    }
    knownOpen.add(input.key, out.UploadId)
    return { key: input.key, uploadId: out.UploadId }
  })

  const putPart = <E>(input: DriverPutPartInput<E>) =>
    Effect.gen(function*() {
      if (!knownOpen.has(input.key, input.uploadId)) yield* requireOpenSession(input.key, input.uploadId)
      return yield* withPayload("putPart", input.body, input.size, (payload) =>
        call(
          "putPart",
          (abortSignal) =>
            client.send(
              new sdk.UploadPartCommand({
                Bucket: bucket,
                Key: input.key,
                UploadId: input.uploadId,
                PartNumber: input.partNumber,
                Body: payload.body,
                ContentLength: payload.length
              }),
              { abortSignal: uploadSignal(abortSignal, payload) }
            ),
          noSuchSession(input.uploadId)
        ).pipe(Effect.map((out): PartInfo => ({
          partNumber: input.partNumber,
          etag: unquoteETag(out.ETag),
          size: payload.length
        }))))
    })

  /** Every stored part of an open session, by part number (ListParts, page by page). */
  const storedParts = ({ key, uploadId }: MultipartSession) =>
    Effect.gen(function*() {
      yield* requireOpenSession(key, uploadId)
      const parts = new Map<number, StoredPart>()
      let marker: string | undefined
      while (true) {
        const out = yield* call(
          "completeMultipart",
          (abortSignal) =>
            client.send(
              new sdk.ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
              { abortSignal }
            ),
          noSuchSession(uploadId)
        )
        for (const part of out.Parts ?? []) {
          if (part.PartNumber !== undefined) {
            parts.set(part.PartNumber, { etag: unquoteETag(part.ETag), size: part.Size ?? 0 })
          }
        }
        if (out.IsTruncated !== true || out.NextPartNumberMarker === undefined) return parts
        marker = out.NextPartNumberMarker
      }
    })

  const completeMultipart = Effect.fnUntraced(function*(input: CompleteMultipartInput) {
    yield* call(
      "completeMultipart",
      (abortSignal) =>
        client.send(
          new sdk.CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: input.key,
            UploadId: input.uploadId,
            MultipartUpload: {
              Parts: input.parts.map((p) => ({ PartNumber: p.partNumber, ETag: `"${unquoteETag(p.etag)}"` }))
            }
          }),
          { abortSignal }
        ),
      completeFailure(input.uploadId)
    ).pipe(Effect.ensuring(Effect.sync(() => knownOpen.forget(input.key, input.uploadId))))
    // The answer's ETag is empty on Ceph and its size is absent everywhere: read both back.
    return yield* headObject("completeMultipart", input.key).pipe(
      Effect.catchTag("ObjectNotFound", () =>
        new StorageBackendError({
          operation: "completeMultipart",
          reason: "transient",
          message: `completeMultipart: ${input.key} was deleted right after it was assembled`
        }))
    )
  })

  const completeFailure = (uploadId: string) => (failure: S3Failure) => {
    switch (failure.code) {
      case "NoSuchUpload":
        return sessionNotFound(uploadId)
      case "InvalidPart":
        return new PartETagMismatch({ message: "S3 found no part with a given ETag" })
      case "EntityTooSmall":
        return new PartTooSmall({ message: "S3 found a non-final part below its minimum size" })
      case "InvalidPartOrder":
        return new PartNumberOutOfRange({ message: "S3 found the parts out of order" })
      default:
        return undefined
    }
  }

  const abortMultipart = (input: MultipartSession) =>
    Effect.suspend(() => {
      knownOpen.forget(input.key, input.uploadId)
      return call(
        "abortMultipart",
        (abortSignal) =>
          client.send(
            new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: input.key, UploadId: input.uploadId }),
            { abortSignal }
          )
      ).pipe(
        // Unknown or closed: nothing to abort (Ceph and Swift sometimes say NoSuchKey).
        Effect.catchIf(causedBy("NoSuchUpload", "NoSuchKey"), () => Effect.void)
      )
    })

  // ---- presigned requests ----

  /** The client's credentials and region (its providers memoize them). */
  const signingIdentity = (operation: string) =>
    Effect.zip(
      call(operation, () => client.config.credentials()),
      call(operation, () => client.config.region())
    )

  /**
   * SigV4 signing keys by date, region and secret: one derivation (four
   * HMACs) a day instead of one per URL.
   */
  const signingKeys = new Map<string, Buffer>()
  const signingKey = (secret: string, day: string, region: string) => {
    const id = `${day}\u0000${region}\u0000${secret}`
    let key = signingKeys.get(id)
    if (key === undefined) {
      key = ["s3", "aws4_request"].reduce((k, part) => hmac(k, part), hmac(hmac(`AWS4${secret}`, day), region))
      if (signingKeys.size >= 16) signingKeys.clear()
      signingKeys.set(id, key)
    }
    return key
  }

  /**
   * A presigned `method` on `key` (SigV4 in the query string, signed here
   * with node:crypto: a URL then costs the app server a hash and two HMACs),
   * valid for `expiresIn`; the `signed` headers must be sent exactly as
   * given, so S3 checks them too. The payload is unsigned, as in any
   * presigned URL.
   */
  const presignRequest = (
    operation: string,
    method: "PUT" | "GET",
    key: string,
    query: Readonly<Record<string, string>>,
    signed: Readonly<Record<string, string>>,
    expiresIn: Duration.Duration
  ) =>
    Effect.gen(function*() {
      const [credentials, region] = yield* signingIdentity(operation)
      const base = new URL(bucketUrl)
      const seconds = Math.min(604_800, Math.max(1, Math.ceil(Duration.toSeconds(expiresIn))))
      const now = yield* DateTime.now
      const date = amzDate(new Date(DateTime.toEpochMillis(now)))
      const scope = `${date.slice(0, 8)}/${region}/s3/aws4_request`
      const headers: Record<string, string> = { host: base.host }
      for (const [name, value] of Object.entries(signed)) headers[name.toLowerCase()] = value.trim()
      const headerNames = Object.keys(headers).sort()
      const params: Record<string, string> = {
        ...query,
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": `${credentials.accessKeyId}/${scope}`,
        "X-Amz-Date": date,
        "X-Amz-Expires": String(seconds),
        "X-Amz-SignedHeaders": headerNames.join(";")
      }
      if (credentials.sessionToken !== undefined) params["X-Amz-Security-Token"] = credentials.sessionToken
      const canonicalQuery = Object.entries(params)
        .map(([name, value]) => [escapeUri(name), escapeUri(value)] as const)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, value]) => `${name}=${value}`)
        .join("&")
      const path = `${base.pathname.replace(/\/+$/, "")}/${key.split("/").map(escapeUri).join("/")}`
      const canonicalRequest = [
        method,
        path,
        canonicalQuery,
        ...headerNames.map((name) => `${name}:${headers[name]}`),
        "",
        headerNames.join(";"),
        "UNSIGNED-PAYLOAD"
      ].join("\n")
      const stringToSign = [
        "AWS4-HMAC-SHA256",
        date,
        scope,
        createHash("sha256").update(canonicalRequest, "utf8").digest("hex")
      ].join("\n")
      const signature = hmac(signingKey(credentials.secretAccessKey, date.slice(0, 8), region), stringToSign)
        .toString("hex")
      return {
        url: `${base.protocol}//${base.host}${path}?${canonicalQuery}&X-Amz-Signature=${signature}`,
        expiresAt: DateTime.addDuration(now, Duration.seconds(seconds))
      }
    })

  const presignUploadPart: Presigner["uploadPart"] = (input) =>
    Effect.map(
      presignRequest(
        "presignUploadPart",
        "PUT",
        input.key,
        { partNumber: String(input.partNumber), uploadId: input.uploadId },
        // Signed, so S3 itself refuses a part of any other size.
        { "content-length": String(input.size) },
        input.expiresIn
      ),
      ({ expiresAt, url }): PresignedRequest => ({
        method: "PUT",
        url,
        headers: { "content-length": String(input.size) },
        expiresAt
      })
    )

  const presignGetObject: Presigner["getObject"] = (input) =>
    Effect.map(
      presignRequest(
        "presignGetObject",
        "GET",
        input.key,
        {
          ...(input.responseContentType === undefined ? {} : { "response-content-type": input.responseContentType }),
          ...(input.responseContentDisposition === undefined
            ? {}
            : { "response-content-disposition": input.responseContentDisposition })
        },
        {},
        input.expiresIn
      ),
      ({ expiresAt, url }): PresignedRequest => ({ method: "GET", url, headers: {}, expiresAt })
    )

  /**
   * A SigV4 POST policy, signed here like the URLs: the key, the content
   * type, the metadata and the exact size (`content-length-range` from size
   * to size) are all conditions, so the storage refuses any other upload
   * with it.
   */
  const presignPostObject: Presigner["postObject"] = (input) =>
    Effect.gen(function*() {
      const [credentials, region] = yield* signingIdentity("presignPostObject")
      const now = yield* DateTime.now
      const seconds = Math.max(1, Math.ceil(Duration.toSeconds(input.expiresIn)))
      const expiresAt = DateTime.addDuration(now, Duration.seconds(seconds))
      const date = amzDate(new Date(DateTime.toEpochMillis(now)))
      const scope = `${date.slice(0, 8)}/${region}/s3/aws4_request`
      const fields: Record<string, string> = {
        key: input.key,
        "Content-Type": input.contentType,
        ...Object.fromEntries(Object.entries(input.metadata).map(([k, v]) => [`x-amz-meta-${k.toLowerCase()}`, v])),
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": `${credentials.accessKeyId}/${scope}`,
        "x-amz-date": date
      }
      if (credentials.sessionToken !== undefined) fields["x-amz-security-token"] = credentials.sessionToken
      const policy = Buffer.from(JSON.stringify({
        expiration: DateTime.formatIso(expiresAt),
        conditions: [
          { bucket },
          ...Object.entries(fields).map(([name, value]) => ({ [name]: value })),
          ["content-length-range", input.size, input.size]
        ]
      })).toString("base64")
      const key = signingKey(credentials.secretAccessKey, date.slice(0, 8), region)
      return {
        url: bucketUrl,
        fields: { ...fields, policy, "x-amz-signature": hmac(key, policy).toString("hex") },
        expiresAt
      } satisfies PresignedPost
    })

  const driver: ObjectStorageDriver = {
    name: "s3",
    presign: { uploadPart: presignUploadPart, getObject: presignGetObject, postObject: presignPostObject },
    putObject,
    getObject,
    statObject,
    deleteObject,
    deleteObjects,
    copyObject,
    listObjects,
    multipart: Option.some<MultipartDriver>({
      partSize,
      maxPartCount,
      initMultipart,
      putPart,
      storedParts,
      completeMultipart,
      abortMultipart,
      listMultipartUploads
    })
  }

  return { driver, ensureBucket, applyCors }
}

/** `bucket/key` for `x-amz-copy-source`: URL-encoded, with the key's slashes kept. */
const copySource = (bucket: string, key: string) => `${bucket}/${encodeURIComponent(key).replace(/%2F/g, "/")}`

/** The object's size from a `Content-Range: bytes a-b/size` header. */
const totalSize = (contentRange: string | undefined): number | undefined => {
  const match = contentRange === undefined ? null : /\/(\d+)$/.exec(contentRange)
  return match === null ? undefined : Number(match[1])
}

const toUtc = (date: Date | undefined): DateTime.Utc => DateTime.unsafeMake(date ?? new Date(0))
