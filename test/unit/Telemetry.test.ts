import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Telemetry from "../../src/layers/Telemetry.js"

const read = (env: Record<string, string>, options?: Telemetry.TelemetryOptions) =>
  Effect.withConfigProvider(Telemetry.settingsConfig(options), ConfigProvider.fromMap(new Map(Object.entries(env))))

const exporterOf = (settings: Telemetry.TelemetrySettings, signal: Telemetry.Signal) =>
  Option.getOrThrow(settings[signal])

describe("Telemetry.settingsConfig", () => {
  it.effect("is off when no OTLP endpoint is set, whatever else is", () =>
    Effect.gen(function*() {
      const settings = yield* read({ OTEL_SERVICE_NAME: "app", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })
      assert.isFalse(Telemetry.isEnabled(settings))
    }))

  it.effect("a base endpoint turns on all three signals at its /v1 paths, protobuf by default", () =>
    Effect.gen(function*() {
      const settings = yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/otel/" })
      assert.strictEqual(exporterOf(settings, "traces").url, "http://collector:4318/otel/v1/traces")
      assert.strictEqual(exporterOf(settings, "metrics").url, "http://collector:4318/otel/v1/metrics")
      assert.strictEqual(exporterOf(settings, "logs").url, "http://collector:4318/otel/v1/logs")
      assert.strictEqual(exporterOf(settings, "traces").protocol, "http/protobuf")
      assert.isTrue(Duration.equals(exporterOf(settings, "traces").interval, Duration.seconds(5)))
      assert.isTrue(Duration.equals(exporterOf(settings, "metrics").interval, Duration.minutes(1)))
      assert.strictEqual(settings.serviceName, "unknown_service:node")
    }))

  it.effect("a signal's own endpoint, protocol and headers win over the general ones; none turns a signal off", () =>
    Effect.gen(function*() {
      const settings = yield* read({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://traces.example/ingest",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=general,x-team=storage",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "api-key=tr%C3%A4ces%2Ckey",
        OTEL_LOGS_EXPORTER: "none",
        OTEL_BSP_SCHEDULE_DELAY: "250"
      })
      const traces = exporterOf(settings, "traces")
      assert.strictEqual(traces.url, "https://traces.example/ingest")
      assert.strictEqual(traces.protocol, "http/json")
      assert.deepStrictEqual(traces.headers, { "api-key": "träces,key", "x-team": "storage" })
      assert.isTrue(Duration.equals(traces.interval, Duration.millis(250)))
      assert.strictEqual(exporterOf(settings, "metrics").protocol, "http/protobuf")
      assert.deepStrictEqual(exporterOf(settings, "metrics").headers, { "api-key": "general", "x-team": "storage" })
      assert.isTrue(Option.isNone(settings.logs))
    }))

  it.effect("OTEL_SDK_DISABLED=true turns everything off", () =>
    Effect.gen(function*() {
      const settings = yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" })
      assert.isFalse(Telemetry.isEnabled(settings))
    }))

  it.effect("the service name: OTEL_SERVICE_NAME, then service.name in the attributes, then the app's default", () =>
    Effect.gen(function*() {
      const fromApp = yield* read({}, { serviceName: "shop", serviceVersion: "2.1.0" })
      assert.strictEqual(fromApp.serviceName, "shop")
      assert.deepStrictEqual(fromApp.serviceVersion, Option.some("2.1.0"))
      const fromAttributes = yield* read(
        { OTEL_RESOURCE_ATTRIBUTES: "service.name=billing,deployment.environment=prod" },
        { serviceName: "shop" }
      )
      assert.strictEqual(fromAttributes.serviceName, "billing")
      assert.strictEqual(fromAttributes.attributes["deployment.environment"], "prod")
      const fromVariable = yield* read(
        { OTEL_SERVICE_NAME: "checkout", OTEL_RESOURCE_ATTRIBUTES: "service.name=billing" },
        { serviceName: "shop" }
      )
      assert.strictEqual(fromVariable.serviceName, "checkout")
    }))

  it.effect("refuses what it cannot do, naming the variable: grpc, other exporters, malformed headers", () =>
    Effect.gen(function*() {
      const cases: Array<[Record<string, string>, string, string]> = [
        [{ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"],
        [{ OTEL_TRACES_EXPORTER: "zipkin" }, "OTEL_TRACES_EXPORTER", "zipkin"],
        [{ OTEL_EXPORTER_OTLP_HEADERS: "api-key" }, "OTEL_EXPORTER_OTLP_HEADERS", "key=value"],
        [{ OTEL_EXPORTER_OTLP_HEADERS: "api-key=%E0%A4%A" }, "OTEL_EXPORTER_OTLP_HEADERS", "URL encoding"]
      ]
      for (const [env, variable, words] of cases) {
        const error = yield* Effect.flip(read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", ...env }))
        assert.include(String(error), variable)
        assert.include(String(error), words)
      }
    }))
})
