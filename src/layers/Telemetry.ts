/**
 * Traces, metrics and logs exported over OTLP/HTTP with
 * `@effect/opentelemetry`, configured by the standard `OTEL_*` variables
 * and off when no OTLP endpoint is set.
 *
 * What an upload reports: the HTTP server span of each request (joining the
 * client's trace when it sends `traceparent`), the SQL statements of the
 * stores (`sql.execute`), and one span per object-storage call
 * (`ObjectStorage.putPart`, `ObjectStorage.completeMultipart`, ...), all in
 * one trace; the metrics of `StorageMetrics`; and the log lines.
 *
 * | variable | meaning |
 * |---|---|
 * | OTEL_SDK_DISABLED | `true` turns everything off |
 * | OTEL_EXPORTER_OTLP_ENDPOINT | base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended |
 * | OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT | one signal's full URL |
 * | OTEL_EXPORTER_OTLP_[{SIGNAL}_]HEADERS | `key=value,...`, values URL-encoded |
 * | OTEL_EXPORTER_OTLP_[{SIGNAL}_]PROTOCOL | `http/protobuf` (default) or `http/json` |
 * | OTEL_{TRACES,METRICS,LOGS}_EXPORTER | `otlp` (default) or `none` |
 * | OTEL_SERVICE_NAME, OTEL_SERVICE_VERSION, OTEL_RESOURCE_ATTRIBUTES | the resource |
 * | OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE | span export period (5000 ms) and batch (512) |
 * | OTEL_METRIC_EXPORT_INTERVAL | metric export period (60000 ms) |
 * | OTEL_BLRP_SCHEDULE_DELAY | log export period (1000 ms) |
 *
 * Unlike the OpenTelemetry SDKs, a signal with no endpoint at all is off
 * (they would send to localhost:4318): a library must not start talking to
 * the network because nobody configured it. `grpc` is not supported.
 *
 * @since 0.1.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Arr from "effect/Array"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { importOptional } from "../internal/optionalPeer.js"
import type { DriverNotInstalled } from "../schema/Errors.js"

/**
 * The three OTLP signals.
 *
 * @since 0.1.0
 * @category models
 */
export type Signal = "traces" | "metrics" | "logs"

/**
 * Where and how one signal is exported.
 *
 * @since 0.1.0
 * @category models
 */
export interface Exporter {
  readonly url: string
  readonly protocol: "http/protobuf" | "http/json"
  readonly headers: Readonly<Record<string, string>>
  /** How often buffered items are sent. */
  readonly interval: Duration.Duration
}

/**
 * What the environment asks for; a signal that is off is `None`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TelemetrySettings {
  readonly traces: Option.Option<Exporter>
  readonly metrics: Option.Option<Exporter>
  readonly logs: Option.Option<Exporter>
  readonly serviceName: string
  readonly serviceVersion: Option.Option<string>
  readonly attributes: Readonly<Record<string, string>>
  /** Spans per export request at most. */
  readonly maxBatchSize: number
}

/**
 * Defaults the application knows better than the spec's
 * `unknown_service:node`; the environment still wins.
 *
 * @since 0.1.0
 * @category models
 */
export interface TelemetryOptions {
  readonly serviceName?: string | undefined
  readonly serviceVersion?: string | undefined
}

const defaultIntervals: Record<Signal, { readonly variable: string; readonly millis: number }> = {
  traces: { variable: "OTEL_BSP_SCHEDULE_DELAY", millis: 5_000 },
  metrics: { variable: "OTEL_METRIC_EXPORT_INTERVAL", millis: 60_000 },
  logs: { variable: "OTEL_BLRP_SCHEDULE_DELAY", millis: 1_000 }
}

const optionalString = (name: string) =>
  Config.option(Config.string(name)).pipe(
    Config.map(Option.map((value) => value.trim())),
    Config.map(Option.filter((value) => value.length > 0))
  )

