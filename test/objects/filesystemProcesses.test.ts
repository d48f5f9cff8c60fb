/**
 * Two processes share one filesystem backend folder: a session that one
 * holds taken aside (a completion under way) is not put back by the other
 * starting up; once the holder is killed -9, recovery puts it back and the
 * completion can be retried, and a live instance takes such a session over
 * without waiting for a restart (to complete it, or to abort it).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as FileSystemObjectStorage from "../../src/layers/objects/FileSystemObjectStorage.js"
import { tsxArgs } from "../support/processes.js"

const instance = (root: string, mode: "hold" | "start") =>
  spawn(process.execPath, tsxArgs("test/objects/processes/filesystemInstance.ts"), {
    env: { ...process.env, STORAGE_ROOT: root, MODE: mode },
    stdio: ["ignore", "pipe", "pipe"]
  })

/** The first line the child prints (its stderr goes into the error when it exits first). */
const firstLine = (child: ChildProcess) =>
  new Promise<string>((done, fail) => {
    let out = ""
    let err = ""
    child.stdout!.on("data", (d) => {
      out += d
      const end = out.indexOf("\n")
      if (end >= 0) done(out.slice(0, end))
    })
    child.stderr!.on("data", (d) => (err += d))
    child.on("exit", (code) => fail(new Error(`exited ${code} before printing: ${err}`)))
  })

const exited = (child: ChildProcess) =>
  new Promise<number | null>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done(child.exitCode)
    else child.on("exit", (code) => done(code))
  })

describe("FileSystemObjectStorage shared by processes", () => {
  const cleanup: Array<() => void> = []
  afterEach(() => {
    for (const step of cleanup.splice(0)) step()
  })

  it("a session another live process holds aside is left alone; once it is killed, it is put back", async () => {
    const root = mkdtempSync(join(tmpdir(), "effect-storage-fs-shared-"))
    cleanup.push(() => rmSync(root, { recursive: true, force: true }))
    const holder = instance(root, "hold")
    cleanup.push(() => holder.kill("SIGKILL"))
    const held = JSON.parse(await firstLine(holder)) as {
      key: string
      uploadId: string
      parts: Array<{ partNumber: number; etag: string }>
    }
    const session = join(root, ".multipart", held.uploadId)
    const asideNames = () => readdirSync(join(root, ".tmp")).filter((name) => name.endsWith(".closing"))
    expect(existsSync(session)).toBe(false)
    expect(asideNames()).toHaveLength(1)
    expect(asideNames()[0]).toContain(`-${holder.pid}-`)

    // Another process starts up against the folder (an instance, or a CLI
    // run of sweep/drain/reconcile): the session stays with its holder.
    const starter = instance(root, "start")
    expect(await firstLine(starter)).toBe("started")
    expect(await exited(starter)).toBe(0)
    // And so does a backend built in this process.
    await Effect.runPromise(FileSystemObjectStorage.make({ root, partSize: 4 }))
    expect(existsSync(session)).toBe(false)
    expect(asideNames()).toHaveLength(1)

    holder.kill("SIGKILL")
    await exited(holder)
    const starterAfter = instance(root, "start")
    expect(await firstLine(starterAfter)).toBe("started")
    expect(await exited(starterAfter)).toBe(0)
    expect(existsSync(session)).toBe(true)
    expect(asideNames()).toEqual([])

    // The completion the holder never finished can now be retried.
    const storage = await Effect.runPromise(FileSystemObjectStorage.make({ root, partSize: 4 }))
    const info = await Effect.runPromise(
      Option.getOrThrow(storage.multipart).completeMultipart({
        key: held.key,
        uploadId: held.uploadId,
        parts: held.parts.map((p) => ({ partNumber: p.partNumber, etag: p.etag }))
      })
    )
    expect(info.size).toBe(6)
    expect(readdirSync(join(root, ".tmp"))).toEqual([])
  }, 60_000)

  it(
    "without any restart, a live instance takes over a session whose holder was killed: to complete it, or to abort it",
    async () => {
      const root = mkdtempSync(join(tmpdir(), "effect-storage-fs-shared-"))
      cleanup.push(() => rmSync(root, { recursive: true, force: true }))
      // Built before the holders die: its start-up recovery cannot help.
      const storage = await Effect.runPromise(FileSystemObjectStorage.make({ root, partSize: 4 }))
      const multipart = Option.getOrThrow(storage.multipart)
      const asideNames = () => readdirSync(join(root, ".tmp")).filter((name) => name.endsWith(".closing"))
      const hold = async () => {
        const holder = instance(root, "hold")
        cleanup.push(() => holder.kill("SIGKILL"))
        const held = JSON.parse(await firstLine(holder)) as {
          key: string
          uploadId: string
          parts: Array<{ partNumber: number; etag: string }>
        }
        return { holder, held, input: { key: held.key, uploadId: held.uploadId, parts: held.parts } }
      }

      // A retried completion: refused while the holder lives, done once it is dead.
      const first = await hold()
      const whileHeld = await Effect.runPromise(Effect.either(multipart.completeMultipart(first.input)))
      expect(whileHeld._tag === "Left" && whileHeld.left._tag).toBe("UploadSessionNotFound")
      await Effect.runPromise(multipart.abortMultipart(first.input))
      expect(asideNames()).toHaveLength(1)
      first.holder.kill("SIGKILL")
      await exited(first.holder)
      // Not for another key.
      const foreign = await Effect.runPromise(
        Effect.either(multipart.completeMultipart({ ...first.input, key: "other/object.bin" }))
      )
      expect(foreign._tag === "Left" && foreign.left._tag).toBe("UploadSessionNotFound")
      const info = await Effect.runPromise(multipart.completeMultipart(first.input))
      expect(info.size).toBe(6)
      expect(asideNames()).toEqual([])

      // The delete queue's abort of a session whose holder died removes it.
      const second = await hold()
      second.holder.kill("SIGKILL")
      await exited(second.holder)
      await Effect.runPromise(multipart.abortMultipart(second.input))
      expect(asideNames()).toEqual([])
      expect(existsSync(join(root, ".multipart", second.held.uploadId))).toBe(false)
      // Nothing comes back when the next instance starts.
      await Effect.runPromise(FileSystemObjectStorage.make({ root, partSize: 4 }))
      expect(readdirSync(join(root, ".multipart"))).toEqual([])
    },
    60_000
  )
})
