/**
 * One instance of the filesystem backend over STORAGE_ROOT, for the
 * multi-process tests. It is built (which runs its crash recovery), then:
 * - MODE=hold: opens a session of two parts, takes it aside as a completion
 *   does, prints `{"key","uploadId","parts"}` on one line and waits to be
 *   killed (a completion paused mid-way);
 * - MODE=start: prints `started` and exits (an instance, or a CLI run,
 *   starting up against the folder).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import { renameSync } from "node:fs"
import { join } from "node:path"
import { currentOwner, ownerToken } from "../../../src/internal/owner.js"
import * as FileSystemObjectStorage from "../../../src/layers/objects/FileSystemObjectStorage.js"

const root = process.env.STORAGE_ROOT!

const hold = Effect.gen(function*() {
  const storage = yield* FileSystemObjectStorage.make({ root, partSize: 4 })
  const mp = Option.getOrThrow(storage.multipart)
  const key = "held/object.bin"
  const { uploadId } = yield* mp.initMultipart({ key })
  const parts = [
    yield* mp.putPart({ key, uploadId, partNumber: 1, body: new TextEncoder().encode("abcd") }),
    yield* mp.putPart({ key, uploadId, partNumber: 2, body: new TextEncoder().encode("ef") })
  ]
  // What a completion does first: the session moves aside under a name that records this process.
  renameSync(
    join(root, ".multipart", uploadId),
    join(root, ".tmp", `${uploadId}.${randomUUID()}.${ownerToken(currentOwner(Date.now()))}.closing`)
  )
  process.stdout.write(`${JSON.stringify({ key, uploadId, parts })}\n`)
  return yield* Effect.never
})

const start = Effect.gen(function*() {
  yield* FileSystemObjectStorage.make({ root, partSize: 4 })
  process.stdout.write("started\n")
})

Effect.runPromise(process.env.MODE === "hold" ? hold : start).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
