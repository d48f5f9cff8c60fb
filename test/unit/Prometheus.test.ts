import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import { randomBytes } from "node:crypto"
import * as Prometheus from "../../src/http/Prometheus.js"

describe("Prometheus rendering", () => {
  it.effect("counters, gauges and histograms in the text format, one HELP/TYPE per name, labels escaped", () =>
    Effect.gen(function*() {
      const id = randomBytes(3).toString("hex")
      const counter = Metric.counter(`test_${id}_total`, { description: "things done", incremental: true })
      const gauge = Metric.gauge(`test_${id}_depth`, { description: "how deep" })
      const histogram = Metric.histogram(
        `test_${id}_seconds`,
        MetricBoundaries.linear({ start: 0, width: 1, count: 4 }),
        "how long"
      )
      yield* Metric.incrementBy(counter.pipe(Metric.tagged("kind", "a\"b")), 3)
      yield* Metric.incrementBy(counter.pipe(Metric.tagged("kind", "c")), 2)
      yield* Metric.set(gauge, 42)
      for (const v of [0.5, 1.5, 9]) yield* Metric.update(histogram, v)
      const text = yield* Prometheus.render
      const lines = text.split("\n")
      assert.strictEqual(lines.filter((l) => l === `# TYPE test_${id}_total counter`).length, 1)
      assert.include(lines, `# HELP test_${id}_total things done`)
      assert.include(lines, `test_${id}_total{kind="a\\"b"} 3`)
      assert.include(lines, `test_${id}_total{kind="c"} 2`)
      assert.include(lines, `# TYPE test_${id}_depth gauge`)
      assert.include(lines, `test_${id}_depth 42`)
      assert.include(lines, `# TYPE test_${id}_seconds histogram`)
      assert.include(lines, `test_${id}_seconds_bucket{le="1"} 1`)
      assert.include(lines, `test_${id}_seconds_bucket{le="2"} 2`)
      assert.include(lines, `test_${id}_seconds_bucket{le="+Inf"} 3`)
      assert.include(lines, `test_${id}_seconds_count 3`)
      assert.include(lines, `test_${id}_seconds_sum 11`)
    }))
})
