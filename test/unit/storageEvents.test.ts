/**
 * `STORAGE_EVENTS` chooses where `Storage.layerFromConfig` publishes its
 * events: with `outbox`, a drained delete leaves its `FileDeleted` row in
 * `sys_storage_event_outbox` (what several servers on one database share);
 * with the default, the outbox stays empty; a value it does not know stops
 * start-up naming the variable.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DeleteWorker } from "../../src/layers/DeleteWorker.js"
import * as SqlEventOutbox from "../../src/layers/sql/SqlEventOutbox.js"
import * as Storage from "../../src/layers/Storage.js"
import { DeleteScheduler } from "../../src/services/DeleteScheduler.js"

/** Schedules one delete, drains it, and answers the outbox's events, with `env` on a fresh SQLite file. */
const deleteOnce = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "effect-storage-events-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const config = new Map(Object.entries({
      DATABASE_URL: `sqlite:${join(dir, "storage.db")}`,
      STORAGE_BACKEND: "memory",
      STORAGE_RUN_WORKERS: "false",
      ...env
    }))
    return yield* Effect.gen(function*() {
      yield* (yield* DeleteScheduler).schedule(["pub/a.bin"], "deleted")
      const report = yield* (yield* DeleteWorker).runOnce
      assert.strictEqual(report.deleted, 1)
      return yield* SqlEventOutbox.take(10)
    }).pipe(
      Effect.provide(
        Storage.layerFromConfig.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(config))))
      )
    )
  }).pipe(Effect.scoped)

describe("STORAGE_EVENTS", () => {
  it.effect("outbox: each drained delete is one FileDeleted row of the outbox", () =>
    Effect.gen(function*() {
      const events = yield* deleteOnce({ STORAGE_EVENTS: "outbox" })
      assert.strictEqual(events.length, 1)
      assert.deepStrictEqual(
        { ...events[0]!.event },
        { _tag: "storage.file.deleted", key: "pub/a.bin", reason: "deleted" }
      )
    }))

  it.effect("log (the default) and none leave the outbox empty", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* deleteOnce({}), [])
      assert.deepStrictEqual(yield* deleteOnce({ STORAGE_EVENTS: "none" }), [])
    }))

  it.effect("an unknown value stops start-up, naming the variable", () =>
    Effect.gen(function*() {
      const failure = yield* Effect.flip(deleteOnce({ STORAGE_EVENTS: "kafka" }))
      assert.include(String(failure), "STORAGE_EVENTS")
    }))
})
