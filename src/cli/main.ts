/**
 * The `effect-storage` executable: `npm run cli -- <command>`, or
 * `npx effect-storage <command>` through `bin/effect-storage.mjs`.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Telemetry from "../layers/Telemetry.js"
import * as Cli from "./Cli.js"
import { CliIO } from "./Render.js"

// Logs go to standard error, so that standard output holds only results.
// Warnings and errors by default: `--log-level info` shows the delete
// worker's events too.
const Environment = Layer.mergeAll(
  NodeContext.layer,
  CliIO.layerProcess,
  Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
  Logger.minimumLogLevel(LogLevel.Warning)
)

// A run's spans (SQL, object storage, the worker's batches) and metrics go to
// the collector the OTEL_* variables name, flushed before the process leaves.
const TelemetryLive = Telemetry.layerFromConfig({ serviceName: "effect-storage-cli" })

Cli.run(process.argv.slice(2)).pipe(
  Effect.provide(Environment),
  Effect.provide(TelemetryLive),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    // Leaves once standard output has drained, whatever still holds the event loop.
    teardown: (exit) => {
      const code = Exit.isSuccess(exit) ? Number(exit.value) : Cli.ExitCode.failure
      process.stdout.write("", () => process.exit(code))
    }
  })
)