/** `key=value,key2=value2` with URL-encoded values (the OTel spec's list format). */
const keyValueList = (name: string): Config.Config<Record<string, string>> =>
  optionalString(name).pipe(
    Config.mapOrFail((value) => {
      const entries: Record<string, string> = {}
      if (Option.isNone(value)) return Either.right(entries)
      for (const item of value.value.split(",")) {
        if (item.trim() === "") continue
        const at = item.indexOf("=")
        const key = at > 0 ? item.slice(0, at).trim() : ""
        if (key === "") {
          return Either.left(ConfigError.InvalidData([name], `expected key=value pairs, got "${item.trim()}"`))
        }
        try {
          entries[key] = decodeURIComponent(item.slice(at + 1).trim())
        } catch {
          return Either.left(ConfigError.InvalidData([name], `the value of "${key}" is not valid URL encoding`))
        }
      }
      return Either.right(entries)
    })
  )

const protocolConfig = (name: string) =>
  optionalString(name).pipe(
    Config.mapOrFail((value) => {
      if (Option.isNone(value)) return Either.right(Option.none<Exporter["protocol"]>())
      const protocol = value.value
      if (protocol === "http/protobuf" || protocol === "http/json") {
        return Either.right(Option.some<Exporter["protocol"]>(protocol))
      }
      return Either.left(
        ConfigError.InvalidData([name], `"${value.value}" is not supported: use http/protobuf or http/json`)
      )
    })
  )

/** `otlp` or `none`; the spec's other exporters (console, zipkin, ...) are not built in. */
const exporterChoice = (name: string) =>
  optionalString(name).pipe(
    Config.mapOrFail((value) => {
      const choice = Option.getOrElse(value, () => "otlp")
      if (choice === "otlp" || choice === "none") return Either.right(choice === "otlp")
      return Either.left(ConfigError.InvalidData([name], `"${choice}" is not supported: use otlp or none`))
    })
  )

const millisConfig = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.map((millis) => Duration.millis(millis > 0 ? millis : fallback))
  )

/** `base` + `/v1/traces`, keeping any path the base already has. */
const signalUrl = (base: string, signal: Signal): string => `${base.replace(/\/+$/, "")}/v1/${signal}`

const exporterConfig = (signal: Signal): Config.Config<Option.Option<Exporter>> => {
  const upper = signal.toUpperCase()
  return Config.all({
    enabled: exporterChoice(`OTEL_${upper}_EXPORTER`),
    base: optionalString("OTEL_EXPORTER_OTLP_ENDPOINT"),
    own: optionalString(`OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`),
    protocol: protocolConfig("OTEL_EXPORTER_OTLP_PROTOCOL"),
    ownProtocol: protocolConfig(`OTEL_EXPORTER_OTLP_${upper}_PROTOCOL`),
    headers: keyValueList("OTEL_EXPORTER_OTLP_HEADERS"),
    ownHeaders: keyValueList(`OTEL_EXPORTER_OTLP_${upper}_HEADERS`),
    interval: millisConfig(defaultIntervals[signal].variable, defaultIntervals[signal].millis)
  }).pipe(
    Config.map(({ base, enabled, headers, interval, own, ownHeaders, ownProtocol, protocol }) => {
      const url = Option.orElse(own, () => Option.map(base, (b) => signalUrl(b, signal)))
      if (!enabled || Option.isNone(url)) return Option.none()
      return Option.some<Exporter>({
        url: url.value,
        protocol: Option.getOrElse(Option.orElse(ownProtocol, () => protocol), () => "http/protobuf" as const),
        headers: { ...headers, ...ownHeaders },
        interval
      })
    })
  )
}

/**
 * Reads the `OTEL_*` variables.
 *
 * @since 0.1.0
 * @category config
 */
