import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { defaults, parseByteSize, parseDuration, StorageConfig } from "../../src/layers/StorageConfig.js"

const fromEnv = (env: Record<string, string>) =>
  StorageConfig.pipe(
    Effect.provide(StorageConfig.layerFromEnv.pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
    ))
  )

describe("StorageConfig", () => {
  it.effect("without variables every setting is the documented default", () =>
    Effect.gen(function*() {
      const settings = yield* fromEnv({})
      assert.deepStrictEqual(settings, defaults)
      assert.strictEqual(settings.maxUploadSize, 1024 * 1024 * 1024)
      assert.strictEqual(Duration.toMillis(settings.claimTtl), 24 * 3600_000)
      assert.deepStrictEqual(
        [
          settings.maxPendingClaims,
          settings.sweepBatchSize,
          settings.deleteBatchSize,
          settings.deleteConcurrency,
          settings.deleteMaxAttempts
        ],
        [100, 200, 100, 8, 12]
      )
      assert.isTrue(Option.isNone(settings.orphanRetention))
      assert.strictEqual(settings.maxBufferedBytes, 64 * 1024 * 1024)
    }))

  it.effect("reads units, and zero or negative means the default", () =>
    Effect.gen(function*() {
      const settings = yield* fromEnv({
        STORAGE_MAX_UPLOAD_SIZE: "16MiB",
        STORAGE_CLAIM_TTL: "2h",
        STORAGE_MAX_PENDING_CLAIMS: "0",
        STORAGE_DELETE_BATCH_SIZE: "-4",
        STORAGE_DELETE_INTERVAL: "30s",
        STORAGE_LEASE_WINDOW: "0",
        STORAGE_ORPHAN_RETENTION: "7d",
        STORAGE_ALLOW_PUBLIC_UPLOADS: "true",
        STORAGE_PART_SIZE: "5MiB",
        STORAGE_MAX_BUFFERED_BYTES: "256MiB"
      })
      assert.strictEqual(settings.maxUploadSize, 16 * 1024 * 1024)
      assert.strictEqual(Duration.toMillis(settings.claimTtl), 2 * 3600_000)
      assert.strictEqual(settings.maxPendingClaims, 100)
      assert.strictEqual(settings.deleteBatchSize, 100)
      assert.strictEqual(Duration.toMillis(settings.deleteInterval), 30_000)
      assert.strictEqual(Duration.toMillis(settings.leaseWindow), 5 * 60_000)
      assert.strictEqual(Duration.toMillis(Option.getOrThrow(settings.orphanRetention)), 7 * 86_400_000)
      assert.strictEqual(settings.allowPublicUploads, true)
      assert.deepStrictEqual(settings.partSize, Option.some(5 * 1024 * 1024))
      assert.strictEqual(settings.maxBufferedBytes, 256 * 1024 * 1024)
    }))

  it.effect("a malformed value fails start-up with a message naming the variable", () =>
    Effect.gen(function*() {
      for (
        const [name, value] of [
          ["STORAGE_MAX_UPLOAD_SIZE", "lots"],
          ["STORAGE_CLAIM_TTL", "soon"],
          ["STORAGE_SWEEP_BATCH_SIZE", "many"],
          ["STORAGE_ALLOW_PUBLIC_UPLOADS", "perhaps"]
        ]
      ) {
        const error = yield* Effect.flip(fromEnv({ [name!]: value! }))
        assert.include(String(error), name!)
      }
    }))

  it("parses durations and sizes", () => {
    assert.strictEqual(Option.map(parseDuration("500ms"), Duration.toMillis).pipe(Option.getOrThrow), 500)
    assert.strictEqual(Option.map(parseDuration("5 minutes"), Duration.toMillis).pipe(Option.getOrThrow), 300_000)
    assert.strictEqual(Option.map(parseDuration("90"), Duration.toMillis).pipe(Option.getOrThrow), 90_000)
    assert.isTrue(Option.isNone(parseDuration("later")))
    assert.deepStrictEqual(parseByteSize("64KiB"), Option.some(65536))
    assert.deepStrictEqual(parseByteSize("1GB"), Option.some(1_000_000_000))
    assert.deepStrictEqual(parseByteSize("2m"), Option.some(2 * 1024 * 1024))
    assert.deepStrictEqual(parseByteSize("1048576"), Option.some(1048576))
    assert.isTrue(Option.isNone(parseByteSize("1.5.2MB")))
  })
})
