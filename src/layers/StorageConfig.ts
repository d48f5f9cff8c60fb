/**
 * The settings of the upload flow and the workers.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * The settings. Every number and duration has a default; a zero or
 * negative value given to `layer` or in the environment means the default.
 *
 * @since 0.1.0
 * @category models
 */
export interface StorageSettings {
  /** Largest declared upload size, in bytes (1 GiB). */
  readonly maxUploadSize: number
  /** How long a pending upload may take (24 hours). */
  readonly claimTtl: Duration.Duration
  /** Pending uploads per owner (100). */
  readonly maxPendingClaims: number
  /** Whether `public: true` uploads (`pub/` keys) are allowed (false). */
  readonly allowPublicUploads: boolean
  /** Part size of new uploads; none means the backend's own. */
  readonly partSize: Option.Option<number>
  /** Sweeper period, also its grace window past expiry (5 minutes). */
  readonly sweepInterval: Duration.Duration
  /** Expired claims handled per sweep round (200). */
  readonly sweepBatchSize: number
  /** Delete worker period (5 minutes). */
  readonly deleteInterval: Duration.Duration
  /** Rows taken per lease (100). */
  readonly deleteBatchSize: number
  /** Objects deleted at once per worker (8). */
  readonly deleteConcurrency: number
  /** Failed attempts before a row is dead-lettered (12). */
  readonly deleteMaxAttempts: number
  /** How long a lease hides a row from other workers (5 minutes). */
  readonly leaseWindow: Duration.Duration
  /** First retry delay after a failed delete (30 seconds). */
  readonly backoffBase: Duration.Duration
  /** Longest retry delay (1 hour). */
  readonly backoffCap: Duration.Duration
  /** Reclaim uploads nobody adopted this long after expiry; none is off. */
  readonly orphanRetention: Option.Option<Duration.Duration>
  /**
   * The most request bytes held in memory at once by the bodies that must
   * be gathered before they are stored (a resumable upload's request
   * without `Content-Length`, a one-part resumable upload with a checksum);
   * more waits (64 MiB; never less than one part).
   */
  readonly maxBufferedBytes: number
}

/**
 * The defaults.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: StorageSettings = {
  maxUploadSize: 1024 * 1024 * 1024,
  claimTtl: Duration.hours(24),
  maxPendingClaims: 100,
  allowPublicUploads: false,
  partSize: Option.none(),
  sweepInterval: Duration.minutes(5),
  sweepBatchSize: 200,
  deleteInterval: Duration.minutes(5),
  deleteBatchSize: 100,
  deleteConcurrency: 8,
  deleteMaxAttempts: 12,
  leaseWindow: Duration.minutes(5),
  backoffBase: Duration.seconds(30),
  backoffCap: Duration.hours(1),
  orphanRetention: Option.none(),
  maxBufferedBytes: 64 * 1024 * 1024
}

/**
 * Overrides of the defaults, in plain values.
 *
 * @since 0.1.0
 * @category models
 */
export interface StorageOverrides {
  readonly maxUploadSize?: number | undefined
  readonly claimTtl?: Duration.DurationInput | undefined
  readonly maxPendingClaims?: number | undefined
  readonly allowPublicUploads?: boolean | undefined
  readonly partSize?: number | undefined
  readonly sweepInterval?: Duration.DurationInput | undefined
  readonly sweepBatchSize?: number | undefined
  readonly deleteInterval?: Duration.DurationInput | undefined
  readonly deleteBatchSize?: number | undefined
  readonly deleteConcurrency?: number | undefined
  readonly deleteMaxAttempts?: number | undefined
  readonly leaseWindow?: Duration.DurationInput | undefined
  readonly backoffBase?: Duration.DurationInput | undefined
  readonly backoffCap?: Duration.DurationInput | undefined
  readonly orphanRetention?: Duration.DurationInput | undefined
  readonly maxBufferedBytes?: number | undefined
}

/**
 * The settings in use.
 *
 * @since 0.1.0
 * @category tags
 */
export class StorageConfig extends Context.Tag("effect-storage/StorageConfig")<StorageConfig, StorageSettings>() {
  /**
   * The defaults with `overrides` applied (zero or negative means default).
   *
   * @since 0.1.0
   * @category layers
   */
  static layer(overrides: StorageOverrides = {}): Layer.Layer<StorageConfig> {
    return Layer.succeed(StorageConfig, resolve(overrides))
  }

