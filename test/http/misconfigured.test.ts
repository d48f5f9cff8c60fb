/**
 * An S3 backend that refuses the server's credentials, or has no bucket,
 * is a misconfiguration, not an outage: the API answers 500
 * `StorageMisconfigured` (not 503), logs a line for the operator and counts
 * it in `storage_backend_misconfigured_total`. Against the real Ceph RGW.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import { randomBytes } from "node:crypto"
import { inject } from "vitest"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { backendMisconfigured } from "../../src/layers/StorageMetrics.js"
import { freshDatabase, missingServer } from "../support/databases.js"
import { bytes, init, putPart } from "./client.js"
import { call, serverLayer } from "./harness.js"

const ceph = inject("servers").s3.ceph

/** Every log line the server writes, to check what the operator is told. */
const logged: Array<string> = []
const captureLogs = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ annotations, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    logged.push(`${text} ${JSON.stringify(Object.fromEntries(annotations))}`)
  })
)

const count = (reason: string, operation: string) =>
  Effect.map(
    Metric.value(Metric.tagged(Metric.tagged(backendMisconfigured, "reason", reason), "operation", operation)),
    (state) => state.count
  )

const misconfiguredSuite = (
  name: string,
  backend: () => S3ObjectStorage.S3ObjectStorageOptions,
  reason: "access_denied" | "bucket_not_found",
  hint: RegExp
) =>
  layer(
    serverLayer(freshDatabase("sqlite"), S3ObjectStorage.layer(backend())).pipe(Layer.provide(captureLogs)),
    { timeout: "60 seconds", excludeTestServices: true }
  )(name, (it) => {
    it.effect("a part upload and a download answer 500 StorageMisconfigured, logged and counted", () =>
      Effect.gen(function*() {
        logged.length = 0
        const putsBefore = yield* count(reason, "putObject")
        const ticket = yield* init("alice", { filename: "a.bin", size: 10 })
        assert.strictEqual(ticket.status, 201, ticket.text) // opening a one-part upload needs no backend call
        const part = yield* putPart("alice", ticket.json.claimId, 1, bytes(10))
        assert.deepStrictEqual([part.status, part.json._tag, part.json.reason], [500, "StorageMisconfigured", reason])
        // the client is not told the backend's details (bucket, key id)
        assert.notMatch(part.text, /test|es-missing|InvalidAccessKeyId|NoSuchBucket/)
        assert.strictEqual((yield* count(reason, "putObject")) - putsBefore, 1)

        const file = yield* call(undefined, HttpClientRequest.get("/storage/files/pub/some/file.txt"))
        assert.deepStrictEqual([file.status, file.json._tag], [500, "StorageMisconfigured"])

        const line = logged.find((l) => l.startsWith("storage backend misconfigured"))
        assert.isDefined(line, logged.join("\n"))
        assert.match(line!, hint)
        assert.include(line!, `"reason":"${reason}"`)
        assert.include(line!, `"operation":"putObject"`)
      }))
  })

if (ceph === undefined) {
  missingServer("HTTP API on a misconfigured S3 backend", "Ceph RGW (scripts/s3/all.sh up)")
} else {
  const base = (bucket: string): S3ObjectStorage.S3ObjectStorageOptions => ({
    bucket,
    endpoint: ceph.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    forcePathStyle: true,
    partSize: S3ObjectStorage.minimumPartSize
  })
  misconfiguredSuite(
    "HTTP API on Ceph RGW with a wrong secret",
    () => ({ ...base("es-misconfigured"), credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: "wrong" } }),
    "access_denied",
    /SignatureDoesNotMatch.*|credentials/
  )
  misconfiguredSuite(
    "HTTP API on Ceph RGW with an unknown access key",
    () => ({ ...base("es-misconfigured"), credentials: { accessKeyId: "nobody", secretAccessKey: "wrong" } }),
    "access_denied",
    /InvalidAccessKeyId/
  )
  misconfiguredSuite(
    "HTTP API on Ceph RGW without its bucket",
    () => base(`es-missing-${randomBytes(6).toString("hex")}`),
    "bucket_not_found",
    /bucket does not exist.*NoSuchBucket/
  )
}
