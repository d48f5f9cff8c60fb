import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as MemoryObjectStorage from "../../src/layers/objects/MemoryObjectStorage.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"
import { objectStorageContract } from "./contract.js"

objectStorageContract({
  name: "MemoryObjectStorage",
  layer: MemoryObjectStorage.layer({ partSize: 64 * 1024 }),
  // The memory backend keeps the bytes by nature: the round trip runs, the RSS bound does not apply.
  boundedMemory: false,
  bulkDeleteCount: 5
})

describe("MemoryObjectStorage options", () => {
  it.effect("defaults to 64 KiB parts and no part count limit", () =>
    Effect.gen(function*() {
      const storage = yield* ObjectStorage
      const mp = Option.getOrThrow(storage.multipart)
      expect(storage.name).toBe("memory")
      expect(mp.partSize).toBe(64 * 1024)
      expect(mp.maxPartCount).toBe(0)
    }).pipe(Effect.provide(MemoryObjectStorage.layer())))
})
