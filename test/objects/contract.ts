/**
 * The `ObjectStorage` contract, written once and run against every backend
 * (memory, filesystem, S3 on Ceph and on Swift). Every test works under its
 * own random key prefix, so the tests of one block share a backend safely.
 */
import { expect, layer } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createHash, randomBytes, randomFillSync } from "node:crypto"
import * as v8 from "node:v8"
import { runInNewContext } from "node:vm"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import type { Multipart } from "../../src/services/ObjectStorage.js"

export interface ContractOptions {
  readonly name: string
  readonly layer: Layer.Layer<ObjectStorage, unknown>
  /** Whether the backend keeps memory bounded while streaming (every backend but memory). */
  readonly boundedMemory: boolean
  /** How many keys the bulk delete uses: above 1,000 where the backend batches by 1,000. */
  readonly bulkDeleteCount: number
}

const MiB = 1024 * 1024

export const objectStorageContract = (options: ContractOptions) =>
  layer(options.layer, { timeout: "120 seconds", excludeTestServices: true })(options.name, (it) => {
    // First, so the RSS is measured in a process that earlier tests have not grown.
    it.effect("a 64 MiB object streams through put and get", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const key = `${prefix()}big.bin`
        const size = 64 * MiB
        const sent = createHash("sha256")
        const received = createHash("sha256")
        let receivedBytes = 0
        // Collected every 8 MiB each way, so the RSS shows what is kept, not
        // garbage V8 has not got round to (dropping 64 MiB of 1 MiB buffers
        // grows RSS by ~30 MiB with no storage involved at all).
        const collectOnUpload = collectGarbageEvery(8 * MiB)
        const collectOnDownload = collectGarbageEvery(8 * MiB)
        const sampler = startRssSampler()
        const body = randomChunks(size, MiB, (bytes) => {
          sent.update(bytes)
          collectOnUpload(bytes.byteLength)
        })
        yield* storage.putObject({ key, body, size })
        const got = yield* storage.getObject({ key })
        yield* Stream.runForEach(got.body, (bytes) =>
          Effect.sync(() => {
            received.update(bytes)
            receivedBytes += bytes.byteLength
            collectOnDownload(bytes.byteLength)
          }))
        const rss = sampler.stop()
        expect(got.info.size).toBe(size)
        expect(receivedBytes).toBe(size)
        expect(received.digest("hex")).toBe(sent.digest("hex"))
        console.log(
          `[${options.name}] 64 MiB round trip: RSS before ${mib(rss.baseline)}, peak ${mib(rss.peak)}, growth ${
            mib(rss.peak - rss.baseline)
          }`
        )
        if (options.boundedMemory) expect(rss.peak - rss.baseline).toBeLessThan(40 * MiB)
        yield* storage.deleteObject(key)
      }), 180_000)

    it.effect("put, get, stat, copy and delete round trip with content type and metadata", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const key = `${prefix()}dir/hello.txt`
        const metadata = { owner: "alice", purpose: "contract-test" }
        const put = yield* storage.putObject({
          key,
          body: Stream.make(text("hello "), text("world")),
          size: 11,
          contentType: "text/plain",
          metadata
        })
        expect(put).toMatchObject({ key, size: 11, eTag: md5("hello world"), contentType: "text/plain", metadata })

        const got = yield* storage.getObject({ key })
        expect(yield* readText(got.body)).toBe("hello world")
        expect(got.info).toMatchObject({ key, size: 11, eTag: put.eTag, contentType: "text/plain", metadata })

        const stat = yield* storage.statObject(key)
        expect(stat).toMatchObject({ key, size: 11, eTag: put.eTag, contentType: "text/plain", metadata })

        const copyKey = `${key}.copy`
        const copy = yield* storage.copyObject(key, copyKey)
        expect(copy).toMatchObject({ key: copyKey, size: 11, contentType: "text/plain", metadata })
        expect(yield* readText((yield* storage.getObject({ key: copyKey })).body)).toBe("hello world")

        yield* storage.deleteObject(key)
        expect(yield* failureTag(storage.statObject(key))).toBe("ObjectNotFound")
        expect((yield* storage.statObject(copyKey)).size).toBe(11)
      }))

    it.effect("a buffer body, a stream of unknown size, and the default content type", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const p = prefix()
        const bytes = randomBytes(1000)
        const fromBuffer = yield* storage.putObject({ key: `${p}buffer.bin`, body: bytes })
        expect(fromBuffer).toMatchObject({ size: 1000, eTag: md5(bytes), contentType: "application/octet-stream" })

        const parts = [randomBytes(300), randomBytes(0), randomBytes(700)]
        const unknownSize = yield* storage.putObject({ key: `${p}stream.bin`, body: Stream.fromIterable(parts) })
        expect(unknownSize.size).toBe(1000)
        const read = yield* readBytes((yield* storage.getObject({ key: `${p}stream.bin` })).body)
        expect(read.equals(Buffer.concat(parts))).toBe(true)

        const empty = yield* storage.putObject({ key: `${p}empty`, body: Stream.empty, size: 0 })
        expect(empty.size).toBe(0)
        expect((yield* readBytes((yield* storage.getObject({ key: `${p}empty` })).body)).length).toBe(0)
      }))

    it.effect("replacing an object gives the new bytes and metadata", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const key = `${prefix()}replaced.txt`
        yield* storage.putObject({ key, body: text("first"), contentType: "text/plain", metadata: { v: "1" } })
        yield* storage.putObject({ key, body: text("second!"), contentType: "text/csv", metadata: { v: "2" } })
        const got = yield* storage.getObject({ key })
        expect(yield* readText(got.body)).toBe("second!")
        expect(got.info).toMatchObject({ size: 7, eTag: md5("second!"), contentType: "text/csv", metadata: { v: "2" } })
      }))

    it.effect("missing keys: get, stat and copy fail with ObjectNotFound, deletes succeed", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const key = `${prefix()}missing`
        expect(yield* failureTag(storage.getObject({ key }))).toBe("ObjectNotFound")
        expect(yield* failureTag(storage.getObject({ key, range: { start: 5 } }))).toBe("ObjectNotFound")
        expect(yield* failureTag(storage.statObject(key))).toBe("ObjectNotFound")
        expect(yield* failureTag(storage.copyObject(key, `${key}.copy`))).toBe("ObjectNotFound")
        yield* storage.deleteObject(key)
        yield* storage.deleteObjects([key, `${key}.2`])
        expect(yield* failureTag(storage.statObject(`${key}.copy`))).toBe("ObjectNotFound")
      }))

    it.effect("byte ranges: start only, start-end, one byte, past the end", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const key = `${prefix()}range.bin`
        const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => i))
        yield* storage.putObject({ key, body: bytes, size: 100 })
        const read = (start: number, end?: number) =>
          Effect.gen(function*() {
            const got = yield* storage.getObject({ key, range: end === undefined ? { start } : { start, end } })
            expect(got.info.size).toBe(100)
            return [...(yield* readBytes(got.body))]
          })
        expect(yield* read(90)).toEqual([90, 91, 92, 93, 94, 95, 96, 97, 98, 99])
        expect(yield* read(10, 14)).toEqual([10, 11, 12, 13, 14])
        expect(yield* read(0, 0)).toEqual([0])
        expect(yield* read(42, 42)).toEqual([42])
        expect(yield* read(99)).toEqual([99])
        expect(yield* read(95, 1000)).toEqual([95, 96, 97, 98, 99])
        expect(yield* read(100)).toEqual([])
        expect(yield* read(5000, 6000)).toEqual([])

        const emptyKey = `${key}.empty`
        yield* storage.putObject({ key: emptyKey, body: new Uint8Array(0) })
        const empty = yield* storage.getObject({ key: emptyKey, range: { start: 0 } })
        expect(empty.info.size).toBe(0)
        expect((yield* readBytes(empty.body)).length).toBe(0)
      }))

    it.effect("listObjects: in key order, under a prefix", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const p = prefix()
        const names = ["b.txt", "a/x", "a.txt", "a/y/z", "ab", "a-", "c/d/e/f"]
        const put = (name: string, i: number) => storage.putObject({ key: `${p}${name}`, body: Buffer.alloc(i + 1, i) })
        yield* Effect.forEach(names, put, { concurrency: 4 })
        yield* storage.putObject({ key: `${p.slice(0, -1)}-elsewhere`, body: text("not listed") })

        const keysOf = (listed: ReadonlyArray<{ readonly key: string }>) => listed.map((o) => o.key.slice(p.length))
        const listed = yield* listAll(storage.listObjects(p))
        // UTF-8 byte order: "-" < "." < "/" < "b".
        expect(keysOf(listed)).toEqual(["a-", "a.txt", "a/x", "a/y/z", "ab", "b.txt", "c/d/e/f"])
        for (const summary of listed) {
          const stat = yield* storage.statObject(summary.key)
          expect(summary.size).toBe(stat.size)
          expect(summary.eTag).toBe(stat.eTag)
        }
        expect(keysOf(yield* listAll(storage.listObjects(`${p}a/`)))).toEqual(["a/x", "a/y/z"])
        expect(keysOf(yield* listAll(storage.listObjects(`${p}a`)))).toEqual(["a-", "a.txt", "a/x", "a/y/z", "ab"])
        expect(yield* listAll(storage.listObjects(`${p}nothing-here`))).toEqual([])
      }))

    it.effect(`deleteObjects removes ${options.bulkDeleteCount} keys at once`, () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const p = prefix()
        const keys = Array.from({ length: options.bulkDeleteCount }, (_, i) => `${p}${String(i).padStart(5, "0")}`)
        yield* Effect.forEach(keys, (key) => storage.putObject({ key, body: text(key) }), {
          concurrency: 16,
          discard: true
        })
        expect((yield* listAll(storage.listObjects(p))).length).toBe(keys.length)
        yield* storage.deleteObjects([...keys, `${p}never-existed`])
        expect(yield* listAll(storage.listObjects(p))).toEqual([])
      }), 180_000)

    it.effect("a body whose length differs from the declared size fails and stores nothing", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const p = prefix()
        const short = yield* Effect.flip(
          storage.putObject({ key: `${p}short`, body: Stream.make(text("12345")), size: 10 })
        )
        expect(short).toMatchObject({ _tag: "StorageBackendError", reason: "invalid" })
        // The declared length is reached by the first chunk, well before the
        // body turns out too long: a server that got those bytes must not commit.
        const late = Effect.as(Effect.sleep("200 millis"), text("6"))
        const tooLong = Stream.concat(Stream.make(text("12345")), Stream.fromEffect(late))
        const long = yield* Effect.flip(storage.putObject({ key: `${p}long`, body: tooLong, size: 5 }))
        expect(long).toMatchObject({ _tag: "StorageBackendError", reason: "invalid" })
        const buffer = yield* Effect.flip(storage.putObject({ key: `${p}buffer`, body: text("12345"), size: 4 }))
        expect(buffer).toMatchObject({ _tag: "StorageBackendError", reason: "invalid" })
        for (const name of ["short", "long", "buffer"]) {
          expect(yield* failureTag(storage.statObject(`${p}${name}`))).toBe("ObjectNotFound")
        }

        // A failed replacement leaves the old object whole.
        yield* storage.putObject({ key: `${p}kept`, body: text("original") })
        yield* Effect.flip(storage.putObject({ key: `${p}kept`, body: Stream.make(text("new")), size: 100 }))
        expect(yield* readText((yield* storage.getObject({ key: `${p}kept` })).body)).toBe("original")
      }))

    it.effect("a failing body fails the put with its own error and stores nothing", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const key = `${prefix()}broken`
        const body = Stream.concat(Stream.make(randomBytes(1000)), Stream.fail(new BodyBroke()))
        const sized = yield* Effect.flip(storage.putObject({ key, body, size: 5000 }))
        expect(sized).toBeInstanceOf(BodyBroke)
        const unsized = yield* Effect.flip(storage.putObject({ key, body }))
        expect(unsized).toBeInstanceOf(BodyBroke)
        expect(yield* failureTag(storage.statObject(key))).toBe("ObjectNotFound")
      }))

    it.effect("a concurrent put/read/delete mix never shows a partial object", () =>
      Effect.gen(function*() {
        const storage = yield* ObjectStorage
        const p = prefix()
        const keys = [`${p}same`, `${p}other-1`, `${p}other-2`]
        // Version v of an object is `sizeOf(v)` bytes, all equal to v: a read
        // is whole exactly when its length, its bytes and its info agree.
        const sizeOf = (v: number) => 20_000 + v * 7_919
        const put = (key: string, v: number) =>
          storage.putObject({ key, body: chunksOf(Buffer.alloc(sizeOf(v), v), 4096), size: sizeOf(v) })
        const checkRead = (key: string) =>
          storage.getObject({ key }).pipe(
            Effect.flatMap(({ body, info }) =>
              Effect.map(readBytes(body), (bytes) => {
                const v = bytes[0]!
                expect(bytes.length).toBe(info.size)
                expect(info.size).toBe(sizeOf(v))
                expect(bytes.every((b) => b === v)).toBe(true)
                // The metadata read with the bytes belongs to them (an empty ETag means "unknown").
                if (info.eTag !== "") expect(info.eTag).toBe(md5(bytes))
              })
            ),
            Effect.catchTag("ObjectNotFound", () => Effect.void)
          )
        const work = keys.flatMap((key, k) => [
          ...Array.from({ length: 8 }, (_, v) => put(key, v + 1)),
          ...Array.from({ length: 12 }, () => checkRead(key)),
          ...Array.from({ length: k === 0 ? 3 : 1 }, () => storage.deleteObject(key))
        ])
        yield* Effect.all(shuffle(work), { concurrency: 12, discard: true })
        for (const key of keys) yield* checkRead(key)
        const listed = yield* listAll(storage.listObjects(p))
        for (const summary of listed) {
          expect(summary.size).toBe((yield* storage.statObject(summary.key)).size)
        }
      }), 120_000)

    multipartContract(it)
  })

