/**
 * bench:reconcile: the reconciler's walk over a large bucket.
 *
 * A synthetic bucket of N objects (1,000,000; 100,000 with `--quick`) is
 * listed in pages of 1,000 and merged with a registry of the same keys but
 * every 1,000th (those objects are unknown) plus one record per 1,000 whose
 * object is gone. The database checks answer at once, so the figure is the
 * walk and merge alone: the library's own cost per object. Reports the wall
 * time and peak heap of `Reconciler.run` (a dry run) and checks the
 * findings are exact.
 *
 * `--baseline=REV` also measures the library as of git revision REV, in
 * the same run, alternating.
 */
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { fmt, fmtRatio, fmtSpread, log, nowMs, pairedRatio, parseFlags, record, spread, table } from "./lib/common.js"
import { exportRevision, type Library, loadLibrary } from "./lib/library.js"

const flags = parseFlags()
const objectCount = Number(flags.options.get("objects") ?? (flags.quick ? 100_000 : 1_000_000))
const baselineRev = flags.options.get("baseline")
const pageSize = 1000

const keyOf = (i: number) => `priv/${String(i).padStart(8, "0")}.bin`
const old = DateTime.unsafeMake("2020-01-01T00:00:00Z")

/** One dry run over the synthetic bucket; answers milliseconds, peak heap and the findings. */
const measure = async (library: Library) => {
  const objects = Stream.paginateChunkEffect(0, (from) => {
    const to = Math.min(objectCount, from + pageSize)
    const page = Array.from({ length: to - from }, (_, j) => ({
      key: keyOf(from + j),
      size: 1,
      eTag: "e",
      lastModified: old
    }))
    return Effect.succeed([Chunk.unsafeFromArray(page), to < objectCount ? Option.some(to) : Option.none()] as const)
  })
  // Registry: every key but each 1,000th, and after each 1,000th key one record whose object is gone.
  const registryKeys: Array<string> = []
  for (let i = 0; i < objectCount; i++) {
    if (i % 1000 !== 0) registryKeys.push(keyOf(i))
    if (i % 1000 === 500) registryKeys.push(`${keyOf(i)}.gone`)
  }
  registryKeys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  const recordOf = (key: string) => ({
    key,
    status: "uploaded",
    size: 1,
    createdBy: "bench",
    uploadedAt: old
  })
  const liveAfter = (after: string, limit: number) =>
    Effect.sync(() => {
      let lo = 0
      let hi = registryKeys.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (Buffer.compare(Buffer.from(registryKeys[mid]!), Buffer.from(after)) <= 0) lo = mid + 1
        else hi = mid
      }
      return registryKeys.slice(lo, lo + limit).map(recordOf)
    })
  const stubs = Layer.mergeAll(
    Layer.succeed(
      library.ObjectStorage,
      {
        name: "synthetic",
        listObjects: () => objects,
        statObject: (key: string) => Effect.fail(new library.ObjectNotFound({ key })),
        multipart: Option.none()
      } as unknown as typeof library.ObjectStorage.Service
    ),
    Layer.succeed(
      library.FileRegistry,
      {
        liveAfter,
        get: () => Effect.succeed(Option.none()),
        lookup: (keys: Iterable<string>) => Effect.succeed([...keys].filter((k) => k.endsWith(".gone")).map(recordOf))
      } as unknown as typeof library.FileRegistry.Service
    ),
    Layer.succeed(
      library.ClaimStore,
      {
        findByKeys: () => Effect.succeed([])
      } as unknown as typeof library.ClaimStore.Service
    ),
    Layer.succeed(
      library.DeleteQueue,
      {
        findByKeys: () => Effect.succeed([])
      } as unknown as typeof library.DeleteQueue.Service
    )
  )
  globalThis.gc?.()
  let peak = process.memoryUsage().heapUsed
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed)
  }, 20)
  const started = nowMs()
  const report = await Effect.runPromise(
    Effect.flatMap(library.Reconciler, (r) => r.run({ grace: "1 hour" })).pipe(
      Effect.provide(library.Reconciler.Default),
      Effect.provide(stubs)
    )
  )
  const ms = nowMs() - started
  clearInterval(sampler)
  const expectedUnknown = Math.ceil(objectCount / 1000)
  const expectedMissing = Math.floor((objectCount - 501) / 1000) + 1
  if (report.unknownObjects.count !== expectedUnknown || report.missingObjects.count !== expectedMissing) {
    throw new Error(
      `wrong findings: ${report.unknownObjects.count} unknown (want ${expectedUnknown}), ` +
        `${report.missingObjects.count} missing (want ${expectedMissing})`
    )
  }
  return { ms, peakMiB: peak / 1024 / 1024, scanned: report.objectsScanned }
}

const main = async () => {
  const variants: Array<{ id: string; label: string; library: Library }> = [
    { id: "this", label: "this checkout", library: await loadLibrary() }
  ]
  if (baselineRev !== undefined) {
    variants.push({
      id: "baseline",
      label: `baseline ${baselineRev}`,
      library: await loadLibrary(exportRevision(baselineRev))
    })
  }
  const times = new Map<string, Array<number>>(variants.map((v) => [v.id, []]))
  const heaps = new Map<string, Array<number>>(variants.map((v) => [v.id, []]))
  await measure(variants[0]!.library) // warm-up
  for (let run = 0; run < flags.runs; run++) {
    for (const variant of run % 2 === 0 ? variants : [...variants].reverse()) {
      const result = await measure(variant.library)
      log(`${variant.label}: ${fmt(result.ms, 0)} ms, peak heap ${fmt(result.peakMiB, 1)} MiB`)
      times.get(variant.id)!.push(result.ms)
      heaps.get(variant.id)!.push(result.peakMiB)
    }
  }
  const rows = variants.map((v) => [
    v.label,
    fmtSpread(spread(times.get(v.id)!), 0, " ms"),
    fmt((objectCount / spread(times.get(v.id)!).median) * 1000, 0),
    fmtSpread(spread(heaps.get(v.id)!), 1, " MiB"),
    v.id === "this" && times.has("baseline") ? fmtRatio(pairedRatio(times.get("this")!, times.get("baseline")!)) : ""
  ])
  record({
    benchmark: "bench:reconcile",
    flags,
    versions: ["effect"],
    body: [
      `Dry run over ${
        objectCount.toLocaleString("en-US")
      } synthetic objects (pages of ${pageSize}); database checks answer at once.`,
      "",
      table(["library", "wall", "objects/s", "peak heap", "time, this / baseline"], rows)
    ].join("\n")
  })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
