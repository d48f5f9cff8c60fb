/**
 * Every Effect metric of the process (effect-storage's and the app's) in
 * the Prometheus text exposition format, for a `GET /metrics` route.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricKey from "effect/MetricKey"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

/**
 * The text of all metrics.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render: Effect.Effect<string> = Effect.map(Metric.snapshot, renderPairs)

/**
 * A `text/plain; version=0.0.4` response with all metrics.
 *
 * @since 0.1.0
 * @category rendering
 */
export const response: Effect.Effect<HttpServerResponse.HttpServerResponse> = Effect.map(
  render,
  (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
)

/**
 * Renders metric pairs, grouped by name so each metric has one HELP/TYPE.
 *
 * @since 0.1.0
 * @category rendering
 */
export function renderPairs(pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string {
  const byName = new Map<string, Array<MetricPair.MetricPair.Untyped>>()
  for (const pair of pairs) {
    const name = sanitizeName(pair.metricKey.name)
    byName.set(name, [...(byName.get(name) ?? []), pair])
  }
  const lines: Array<string> = []
  for (const name of [...byName.keys()].sort()) {
    const group = byName.get(name)!
    const first = group[0]!
    const type = typeOf(first.metricState)
    const help = Option.getOrElse(first.metricKey.description, () => name)
    lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`)
    lines.push(`# TYPE ${name} ${type}`)
    for (const pair of group) {
      for (const line of sampleLines(name, pair.metricKey, pair.metricState)) lines.push(line)
    }
  }
  return lines.join("\n") + "\n"
}

// ---- internal ----

const sanitizeName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_")

const typeOf = (state: MetricState.MetricState.Untyped) =>
  MetricState.isCounterState(state)
    ? "counter"
    : MetricState.isGaugeState(state)
    ? "gauge"
    : MetricState.isHistogramState(state)
    ? "histogram"
    : MetricState.isSummaryState(state)
    ? "summary"
    : "gauge"

const labelText = (labels: ReadonlyArray<readonly [string, string]>) =>
  labels.length === 0
    ? ""
    : `{${
      labels.map(([k, v]) =>
        `${sanitizeName(k)}="${v.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")}"`
      ).join(",")
    }}`

const num = (n: number | bigint) => {
  if (typeof n === "bigint") return n.toString()
  if (Number.isNaN(n)) return "NaN"
  if (!Number.isFinite(n)) return n > 0 ? "+Inf" : "-Inf"
  return String(n)
}

const sampleLines = (
  name: string,
  key: MetricKey.MetricKey.Untyped,
  state: MetricState.MetricState.Untyped
): Array<string> => {
  const tags: Array<readonly [string, string]> = key.tags.map((tag) => [tag.key, tag.value] as const)
  if (MetricState.isCounterState(state) || MetricState.isGaugeState(state)) {
    const value = MetricState.isCounterState(state) ? state.count : state.value
    return [`${name}${labelText(tags)} ${num(value as number | bigint)}`]
  }
  if (MetricState.isHistogramState(state)) {
    const lines = state.buckets.map(([le, count]) => `${name}_bucket${labelText([...tags, ["le", num(le)]])} ${count}`)
    if (!state.buckets.some(([le]) => le === Number.POSITIVE_INFINITY)) {
      lines.push(`${name}_bucket${labelText([...tags, ["le", "+Inf"]])} ${state.count}`)
    }
    lines.push(`${name}_sum${labelText(tags)} ${num(state.sum)}`, `${name}_count${labelText(tags)} ${state.count}`)
    return lines
  }
  if (MetricState.isSummaryState(state)) {
    return [
      ...state.quantiles.flatMap(([q, value]) =>
        Option.isSome(value) ? [`${name}${labelText([...tags, ["quantile", num(q)]])} ${num(value.value)}`] : []
      ),
      `${name}_sum${labelText(tags)} ${num(state.sum)}`,
      `${name}_count${labelText(tags)} ${state.count}`
    ]
  }
  if (MetricState.isFrequencyState(state)) {
    return [...state.occurrences].map(([value, count]) => `${name}${labelText([...tags, ["value", value]])} ${count}`)
  }
  return []
}