export const settingsConfig = (options: TelemetryOptions = {}): Config.Config<TelemetrySettings> =>
  Config.all({
    disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
    traces: exporterConfig("traces"),
    metrics: exporterConfig("metrics"),
    logs: exporterConfig("logs"),
    name: optionalString("OTEL_SERVICE_NAME"),
    version: optionalString("OTEL_SERVICE_VERSION"),
    attributes: keyValueList("OTEL_RESOURCE_ATTRIBUTES"),
    maxBatchSize: Config.integer("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").pipe(Config.withDefault(512))
  }).pipe(
    Config.map(({ attributes, disabled, logs, maxBatchSize, metrics, name, traces, version }) => ({
      traces: disabled ? Option.none() : traces,
      metrics: disabled ? Option.none() : metrics,
      logs: disabled ? Option.none() : logs,
      // The spec's order: OTEL_SERVICE_NAME, then service.name in the attributes.
      serviceName: Option.getOrElse(
        Option.orElse(name, () => Option.fromNullable(attributes["service.name"])),
        () => options.serviceName ?? "unknown_service:node"
      ),
      serviceVersion: Option.orElse(
        Option.orElse(version, () => Option.fromNullable(attributes["service.version"])),
        () => Option.fromNullable(options.serviceVersion)
      ),
      attributes,
      maxBatchSize: maxBatchSize > 0 ? maxBatchSize : 512
    }))
  )

/**
 * Whether any signal is exported.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isEnabled = (settings: TelemetrySettings): boolean =>
  Option.isSome(settings.traces) || Option.isSome(settings.metrics) || Option.isSome(settings.logs)

/**
 * The exporters of `settings`: a tracer, a metrics reader and a logger
 * that send over OTLP/HTTP, flushed when the layer's scope closes. Needs
 * `@effect/opentelemetry` only when a signal is on.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (settings: TelemetrySettings): Layer.Layer<never, DriverNotInstalled> =>
  isEnabled(settings)
    ? Layer.unwrapEffect(Effect.gen(function*() {
      const otel = yield* importOptional(
        "@effect/opentelemetry",
        "0.64.1",
        "Exporting telemetry (OTEL_EXPORTER_OTLP_ENDPOINT)",
        () => import("@effect/opentelemetry")
      )
      const resource = {
        serviceName: settings.serviceName,
        serviceVersion: Option.getOrUndefined(settings.serviceVersion),
        attributes: settings.attributes
      }
      const serialization = (exporter: Exporter) =>
        exporter.protocol === "http/json" ? otel.OtlpSerialization.layerJson : otel.OtlpSerialization.layerProtobuf
      const common = (exporter: Exporter) => ({
        url: exporter.url,
        resource,
        headers: exporter.headers,
        exportInterval: exporter.interval
      })
      const signals: Array<Option.Option<Layer.Layer<never, never, HttpClient.HttpClient>>> = [
        Option.map(settings.traces, (exporter) =>
          otel.OtlpTracer.layer({ ...common(exporter), maxBatchSize: settings.maxBatchSize }).pipe(
            Layer.provide(serialization(exporter))
          )),
        Option.map(settings.metrics, (exporter) =>
          otel.OtlpMetrics.layer(common(exporter)).pipe(Layer.provide(serialization(exporter)))),
        Option.map(settings.logs, (exporter) =>
          otel.OtlpLogger.layer({ ...common(exporter), excludeLogSpans: true }).pipe(
            Layer.provide(serialization(exporter))
          ))
      ]
      return Arr.getSomes(signals).reduce((all, signal) =>
        Layer.merge(all, signal), Layer.empty).pipe(
          Layer.provide(FetchHttpClient.layer)
        )
    }))
    : Layer.empty

/**
 * The exporters the `OTEL_*` variables ask for; nothing when no OTLP
 * endpoint is set. Provide it around everything else (the server, the
 * workers) so their spans, metrics and logs are exported.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig = (
  options: TelemetryOptions = {}
): Layer.Layer<never, ConfigError.ConfigError | DriverNotInstalled> =>
  Layer.unwrapEffect(Effect.map(settingsConfig(options), layer))