const multipartContract = (it: Vitest.MethodsNonLive<ObjectStorage, true>) => {
  const withMultipart = <A, E>(f: (mp: Multipart, storage: ObjectStorage["Type"]) => Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      const storage = yield* ObjectStorage
      const mp = Option.getOrThrow(storage.multipart)
      return yield* f(mp, storage)
    })

  it.effect("multipart: three parts uploaded concurrently assemble in order", () =>
    withMultipart((mp, storage) =>
      Effect.gen(function*() {
        const key = `${prefix()}assembled.bin`
        const metadata = { owner: "bob" }
        const { uploadId } = yield* mp.initMultipart({ key, contentType: "video/mp4", metadata })
        expect(yield* openUploadIds(mp, key)).toEqual([uploadId])
        const bodies = [randomBytes(mp.partSize), randomBytes(mp.partSize), randomBytes(1234)]
        const parts = yield* Effect.forEach(
          bodies,
          (body, i) =>
            mp.putPart({ key, uploadId, partNumber: i + 1, body: chunksOf(body, 64 * 1024), size: body.length }),
          { concurrency: "unbounded" }
        )
        expect(parts.map((p) => [p.partNumber, p.etag, p.size])).toEqual(
          bodies.map((b, i) => [i + 1, md5(b), b.length])
        )
        const info = yield* mp.completeMultipart({ key, uploadId, parts })
        const whole = Buffer.concat(bodies)
        expect(info).toMatchObject({ key, size: whole.length, contentType: "video/mp4", metadata })
        // S3's multipart ETag: the MD5 of the parts' binary MD5s, then "-N".
        const partDigests = Buffer.concat(bodies.map((b) => createHash("md5").update(b).digest()))
        expect(info.eTag).toBe(`${md5(partDigests)}-3`)
        expect((yield* storage.statObject(key)).eTag).toBe(info.eTag)
        expect(sha256(yield* readBytes((yield* storage.getObject({ key })).body))).toBe(sha256(whole))
        expect(yield* openUploadIds(mp, key)).toEqual([])
      })
    ))

  it.effect("multipart: re-uploading a part replaces it", () =>
    withMultipart((mp, storage) =>
      Effect.gen(function*() {
        const key = `${prefix()}reuploaded.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        const first = yield* mp.putPart({ key, uploadId, partNumber: 1, body: Buffer.alloc(mp.partSize, 1) })
        const second = yield* mp.putPart({ key, uploadId, partNumber: 1, body: Buffer.alloc(mp.partSize, 2) })
        expect(second.etag).not.toBe(first.etag)
        const last = yield* mp.putPart({ key, uploadId, partNumber: 2, body: text("tail") })
        const stale = mp.completeMultipart({ key, uploadId, parts: [first, last] })
        expect(yield* failureTag(stale)).toBe("PartETagMismatch")
        const info = yield* mp.completeMultipart({ key, uploadId, parts: [second, last] })
        expect(info.size).toBe(mp.partSize + 4)
        const head = yield* readBytes((yield* storage.getObject({ key, range: { start: 0, end: 3 } })).body)
        expect([...head]).toEqual([2, 2, 2, 2])
      })
    ))

  it.effect("multipart: a wrong ETag fails with PartETagMismatch", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const key = `${prefix()}wrong-etag.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        const part = yield* mp.putPart({ key, uploadId, partNumber: 1, body: Buffer.alloc(mp.partSize, 7) })
        const wrong = { partNumber: 1, etag: "0".repeat(32) }
        expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts: [wrong] }))).toBe("PartETagMismatch")
        // A part that was never uploaded is no better.
        const ghost = { partNumber: 2, etag: part.etag }
        const withGhost = mp.completeMultipart({ key, uploadId, parts: [part, ghost] })
        expect(yield* failureTag(withGhost)).toBe("PartETagMismatch")
        // The session stays open after a rejected manifest.
        expect((yield* mp.completeMultipart({ key, uploadId, parts: [part] })).size).toBe(mp.partSize)
      })
    ))

  it.effect("multipart: part numbers must be exactly 1..N in order", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const key = `${prefix()}gaps.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        const parts = yield* Effect.forEach([1, 2, 3], (partNumber) => {
          const body = Buffer.alloc(partNumber === 3 ? 10 : mp.partSize, partNumber)
          return mp.putPart({ key, uploadId, partNumber, body })
        })
        const [p1, p2, p3] = parts as [typeof parts[0], typeof parts[0], typeof parts[0]]
        for (const manifest of [[p1, p3], [], [p2, p1, p3], [p1, p1, p2], [p2, p3]]) {
          const completed = mp.completeMultipart({ key, uploadId, parts: manifest })
          expect(yield* failureTag(completed)).toBe("PartNumberOutOfRange")
        }
        expect(yield* failureTag(mp.putPart({ key, uploadId, partNumber: 0, body: text("x") }))).toBe(
          "PartNumberOutOfRange"
        )
        if (mp.maxPartCount > 0) {
          expect(yield* failureTag(mp.putPart({ key, uploadId, partNumber: mp.maxPartCount + 1, body: text("x") })))
            .toBe("PartNumberOutOfRange")
        }
        expect((yield* mp.completeMultipart({ key, uploadId, parts })).size).toBe(2 * mp.partSize + 10)
      })
    ))

  it.effect("multipart: a second complete and a put after complete fail with UploadSessionNotFound", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const key = `${prefix()}twice.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        const part = yield* mp.putPart({ key, uploadId, partNumber: 1, body: text("done") })
        yield* mp.completeMultipart({ key, uploadId, parts: [part] })
        expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts: [part] }))).toBe("UploadSessionNotFound")
        expect(yield* failureTag(mp.putPart({ key, uploadId, partNumber: 2, body: text("late") }))).toBe(
          "UploadSessionNotFound"
        )
        yield* mp.abortMultipart({ key, uploadId })
      })
    ))

  it.effect("multipart: after abort, put and complete fail with UploadSessionNotFound; abort is idempotent", () =>
    withMultipart((mp, storage) =>
      Effect.gen(function*() {
        const key = `${prefix()}aborted.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        const part = yield* mp.putPart({ key, uploadId, partNumber: 1, body: text("soon gone") })
        yield* mp.abortMultipart({ key, uploadId })
        expect(yield* failureTag(mp.putPart({ key, uploadId, partNumber: 1, body: text("x") }))).toBe(
          "UploadSessionNotFound"
        )
        expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts: [part] }))).toBe("UploadSessionNotFound")
        yield* mp.abortMultipart({ key, uploadId })
        expect(yield* failureTag(storage.statObject(key))).toBe("ObjectNotFound")
      })
    ))

  it.effect("multipart: listParts answers the stored parts in order, as stored; not after complete", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const key = `${prefix()}listed.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        expect(yield* mp.listParts({ key, uploadId })).toEqual([])
        const last = yield* mp.putPart({ key, uploadId, partNumber: 2, body: text("tail") })
        const first = yield* mp.putPart({ key, uploadId, partNumber: 1, body: new Uint8Array(mp.partSize) })
        const listed = yield* mp.listParts({ key, uploadId })
        expect(listed).toEqual([
          { partNumber: 1, etag: first.etag, size: mp.partSize },
          { partNumber: 2, etag: last.etag, size: 4 }
        ])
        // Completing with the listing at hand: the manifest is still checked against it.
        const wrong = [listed[0]!, { partNumber: 2, etag: "0".repeat(32) }]
        expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts: wrong, listed }))).toBe(
          "PartETagMismatch"
        )
        const short = [{ ...listed[0]!, size: 10 }, listed[1]!]
        expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts: listed, listed: short }))).toBe(
          "PartTooSmall"
        )
        yield* mp.completeMultipart({ key, uploadId, parts: listed, listed })
        expect(yield* failureTag(mp.listParts({ key, uploadId }))).toBe("UploadSessionNotFound")
        expect(yield* failureTag(mp.listParts({ key, uploadId: "no-such-upload" }))).toBe("UploadSessionNotFound")
      })
    ))

  it.effect("multipart: an unknown session: abort succeeds, put and complete fail", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const key = `${prefix()}unknown.bin`
        for (const uploadId of ["00000000-0000-7000-8000-000000000000", "no-such-upload", "../../etc"]) {
          yield* mp.abortMultipart({ key, uploadId })
          expect(yield* failureTag(mp.putPart({ key, uploadId, partNumber: 1, body: text("x") }))).toBe(
            "UploadSessionNotFound"
          )
          expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts: [{ partNumber: 1, etag: md5("x") }] })))
            .toBe("UploadSessionNotFound")
        }
        // A real session, named with another key, is not found either.
        const { uploadId } = yield* mp.initMultipart({ key })
        expect(yield* failureTag(mp.putPart({ key: `${key}.other`, uploadId, partNumber: 1, body: text("x") }))).toBe(
          "UploadSessionNotFound"
        )
        yield* mp.abortMultipart({ key, uploadId })
      })
    ))

  it.effect("multipart: a small non-final part fails with PartTooSmall", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const key = `${prefix()}small.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        const p1 = yield* mp.putPart({ key, uploadId, partNumber: 1, body: Buffer.alloc(mp.partSize - 1, 1) })
        const p2 = yield* mp.putPart({ key, uploadId, partNumber: 2, body: text("last") })
        expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts: [p1, p2] }))).toBe("PartTooSmall")
        yield* mp.abortMultipart({ key, uploadId })
      })
    ))

  it.effect("multipart: a part body of the wrong length fails and stores no part", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const key = `${prefix()}part-size.bin`
        const { uploadId } = yield* mp.initMultipart({ key })
        const failed = yield* Effect.flip(
          mp.putPart({ key, uploadId, partNumber: 1, body: Stream.make(text("abc")), size: 4 })
        )
        expect(failed).toMatchObject({ _tag: "StorageBackendError", reason: "invalid" })
        const parts = [{ partNumber: 1, etag: md5("abc") }]
        expect(yield* failureTag(mp.completeMultipart({ key, uploadId, parts }))).toBe("PartETagMismatch")
        // A part of unknown size is measured.
        const unsized = yield* mp.putPart({ key, uploadId, partNumber: 1, body: Stream.make(text("ab"), text("c")) })
        expect(unsized).toEqual({ partNumber: 1, etag: md5("abc"), size: 3 })
        expect((yield* mp.completeMultipart({ key, uploadId, parts: [unsized] })).size).toBe(3)
      })
    ))

  it.effect("multipart: listMultipartUploads shows open sessions, not closed ones", () =>
    withMultipart((mp) =>
      Effect.gen(function*() {
        const p = prefix()
        const open = yield* mp.initMultipart({ key: `${p}open` })
        const completed = yield* mp.initMultipart({ key: `${p}completed` })
        const aborted = yield* mp.initMultipart({ key: `${p}aborted` })
        const listed = yield* listAll(mp.listMultipartUploads(p))
        expect(listed.map((u) => u.uploadId).sort()).toEqual(
          [open.uploadId, completed.uploadId, aborted.uploadId].sort()
        )
        const part = yield* mp.putPart({ ...completed, partNumber: 1, body: text("x") })
        yield* mp.completeMultipart({ key: `${p}completed`, uploadId: completed.uploadId, parts: [part] })
        yield* mp.abortMultipart(aborted)
        const after = yield* listAll(mp.listMultipartUploads(p))
        expect(after.map((u) => [u.key, u.uploadId])).toEqual([[`${p}open`, open.uploadId]])
        yield* mp.abortMultipart(open)
        expect(yield* listAll(mp.listMultipartUploads(p))).toEqual([])
      })
    ))
}

// ---- helpers ----

class BodyBroke extends Data.TaggedError("BodyBroke") {}

/** A fresh key prefix per test, so tests sharing a backend never meet. */
export const prefix = () => `t-${randomBytes(6).toString("hex")}/`

export const text = (s: string) => Buffer.from(s, "utf8")

export const md5 = (data: string | Uint8Array) => createHash("md5").update(data).digest("hex")

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

export const readBytes = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => Buffer.concat([...chunks]))

export const readText = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.map(readBytes(stream), (bytes) => bytes.toString("utf8"))

export const listAll = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => [...chunk])

/** The `_tag` of the effect's failure; fails the test when it succeeds. */
export const failureTag = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result)
      ? Effect.succeed(result.left._tag)
      : Effect.dieMessage("expected a failure, but the effect succeeded"))

/** The backend's open sessions for exactly this key. */
const openUploadIds = (mp: Multipart, key: string) =>
  Effect.map(
    listAll(mp.listMultipartUploads(key)),
    (uploads) => uploads.filter((u) => u.key === key).map((u) => u.uploadId)
  )

const chunksOf = (bytes: Uint8Array, size: number): Stream.Stream<Uint8Array> =>
  Stream.fromIterable(
    Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size))
  )

/** `total` random bytes made one chunk at a time as they are pulled, each shown to `onChunk`. */
const randomChunks = (total: number, chunkSize: number, onChunk: (bytes: Uint8Array) => void) =>
  Stream.range(0, Math.ceil(total / chunkSize) - 1, 1).pipe(
    Stream.map((i) => {
      const bytes = randomFillSync(Buffer.allocUnsafe(Math.min(chunkSize, total - i * chunkSize)))
      onChunk(bytes)
      return bytes as Uint8Array
    })
  )

const shuffle = <A>(items: ReadonlyArray<A>): Array<A> => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const gc: () => void = (() => {
  v8.setFlagsFromString("--expose-gc")
  return runInNewContext("gc")
})()

/** A progress callback that runs a full garbage collection each time `every` more bytes went by. */
const collectGarbageEvery = (every: number) => {
  let since = 0
  return (bytes: number) => {
    since += bytes
    if (since >= every) {
      since = 0
      gc()
    }
  }
}

/** Samples the process's RSS every few milliseconds until stopped. */
const startRssSampler = () => {
  gc()
  const baseline = process.memoryUsage.rss()
  let peak = baseline
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }, 5)
  return {
    stop: () => {
      clearInterval(timer)
      peak = Math.max(peak, process.memoryUsage.rss())
      return { baseline, peak }
    }
  }
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`
