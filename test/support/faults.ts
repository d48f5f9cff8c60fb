/**
 * An object backend wrapper for worker tests: records every delete and can
 * make deletes fail or stall, per key. It wraps a real backend (memory,
 * filesystem or S3), so everything else behaves as shipped.
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { InvalidObjectKey, StorageBackendError } from "../../src/schema/Errors.js"
import { ObjectStorage } from "../../src/services/ObjectStorage.js"

export type DeleteFault = StorageBackendError | InvalidObjectKey

export interface Faults {
  /** Keys whose delete fails with the error, until removed. */
  readonly failing: Map<string, DeleteFault>
  /** Keys whose delete waits this long first. */
  readonly slow: Map<string, Duration.DurationInput>
  /** Keys whose stat fails with the error, until removed. */
  readonly failingStat: Map<string, StorageBackendError>
  /** Keys whose stat waits this long first. */
  readonly slowStat: Map<string, Duration.DurationInput>
  /** Every delete call, in order, with its start and end (ms since epoch). */
  readonly deletes: Array<{ key: string; start: number; end: number }>
  /** Every abortMultipart call. */
  readonly aborts: Array<{ key: string; uploadId: string }>
}

export const Faults = Context.GenericTag<Faults>("test/Faults")

export const layer: Layer.Layer<ObjectStorage | Faults, never, ObjectStorage> = Layer.effectContext(
  Effect.gen(function*() {
    const inner = yield* ObjectStorage
    const faults: Faults = {
      failing: new Map(),
      slow: new Map(),
      failingStat: new Map(),
      slowStat: new Map(),
      deletes: [],
      aborts: []
    }
    const statObject = (key: string) =>
      Effect.gen(function*() {
        const delay = faults.slowStat.get(key)
        if (delay !== undefined) yield* Effect.sleep(delay)
        const fault = faults.failingStat.get(key)
        if (fault !== undefined) return yield* Effect.fail(fault)
        return yield* inner.statObject(key)
      })
    const deleteObject = (key: string) =>
      Effect.gen(function*() {
        const start = Date.now()
        const delay = faults.slow.get(key)
        if (delay !== undefined) yield* Effect.sleep(delay)
        const fault = faults.failing.get(key)
        if (fault !== undefined) return yield* Effect.fail(fault)
        yield* inner.deleteObject(key)
        faults.deletes.push({ key, start, end: Date.now() })
      })
    // A batch delete is the same per-key deletes, all at once, with per-key outcomes.
    const deleteEach = (keys: Iterable<string>) =>
      Effect.map(
        Effect.forEach(new Set(keys), (key) => Effect.map(Effect.either(deleteObject(key)), (e) => [key, e] as const), {
          concurrency: "unbounded"
        }),
        (outcomes) => {
          const failed = new Map<string, DeleteFault>()
          for (const [key, outcome] of outcomes) if (outcome._tag === "Left") failed.set(key, outcome.left)
          return failed as ReadonlyMap<string, DeleteFault>
        }
      )
    const wrapped: ObjectStorage["Type"] = {
      ...inner,
      deleteObject,
      deleteEach,
      statObject,
      multipart: Option.map(inner.multipart, (m) => ({
        ...m,
        abortMultipart: (input: { readonly key: string; readonly uploadId: string }) =>
          Effect.zipRight(Effect.sync(() => faults.aborts.push({ ...input })), m.abortMultipart(input))
      }))
    }
    return Context.make(ObjectStorage, wrapped).pipe(Context.add(Faults, faults))
  })
)
