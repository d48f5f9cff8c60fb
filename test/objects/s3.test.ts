/**
 * The contract against two real S3 servers, Ceph RADOS Gateway and Swift's
 * s3api (started by `scripts/s3/`), each in a fresh bucket that is emptied
 * and removed afterwards; plus what only S3 has: credentials, buckets,
 * request abortion.
 */
import { DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { inject } from "vitest"
import * as S3ObjectStorage from "../../src/layers/objects/S3ObjectStorage.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { missingServer } from "../support/databases.js"
import type { S3Server } from "../support/probe.js"
import { failureTag, listAll, objectStorageContract, readBytes, text } from "./contract.js"

const MiB = 1024 * 1024

const servers: ReadonlyArray<readonly [string, S3Server | undefined]> = [
  ["Ceph RGW", inject("servers").s3.ceph],
  ["Swift s3api", inject("servers").s3.swift]
]

const freshBucket = () => `es-test-${randomBytes(6).toString("hex")}`

const options = (server: S3Server, bucket: string): S3ObjectStorage.S3ObjectStorageOptions => ({
  bucket,
  endpoint: server.endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  forcePathStyle: true,
  partSize: S3ObjectStorage.minimumPartSize
})

const clientConfig = (server: S3Server) => ({
  endpoint: server.endpoint,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }
})

/** Aborts the bucket's open uploads, deletes its objects, then the bucket itself. */
const emptyAndDropBucket = (server: S3Server, bucket: string, storage: ObjectStorage["Type"]) =>
  Effect.gen(function*() {
    const mp = Option.getOrThrow(storage.multipart)
    yield* Effect.forEach(yield* listAll(mp.listMultipartUploads()), (u) => mp.abortMultipart(u), { discard: true })
    yield* storage.deleteObjects((yield* listAll(storage.listObjects())).map((o) => o.key))
    yield* Effect.promise(async () => {
      const client = new S3Client(clientConfig(server))
      await client.send(new DeleteBucketCommand({ Bucket: bucket }))
      client.destroy()
    })
  }).pipe(Effect.orDie)

/** Empties and removes the bucket when the suite's layer is released. */
const removeBucketAfterwards = (server: S3Server, bucket: string) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const storage = yield* ObjectStorage
    yield* Effect.addFinalizer(() => emptyAndDropBucket(server, bucket, storage))
  }))

/** A backend on a new bucket of its own, emptied and removed with the scope. */
const scratchStorage = (server: S3Server) =>
  Effect.gen(function*() {
    const bucket = freshBucket()
    const storage = yield* S3ObjectStorage.make({ ...options(server, bucket), createBucket: true })
    yield* Effect.addFinalizer(() => emptyAndDropBucket(server, bucket, storage))
    return storage
  })

for (const [name, server] of servers) {
  const title = `S3ObjectStorage on ${name}`
  if (server === undefined) {
    missingServer(title, `S3 (${name})`)
    continue
  }
  const bucket = freshBucket()
  objectStorageContract({
    name: title,
    layer: removeBucketAfterwards(server, bucket).pipe(
      Layer.provideMerge(S3ObjectStorage.layer({ ...options(server, bucket), createBucket: true }))
    ),
    boundedMemory: true,
    bulkDeleteCount: 1005
  })

  describe(`${title}: S3 specifics`, () => {
    it.scoped("part size: 16 MiB by default, never below 5 MiB; at most 10,000 parts", () =>
      Effect.gen(function*() {
        const byDefault = yield* S3ObjectStorage.make({ ...options(server, freshBucket()), partSize: undefined })
        expect(Option.getOrThrow(byDefault.multipart).partSize).toBe(16 * MiB)
        expect(Option.getOrThrow(byDefault.multipart).maxPartCount).toBe(10_000)
        const tooSmall = yield* S3ObjectStorage.make({ ...options(server, freshBucket()), partSize: MiB })
        expect(Option.getOrThrow(tooSmall.multipart).partSize).toBe(5 * MiB)
      }))

    it.scoped("wrong credentials fail with reason access_denied", () =>
      Effect.gen(function*() {
        const wrong = {
          ...options(server, freshBucket()),
          credentials: { accessKeyId: server.accessKeyId, secretAccessKey: "wrong" }
        }
        const storage = yield* S3ObjectStorage.make(wrong)
        const failures = [
          yield* Effect.flip(storage.statObject("any")),
          yield* Effect.flip(storage.getObject({ key: "any" })),
          yield* Effect.flip(storage.putObject({ key: "any", body: text("x") })),
          yield* Effect.flip(storage.deleteObject("any")),
          yield* Effect.flip(Stream.runDrain(storage.listObjects()))
        ]
        for (const failure of failures) {
          expect(failure).toMatchObject({ _tag: "StorageBackendError", reason: "access_denied" })
        }
        const unknownKey = { ...wrong, credentials: { accessKeyId: "nobody", secretAccessKey: "wrong" } }
        expect(yield* Effect.flip(S3ObjectStorage.make({ ...unknownKey, createBucket: true }))).toMatchObject({
          _tag: "StorageBackendError",
          reason: "access_denied"
        })
      }))

    it.scoped("a missing bucket fails with reason bucket_not_found", () =>
      Effect.gen(function*() {
        const storage = yield* S3ObjectStorage.make(options(server, freshBucket()))
        const mp = Option.getOrThrow(storage.multipart)
        const failures = [
          yield* Effect.flip(storage.statObject("any")),
          yield* Effect.flip(storage.getObject({ key: "any" })),
          yield* Effect.flip(storage.putObject({ key: "any", body: text("x") })),
          yield* Effect.flip(storage.deleteObject("any")),
          yield* Effect.flip(storage.copyObject("any", "other")),
          yield* Effect.flip(Stream.runDrain(storage.listObjects())),
          yield* Effect.flip(mp.initMultipart({ key: "any" }))
        ]
        for (const failure of failures) {
          expect(failure).toMatchObject({ _tag: "StorageBackendError", reason: "bucket_not_found" })
        }
      }))

    it.scoped("the bucket is created when asked, once", () =>
      Effect.gen(function*() {
        const bucket = freshBucket()
        const storage = yield* S3ObjectStorage.make({ ...options(server, bucket), createBucket: true })
        yield* Effect.addFinalizer(() => emptyAndDropBucket(server, bucket, storage))
        yield* S3ObjectStorage.make({ ...options(server, bucket), createBucket: true })
        expect(yield* listAll(storage.listObjects())).toEqual([])
      }))

    it.scopedLive("interrupting a put aborts its request and stores nothing", () =>
      Effect.gen(function*() {
        const storage = yield* scratchStorage(server)
        const key = "interrupted.bin"
        const endless = Stream.concat(Stream.make(randomBytes(MiB)), Stream.never)
        const put = yield* Effect.fork(storage.putObject({ key, body: endless, size: 10 * MiB }))
        yield* Effect.sleep("300 millis")
        yield* Fiber.interrupt(put)
        expect(yield* failureTag(storage.statObject(key))).toBe("ObjectNotFound")
      }))

    it.scopedLive("a body read only in part releases its connection", () =>
      Effect.gen(function*() {
        const storage = yield* scratchStorage(server)
        yield* storage.putObject({ key: "big.bin", body: randomBytes(4 * MiB) })
        // More partial reads than the HTTP agent has sockets (50): a leaked one would stall them.
        for (let i = 0; i < 60; i++) {
          const got = yield* storage.getObject({ key: "big.bin" })
          expect((yield* readBytes(Stream.take(got.body, 1))).length).toBeGreaterThan(0)
        }
      }), 60_000)
  })
}