  /**
   * The settings from the `STORAGE_*` environment variables. A malformed
   * value fails with a `ConfigError` naming the variable.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerFromEnv: Layer.Layer<StorageConfig, ConfigError.ConfigError> = Layer.effect(
    StorageConfig,
    // Deferred: the parsers are defined below the class.
    Effect.suspend(() => Effect.map(envSettings, resolve))
  )
}

/**
 * `STORAGE_BACKEND`: the object backend (`filesystem`, the default; `s3`;
 * `memory`).
 *
 * @since 0.1.0
 * @category config
 */
export const backendKind: Config.Config<"filesystem" | "s3" | "memory"> = Config.literal(
  "filesystem",
  "s3",
  "memory"
)("STORAGE_BACKEND").pipe(Config.withDefault("filesystem" as const))

/**
 * `STORAGE_EVENTS`: where storage events go: `log` (the default: one log
 * line each), `outbox` (rows of `sys_storage_event_outbox`, written in the
 * transaction that caused them, for a relay of the app's; several servers
 * on one database share it) or `none`.
 *
 * @since 0.1.0
 * @category config
 */
export const eventsKind: Config.Config<"log" | "outbox" | "none"> = Config.literal(
  "log",
  "outbox",
  "none"
)("STORAGE_EVENTS").pipe(Config.withDefault("log" as const))

/**
 * `STORAGE_ROOT`: the filesystem backend's folder (`./data/objects`).
 *
 * @since 0.1.0
 * @category config
 */
export const filesystemRoot: Config.Config<string> = Config.string("STORAGE_ROOT").pipe(
  Config.withDefault("./data/objects")
)

/**
 * A duration from text: `300` (seconds), `500ms`, `30s`, `5m`, `24h`, `7d`,
 * or Effect's own forms such as `5 minutes`.
 *
 * @since 0.1.0
 * @category config
 */
export const duration = (name: string): Config.Config<Duration.Duration> =>
  Config.mapOrFail(Config.string(name), (text) =>
    Either.fromOption(
      parseDuration(text),
      () => invalid(`Expected ${name} to be a duration such as 30s, 5m, 24h or 7d, got "${text}"`)
    ))

/**
 * How long something signed lives: `duration(name)`, with `fallback` when
 * unset, zero or negative (the rule of every number here).
 *
 * @since 0.1.0
 * @category config
 */
export const lifetime = (name: string, fallback: Duration.Duration): Config.Config<Duration.Duration> =>
  duration(name).pipe(
    Config.map((d) => Duration.toMillis(d) > 0 ? d : fallback),
    Config.withDefault(fallback)
  )

/**
 * A byte size from text: `1048576`, `64KiB`, `16MiB`, `1GiB` (also `KB`,
 * `MB`, `GB` as powers of 1000, and `k`, `m`, `g` as powers of 1024).
 *
 * @since 0.1.0
 * @category config
 */
export const byteSize = (name: string): Config.Config<number> =>
  Config.mapOrFail(Config.string(name), (text) =>
    Either.fromOption(
      parseByteSize(text),
      () => invalid(`Expected ${name} to be a size such as 1048576, 64KiB, 16MiB or 1GiB, got "${text}"`)
    ))

/**
 * Parses a duration (see `duration`).
 *
 * @since 0.1.0
 * @category config
 */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const trimmed = text.trim()
  const short = /^(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i.exec(trimmed)
  if (short !== null) {
    const value = Number(short[1])
    const unit = (short[2] ?? "s").toLowerCase()
    const millis = value * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit as "ms"]
    return Option.some(Duration.millis(millis))
  }
  return Duration.decodeUnknown(trimmed)
}

/**
 * Parses a byte size (see `byteSize`).
 *
 * @since 0.1.0
 * @category config
 */
