import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from "node:fs"
import * as fsp from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { currentOwner, ownerToken } from "../../src/internal/owner.js"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import { failureTag, listAll, md5, objectStorageContract, readText, text } from "./contract.js"

/** A fresh folder, removed with the scope. */
const tempRoot = Effect.acquireRelease(
  Effect.promise(() => fsp.mkdtemp(join(tmpdir(), "effect-storage-fs-"))),
  (root) => Effect.promise(() => fsp.rm(root, { recursive: true, force: true }))
)

objectStorageContract({
  name: "FileSystemObjectStorage",
  layer: Layer.unwrapScoped(
    Effect.map(tempRoot, (root) => FileSystemObjectStorage.layer({ root, partSize: 256 * 1024 }))
  ),
  boundedMemory: true,
  bulkDeleteCount: 5
})

/** Parts of the multipart tests below. */
const partSize = 64 * 1024

/** A backend on a fresh folder with 64 KiB parts, and its multipart half. */
const withParts = Effect.gen(function*() {
  const root = yield* tempRoot
  const storage = yield* FileSystemObjectStorage.make({ root, partSize })
  return { root, storage, mp: Option.getOrThrow(storage.multipart) }
})

describe("FileSystemObjectStorage", () => {
  it.scoped("full parts are written once, at their place: completion moves that very file into place", () =>
    Effect.gen(function*() {
      const { mp, root } = yield* withParts
      const data = new Uint8Array(2 * partSize + 5000).map((_, i) => (i * 7) % 251)
      const session = yield* mp.initMultipart({ key: "big/file.bin" })
      const parts = []
      // out of order; the last (short) part goes to its own file
      for (const n of [3, 1, 2]) {
        const body = data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length))
        parts[n - 1] = yield* mp.putPart({ ...session, partNumber: n, body, size: body.length })
      }
      const folder = join(root, ".multipart", session.uploadId)
      expect(readdirSync(folder).sort()).toEqual(["1.etag", "2.etag", "3.etag", "3.part", "data", "manifest.json"])
      const dataInode = (yield* Effect.promise(() => fsp.stat(join(folder, "data")))).ino
      const info = yield* mp.completeMultipart({
        ...session,
        parts: parts.map((p) => ({ partNumber: p.partNumber, etag: p.etag }))
      })
      expect(info.size).toBe(data.length)
      const object = join(root, "big", "file.bin")
      expect((yield* Effect.promise(() => fsp.stat(object))).ino, "the object is the file the parts were written to")
        .toBe(dataInode)
      expect(md5(readFileSync(object))).toBe(md5(data))
      expect(existsSync(folder)).toBe(false)
    }))

  it.scoped("a full part cut short in place leaves that part missing, to be sent again; nothing else changes", () =>
    Effect.gen(function*() {
      const { mp, root } = yield* withParts
      const data = new Uint8Array(2 * partSize).map((_, i) => (i * 13) % 251)
      const session = yield* mp.initMultipart({ key: "cut/file.bin" })
      const first = yield* mp.putPart({ ...session, partNumber: 1, body: data.subarray(0, partSize), size: partSize })
      // part 1 again, but the body fails half-way: the old part 1 is gone, not half-replaced
      const failing = Stream.concat(Stream.make(data.subarray(0, 1000)), Stream.fail("cut" as const))
      const cut = yield* Effect.flip(mp.putPart({ ...session, partNumber: 1, body: failing, size: partSize }))
      expect(cut).toBe("cut")
      const folder = join(root, ".multipart", session.uploadId)
      expect(existsSync(join(folder, "1.etag"))).toBe(false)
      const second = yield* mp.putPart({ ...session, partNumber: 2, body: data.subarray(partSize), size: partSize })
      const missing = yield* Effect.flip(mp.completeMultipart({
        ...session,
        parts: [{ partNumber: 1, etag: first.etag }, { partNumber: 2, etag: second.etag }]
      }))
      expect(missing._tag).toBe("PartETagMismatch")
      const again = yield* mp.putPart({ ...session, partNumber: 1, body: data.subarray(0, partSize), size: partSize })
      expect(again.etag).toBe(first.etag)
      yield* mp.completeMultipart({
        ...session,
        parts: [{ partNumber: 1, etag: again.etag }, { partNumber: 2, etag: second.etag }]
      })
      expect(md5(readFileSync(join(root, "cut", "file.bin")))).toBe(md5(data))
    }))

  it.scoped("a part writer waiting on its client holds up no other key or session, even one its body reads", () =>
    Effect.gen(function*() {
      const { mp, root, storage } = yield* withParts
      const part = new Uint8Array(partSize).map((_, i) => (i * 7) % 251)
      // A full part (written in place, under its locks) whose client stalls half-way.
      const stalled = yield* mp.initMultipart({ key: "stalled/file.bin" })
      const started = yield* Deferred.make<void>()
      const body = Stream.make(part.subarray(0, partSize / 2)).pipe(
        Stream.concat(Stream.fromEffect(Deferred.succeed(started, undefined)).pipe(Stream.drain)),
        Stream.concat(Stream.never)
      )
      const writer = yield* Effect.fork(mp.putPart({ ...stalled, partNumber: 1, body, size: partSize }))
      yield* Deferred.await(started)
      // Meanwhile: objects (300 keys; with 64 shared lock stripes some would share the stalled one's) ...
      const keys = Array.from({ length: 300 }, (_, i) => `other/${i}.txt`)
      yield* Effect.forEach(keys, (key) =>
        Effect.gen(function*() {
          yield* storage.putObject({ key, body: text(key) })
          expect((yield* storage.statObject(key)).size).toBe(key.length)
          expect(yield* readText((yield* storage.getObject({ key })).body)).toBe(key)
          yield* storage.deleteObject(key)
        }), { concurrency: 8 }).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "objects blocked" }))
      // ... other sessions, whose part bodies read an object of the same storage, as a resumed upload's do ...
      yield* storage.putObject({ key: "tail.bin", body: part.subarray(0, partSize / 4) })
      yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const session = yield* mp.initMultipart({ key: `sessions/${i}.bin` })
          const tail = Stream.unwrap(Effect.map(storage.getObject({ key: "tail.bin" }), (object) => object.body))
          const rest = Stream.make(part.subarray(partSize / 4))
          const stored = yield* mp.putPart({
            ...session,
            partNumber: 1,
            body: Stream.concat(tail, rest),
            size: partSize
          })
          const info = yield* mp.completeMultipart({ ...session, parts: [stored] })
          expect(info.size).toBe(partSize)
        }), { concurrency: 8 }).pipe(
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "sessions blocked" })
        )
      // ... and the stalled writer itself is still waiting, then leaves its part missing.
      expect(writer.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(writer)
      expect(existsSync(join(root, ".multipart", stalled.uploadId, "1.etag"))).toBe(false)
    }))

  it.scoped("a completion cut short after the object moved into place: the retry finds the session done", () =>
    Effect.gen(function*() {
      const { mp, root } = yield* withParts
      const session = yield* mp.initMultipart({ key: "done/file.bin" })
      const part = yield* mp.putPart({ ...session, partNumber: 1, body: new Uint8Array(partSize), size: partSize })
      // as if a crash had come after `data` moved into place, and the session was put back
      const folder = join(root, ".multipart", session.uploadId)
      renameSync(join(folder, "data"), join(root, "moved-away"))
      const retry = yield* Effect.flip(mp.completeMultipart({ ...session, parts: [part] }))
      expect(retry._tag).toBe("UploadSessionNotFound")
      expect(existsSync(folder), "what was left of the session is gone").toBe(false)
    }))

  it.scoped("defaults to 4 MiB parts and no part count limit", () =>
    Effect.gen(function*() {
      const storage = yield* FileSystemObjectStorage.make({ root: yield* tempRoot })
      const mp = Option.getOrThrow(storage.multipart)
      expect(storage.name).toBe("filesystem")
      expect(mp.partSize).toBe(4 * 1024 * 1024)
      expect(mp.maxPartCount).toBe(0)
    }))

  it.scoped("rejects keys that are empty, absolute, odd, reserved or would escape the root", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const storage = yield* FileSystemObjectStorage.make({ root: join(root, "objects") })
      const bad = [
        "",
        "/etc/passwd",
        "../outside",
        "a/../../outside",
        "a/../b",
        "./a",
        "a/./b",
        "a//b",
        "a/",
        "..",
        ".",
        "a\\b",
        "..\\outside",
        "a\0b",
        ".tmp/x",
        ".meta/x",
        ".multipart/x",
        `${"n".repeat(256)}/x`
      ]
      for (const key of bad) {
        expect(yield* failureTag(storage.putObject({ key, body: text("x") })), key).toBe("InvalidObjectKey")
        expect(yield* failureTag(storage.getObject({ key })), key).toBe("InvalidObjectKey")
        expect(yield* failureTag(storage.statObject(key)), key).toBe("InvalidObjectKey")
        expect(yield* failureTag(storage.deleteObject(key)), key).toBe("InvalidObjectKey")
        expect(yield* failureTag(storage.copyObject("fine", key)), key).toBe("InvalidObjectKey")
        expect(yield* failureTag(Option.getOrThrow(storage.multipart).initMultipart({ key })), key).toBe(
          "InvalidObjectKey"
        )
      }
      expect(readdirSync(root)).toEqual(["objects"])

      const odd = ["a b/ü ñ.txt", "x..y", ".hidden/file", "...", "a/.../b", "tmp/x", "100%/#?&=.bin"]
      for (const key of odd) {
        yield* storage.putObject({ key, body: text(key) })
        expect(yield* readText((yield* storage.getObject({ key })).body)).toBe(key)
      }
    }))

  it.scoped("a key cannot be both an object and a folder of keys", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const storage = yield* FileSystemObjectStorage.make({ root })
      yield* storage.putObject({ key: "a", body: text("file") })
      expect(yield* failureTag(storage.putObject({ key: "a/b", body: text("x") }))).toBe("InvalidObjectKey")
      yield* storage.putObject({ key: "x/y", body: text("inside") })
      expect(yield* failureTag(storage.putObject({ key: "x", body: text("x") }))).toBe("InvalidObjectKey")
      expect(yield* failureTag(storage.statObject("x"))).toBe("ObjectNotFound")
      expect(yield* failureTag(storage.getObject({ key: "x" }))).toBe("ObjectNotFound")
      yield* storage.deleteObject("x")
      expect(yield* readText((yield* storage.getObject({ key: "x/y" })).body)).toBe("inside")
      expect(readdirSync(join(root, ".tmp"))).toEqual([])
    }))

  it.scoped("writes are atomic: nothing partial is visible, and temp files are cleaned", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const storage = yield* FileSystemObjectStorage.make({ root })
      yield* storage.putObject({ key: "doc.txt", body: text("old content") })

      // A writer paused mid-body: the key still shows the old object whole.
      const gate = yield* Deferred.make<void>()
      const paused = Stream.concat(
        Stream.make(text("new ")),
        Stream.fromEffect(Effect.as(Deferred.await(gate), text("content")))
      )
      const writer = yield* Effect.fork(storage.putObject({ key: "doc.txt", body: paused, size: 11 }))
      yield* waitUntil(() => readdirSync(join(root, ".tmp")).length > 0)
      expect(readFileSync(join(root, "doc.txt"), "utf8")).toBe("old content")
      expect(yield* readText((yield* storage.getObject({ key: "doc.txt" })).body)).toBe("old content")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(writer)
      expect(readFileSync(join(root, "doc.txt"), "utf8")).toBe("new content")
      expect((yield* storage.statObject("doc.txt")).eTag).toBe(md5("new content"))

      // A body failing midway leaves the old object and no temp file.
      const failing = Stream.concat(Stream.make(text("partial")), Stream.fail("boom" as const))
      expect(yield* Effect.flip(storage.putObject({ key: "doc.txt", body: failing }))).toBe("boom")
      expect(readFileSync(join(root, "doc.txt"), "utf8")).toBe("new content")

      // So does an interrupted writer.
      const stuck = Stream.concat(Stream.make(text("never finished")), Stream.never)
      const interrupted = yield* Effect.fork(storage.putObject({ key: "doc.txt", body: stuck }))
      yield* waitUntil(() => readdirSync(join(root, ".tmp")).length > 0)
      yield* Fiber.interrupt(interrupted)
      expect(readFileSync(join(root, "doc.txt"), "utf8")).toBe("new content")
      expect(readdirSync(join(root, ".tmp"))).toEqual([])
    }))

  it.scoped("deleting removes emptied parent folders up to the root", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const storage = yield* FileSystemObjectStorage.make({ root })
      yield* storage.putObject({ key: "a/b/c/deep.txt", body: text("deep") })
      yield* storage.putObject({ key: "a/keep.txt", body: text("keep") })
      yield* storage.deleteObject("a/b/c/deep.txt")
      expect(existsSync(join(root, "a", "b"))).toBe(false)
      expect(readdirSync(join(root, "a"))).toEqual(["keep.txt"])
      yield* storage.deleteObjects(["a/keep.txt"])
      expect(existsSync(join(root, "a"))).toBe(false)
      expect(existsSync(root)).toBe(true)
      expect(readdirSync(root).sort()).toEqual([".meta", ".multipart", ".tmp"])
    }))

  it.scoped("content type, ETag and metadata persist across instances; so do multipart sessions", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const first = yield* FileSystemObjectStorage.make({ root, partSize: 1024 })
      const put = yield* first.putObject({
        key: "reports/q1.pdf",
        body: text("%PDF-1.7"),
        contentType: "application/x-custom",
        metadata: { author: "carol", "original-name": "Q1 report.pdf" }
      })
      const mp = Option.getOrThrow(first.multipart)
      const { uploadId } = yield* mp.initMultipart({ key: "big.bin", contentType: "video/webm", metadata: { a: "b" } })
      const part = yield* mp.putPart({ key: "big.bin", uploadId, partNumber: 1, body: text("abc") })

      const second = yield* FileSystemObjectStorage.make({ root, partSize: 1024 })
      expect(yield* second.statObject("reports/q1.pdf")).toEqual(put)
      expect((yield* listAll(Option.getOrThrow(second.multipart).listMultipartUploads())).map((u) => u.uploadId))
        .toEqual([uploadId])
      const info = yield* Option.getOrThrow(second.multipart).completeMultipart({
        key: "big.bin",
        uploadId,
        parts: [part]
      })
      expect(info).toMatchObject({ size: 3, contentType: "video/webm", metadata: { a: "b" } })
      expect(readdirSync(join(root, ".multipart"))).toEqual([])
      expect(readdirSync(join(root, ".tmp"))).toEqual([])
    }))

  it.scoped("an object without a sidecar has an empty ETag and a content type from its extension", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const storage = yield* FileSystemObjectStorage.make({ root })
      mkdirSync(join(root, "manual"))
      writeFileSync(join(root, "manual", "notes.txt"), "written by hand")
      writeFileSync(join(root, "manual", "photo.JPG"), "jpeg")
      writeFileSync(join(root, "manual", "blob"), "?")
      expect(yield* storage.statObject("manual/notes.txt")).toMatchObject({
        size: 15,
        eTag: "",
        contentType: "text/plain",
        metadata: {}
      })
      expect((yield* storage.statObject("manual/photo.JPG")).contentType).toBe("image/jpeg")
      expect((yield* storage.statObject("manual/blob")).contentType).toBe("application/octet-stream")

      // A sidecar left over from other bytes (say, a crash mid-replace) is ignored.
      yield* storage.putObject({ key: "manual/notes.txt", body: text("short"), contentType: "text/x-mine" })
      writeFileSync(join(root, "manual", "notes.txt"), "rewritten by hand, longer")
      expect(yield* storage.statObject("manual/notes.txt")).toMatchObject({
        eTag: "",
        contentType: "text/plain"
      })
    }))

  it.scoped("listing walks only objects: internal folders are never listed", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const storage = yield* FileSystemObjectStorage.make({ root })
      const mp = Option.getOrThrow(storage.multipart)
      const { uploadId } = yield* mp.initMultipart({ key: "pending.bin" })
      yield* mp.putPart({ key: "pending.bin", uploadId, partNumber: 1, body: text("part") })
      yield* storage.putObject({ key: "z/last", body: text("1") })
      yield* storage.putObject({ key: ".hidden/first", body: text("2") })
      expect((yield* listAll(storage.listObjects())).map((o) => o.key)).toEqual([".hidden/first", "z/last"])
    }))

  it.scoped("after a crash: a session a complete had taken away is put back, so the complete can be retried", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const first = yield* FileSystemObjectStorage.make({ root, partSize: 4 })
      const mp = Option.getOrThrow(first.multipart)
      const { uploadId } = yield* mp.initMultipart({ key: "crash/a.bin" })
      const part1 = yield* mp.putPart({ key: "crash/a.bin", uploadId, partNumber: 1, body: text("abcd") })
      const part2 = yield* mp.putPart({ key: "crash/a.bin", uploadId, partNumber: 2, body: text("ef") })
      // the state a kill right after the session was taken away leaves
      renameSync(join(root, ".multipart", uploadId), join(root, ".tmp", `${uploadId}.${randomUUID()}.closing`))

      const restarted = yield* FileSystemObjectStorage.make({ root, partSize: 4 })
      const info = yield* Option.getOrThrow(restarted.multipart).completeMultipart({
        key: "crash/a.bin",
        uploadId,
        parts: [part1, part2].map((p) => ({ partNumber: p.partNumber, etag: p.etag }))
      })
      expect(info.size).toBe(6)
      expect(yield* readText((yield* restarted.getObject({ key: "crash/a.bin" })).body)).toBe("abcdef")
      expect(readdirSync(join(root, ".tmp"))).toEqual([])
    }))

  it.scoped("a session taken aside is put back only when its owner is gone", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      const storage = yield* FileSystemObjectStorage.make({ root, partSize: 4 })
      const mp = Option.getOrThrow(storage.multipart)
      const self = currentOwner(Date.now())
      const dead = yield* Effect.promise(() =>
        new Promise<number>((done) => {
          const child = spawn(process.execPath, ["-e", ""])
          child.on("exit", () => done(child.pid!))
        })
      )
      const otherHost = "0123456789abcdef" === self.host ? "fedcba9876543210" : "0123456789abcdef"
      const hour = FileSystemObjectStorage.staleClosingAge
      const cases = {
        thisProcess: { owner: self, putBack: false },
        deadPid: { owner: { ...self, pid: dead }, putBack: true },
        // the same pid, started at another time: the owner is gone and its pid reused
        restartedPid: { owner: { ...self, start: self.start + 1 }, putBack: true },
        rebootedHost: { owner: { ...self, boot: self.boot === "00000000" ? "11111111" : "00000000" }, putBack: true },
        otherHostRecent: { owner: { ...self, host: otherHost, at: Date.now() - hour + 60_000 }, putBack: false },
        otherHostStale: { owner: { ...self, host: otherHost, at: Date.now() - hour - 60_000 }, putBack: true }
      }
      const sessions = new Map<string, string>()
      for (const [name, { owner }] of Object.entries(cases)) {
        const { uploadId } = yield* mp.initMultipart({ key: `owners/${name}` })
        sessions.set(name, uploadId)
        renameSync(
          join(root, ".multipart", uploadId),
          join(root, ".tmp", `${uploadId}.${randomUUID()}.${ownerToken(owner)}.closing`)
        )
      }
      yield* FileSystemObjectStorage.make({ root, partSize: 4 })
      for (const [name, { putBack }] of Object.entries(cases)) {
        expect([name, existsSync(join(root, ".multipart", sessions.get(name)!))]).toEqual([name, putBack])
      }
      expect(readdirSync(join(root, ".tmp")).length).toBe(2)

      // A shorter bound for other hosts puts back the recent one too.
      yield* FileSystemObjectStorage.make({ root, partSize: 4, closingTimeout: "1 minute" })
      expect(existsSync(join(root, ".multipart", sessions.get("otherHostRecent")!))).toBe(true)
      expect(existsSync(join(root, ".multipart", sessions.get("thisProcess")!))).toBe(false)
    }))

  it.scoped("after a crash: temporary files not written for an hour are removed, recent ones kept", () =>
    Effect.gen(function*() {
      const root = yield* tempRoot
      yield* FileSystemObjectStorage.make({ root })
      const tmp = join(root, ".tmp")
      writeFileSync(join(tmp, "stale-body"), "half a body")
      mkdirSync(join(tmp, "stale-staging"))
      writeFileSync(join(tmp, "live-body"), "being written")
      const old = new Date(Date.now() - FileSystemObjectStorage.staleTemporaryAge - 60_000)
      utimesSync(join(tmp, "stale-body"), old, old)
      utimesSync(join(tmp, "stale-staging"), old, old)
      yield* FileSystemObjectStorage.make({ root })
      expect(readdirSync(tmp)).toEqual(["live-body"])
    }))
})

const waitUntil = (condition: () => boolean) =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail("not yet" as const)).pipe(
    Effect.retry({ times: 500, schedule: Schedule.spaced("10 millis") })
  )
