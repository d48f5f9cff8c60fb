/**
 * Text output of the operator CLI: where it goes (`CliIO`), human tables,
 * sizes, ages, JSON values and the progress line.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * Where the CLI writes. Results go to `stdout` (with `--json`, nothing but
 * the JSON document); messages, logs and the progress line go to `stderr`.
 *
 * @since 0.1.0
 * @category tags
 */
export class CliIO extends Context.Tag("effect-storage/cli/CliIO")<CliIO, {
  /** Writes a line of result to standard output. */
  readonly out: (line: string) => Effect.Effect<void>
  /** Writes a line of message to standard error. */
  readonly err: (line: string) => Effect.Effect<void>
  /** Writes raw text (no newline added) to standard error: the progress line. */
  readonly errRaw: (text: string) => Effect.Effect<void>
  /** Whether standard error is a terminal (the progress line redraws itself in place). */
  readonly errIsTTY: boolean
}>() {
  /**
   * The process's own standard output and error.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerProcess: Layer.Layer<CliIO> = Layer.sync(CliIO, () => ({
    out: (line) => Effect.sync(() => void process.stdout.write(`${line}\n`)),
    err: (line) => Effect.sync(() => void process.stderr.write(`${line}\n`)),
    errRaw: (text) => Effect.sync(() => void process.stderr.write(text)),
    errIsTTY: process.stderr.isTTY === true
  }))

  /**
   * Keeps everything written in memory (tests).
   *
   * @since 0.1.0
   * @category layers
   */
  static capture(): {
    readonly layer: Layer.Layer<CliIO>
    readonly stdout: () => string
    readonly stderr: () => string
  } {
    let stdout = ""
    let stderr = ""
    return {
      layer: Layer.succeed(CliIO, {
        out: (line) => Effect.sync(() => void (stdout += `${line}\n`)),
        err: (line) => Effect.sync(() => void (stderr += `${line}\n`)),
        errRaw: (text) => Effect.sync(() => void (stderr += text)),
        errIsTTY: false
      }),
      stdout: () => stdout,
      stderr: () => stderr
    }
  }
}

/**
 * A table with a header row, columns padded to their widest cell.
 *
 * @since 0.1.0
 * @category rendering
 */
export const table = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  options: { readonly alignRight?: ReadonlyArray<number> | undefined } = {}
): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)))
  const right = new Set(options.alignRight ?? [])
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

/**
 * Label-value lines, labels padded to the widest.
 *
 * @since 0.1.0
 * @category rendering
 */
export const fields = (entries: ReadonlyArray<readonly [string, string]>, indent = "  "): string => {
  const width = Math.max(0, ...entries.map(([label]) => label.length))
  return entries.map(([label, value]) => `${indent}${label.padEnd(width)}  ${value}`).join("\n")
}

/**
 * A count with thousands separators: `10,000`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const count = (n: number): string => n.toLocaleString("en-US")

/**
 * A byte size in binary units: `512 B`, `1.5 KiB`, `16.0 MiB`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const bytes = (n: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`
}

/**
 * A duration, two largest units: `45s`, `5m 3s`, `2h 10m`, `3d 4h`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const age = (duration: Duration.DurationInput): string => {
  const total = Math.max(0, Math.floor(Duration.toMillis(duration) / 1000))
  const parts: Array<[number, string]> = [
    [Math.floor(total / 86400), "d"],
    [Math.floor((total % 86400) / 3600), "h"],
    [Math.floor((total % 3600) / 60), "m"],
    [total % 60, "s"]
  ]
  const first = parts.findIndex(([n]) => n > 0)
  if (first === -1) return "0s"
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(" ")
}

/**
 * An instant as ISO 8601 UTC, to the second.
 *
 * @since 0.1.0
 * @category rendering
 */
export const time = (at: DateTime.Utc): string => DateTime.formatIso(at).replace(/\.\d{3}Z$/, "Z")

/**
 * An instant and how long ago it was: `2026-11-28T12:00:00Z (5m 3s ago)`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const timeAgo = (at: DateTime.Utc, now: DateTime.Utc): string =>
  `${time(at)} (${age(Duration.millis(DateTime.distance(at, now)))} ago)`

/**
 * A value made JSON-friendly: instants become ISO strings, options their
 * value or `null`, everything else is copied as it is.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toJson = (value: unknown): unknown => {
  if (DateTime.isDateTime(value)) return DateTime.formatIso(DateTime.toUtc(value))
  if (Option.isOption(value)) return Option.isSome(value) ? toJson(value.value) : null
  if (Array.isArray(value)) return value.map(toJson)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJson(v)
    return out
  }
  return value
}

/**
 * Writes `value` as one JSON document on standard output.
 *
 * @since 0.1.0
 * @category rendering
 */
export const printJson = (value: unknown): Effect.Effect<void, never, CliIO> =>
  Effect.flatMap(CliIO, (io) => io.out(JSON.stringify(toJson(value), null, 2)))

/**
 * Writes a line of result on standard output.
 *
 * @since 0.1.0
 * @category rendering
 */
export const printLine = (line: string): Effect.Effect<void, never, CliIO> =>
  Effect.flatMap(CliIO, (io) => io.out(line))

/**
 * A progress line on standard error, redrawn in place on a terminal (at
 * most 10 times a second) and written as plain lines elsewhere (at most
 * once a second). A disabled one writes nothing.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  /** Shows `done` of `total` (a bar when the total is known) and a status text. */
  readonly update: (done: number, total: number | undefined, status: string) => Effect.Effect<void>
  /** Draws the last state and ends the line. */
  readonly finish: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeProgress = (label: string, enabled: boolean): Effect.Effect<Progress, never, CliIO> =>
  Effect.map(CliIO, (io) => {
    if (!enabled) return { update: () => Effect.void, finish: Effect.void }
    const interval = io.errIsTTY ? 100 : 1000
    const started = Date.now()
    let last = 0
    let pending: string | undefined
    let drawn = false
    const render = (done: number, total: number | undefined, status: string) => {
      const elapsed = age(Duration.millis(Date.now() - started))
      if (total === undefined || total <= 0) return `${label} ${count(done)} ${status} [${elapsed}]`
      const ratio = Math.min(1, done / total)
      const width = 24
      const filled = Math.round(ratio * width)
      const bar = `${"#".repeat(filled)}${".".repeat(width - filled)}`
      return `${label} [${bar}] ${Math.floor(ratio * 100)}% ${count(done)}/${count(total)} ${status} [${elapsed}]`
    }
    const draw = (text: string) => io.errIsTTY ? io.errRaw(`\r\u001b[2K${text}`) : io.err(text)
    return {
      update: (done, total, status) =>
        Effect.suspend(() => {
          pending = render(done, total, status)
          const now = Date.now()
          if (now - last < interval) return Effect.void
          last = now
          drawn = true
          const text = pending
          pending = undefined
          return draw(text)
        }),
      finish: Effect.suspend(() => {
        const text = pending
        pending = undefined
        if (text !== undefined) return Effect.zipRight(draw(text), io.errIsTTY ? io.errRaw("\n") : Effect.void)
        return drawn && io.errIsTTY ? io.errRaw("\n") : Effect.void
      })
    }
  })