export const parseByteSize = (text: string): Option.Option<number> => {
  const match = /^(-?\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?$/i.exec(text.trim())
  if (match === null) return Option.none()
  const unit = (match[2] ?? "").toLowerCase()
  const power = { "": 0, b: 0, k: 1, m: 2, g: 3, t: 4 }[unit[0] ?? ""] ?? 0
  const base = unit.length === 2 && unit[1] === "b" && unit[0] !== "b" ? 1000 : 1024
  const bytes = Math.floor(Number(match[1]) * base ** power)
  return Number.isSafeInteger(bytes) ? Option.some(bytes) : Option.none()
}

// ---- internal ----

// A missing variable is an absent override; a malformed one still fails.
const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(config), Option.getOrUndefined)

const envSettings = Config.all({
  maxUploadSize: optional(byteSize("STORAGE_MAX_UPLOAD_SIZE")),
  claimTtl: optional(duration("STORAGE_CLAIM_TTL")),
  maxPendingClaims: optional(Config.integer("STORAGE_MAX_PENDING_CLAIMS")),
  allowPublicUploads: optional(Config.boolean("STORAGE_ALLOW_PUBLIC_UPLOADS")),
  partSize: optional(byteSize("STORAGE_PART_SIZE")),
  sweepInterval: optional(duration("STORAGE_SWEEP_INTERVAL")),
  sweepBatchSize: optional(Config.integer("STORAGE_SWEEP_BATCH_SIZE")),
  deleteInterval: optional(duration("STORAGE_DELETE_INTERVAL")),
  deleteBatchSize: optional(Config.integer("STORAGE_DELETE_BATCH_SIZE")),
  deleteConcurrency: optional(Config.integer("STORAGE_DELETE_CONCURRENCY")),
  deleteMaxAttempts: optional(Config.integer("STORAGE_DELETE_MAX_ATTEMPTS")),
  leaseWindow: optional(duration("STORAGE_LEASE_WINDOW")),
  orphanRetention: optional(duration("STORAGE_ORPHAN_RETENTION")),
  maxBufferedBytes: optional(byteSize("STORAGE_MAX_BUFFERED_BYTES"))
})

// Config prefixes the variable name to the path itself.
const invalid = (message: string) => ConfigError.InvalidData([], message)

const resolve = (given: StorageOverrides): StorageSettings => {
  const pick = <K extends keyof StorageOverrides>(key: K): StorageOverrides[K] => given[key]
  const count = (
    key:
      | "maxUploadSize"
      | "maxPendingClaims"
      | "sweepBatchSize"
      | "deleteBatchSize"
      | "deleteConcurrency"
      | "deleteMaxAttempts"
      | "maxBufferedBytes"
  ) => {
    const value = pick(key)
    return value !== undefined && value > 0 ? Math.floor(value) : defaults[key]
  }
  const span = (
    key: "claimTtl" | "sweepInterval" | "deleteInterval" | "leaseWindow" | "backoffBase" | "backoffCap"
  ) => {
    const value = pick(key)
    const decoded = value === undefined ? undefined : Duration.decode(value)
    return decoded !== undefined && Duration.toMillis(decoded) > 0 ? decoded : defaults[key]
  }
  const partSize = pick("partSize")
  const orphan = pick("orphanRetention")
  const orphanDuration = orphan === undefined ? undefined : Duration.decode(orphan)
  return {
    maxUploadSize: count("maxUploadSize"),
    claimTtl: span("claimTtl"),
    maxPendingClaims: count("maxPendingClaims"),
    allowPublicUploads: pick("allowPublicUploads") ?? defaults.allowPublicUploads,
    partSize: partSize !== undefined && partSize > 0 ? Option.some(Math.floor(partSize)) : Option.none(),
    sweepInterval: span("sweepInterval"),
    sweepBatchSize: count("sweepBatchSize"),
    deleteInterval: span("deleteInterval"),
    deleteBatchSize: count("deleteBatchSize"),
    deleteConcurrency: count("deleteConcurrency"),
    deleteMaxAttempts: count("deleteMaxAttempts"),
    leaseWindow: span("leaseWindow"),
    backoffBase: span("backoffBase"),
    backoffCap: span("backoffCap"),
    orphanRetention: orphanDuration !== undefined && Duration.toMillis(orphanDuration) > 0
      ? Option.some(orphanDuration)
      : Option.none(),
    maxBufferedBytes: count("maxBufferedBytes")
  }
}
