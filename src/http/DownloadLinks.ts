/**
 * Short-lived signed download links: `GET /storage/files/<key>?expires=<unix
 * seconds>&signature=<HMAC>` is served without a bearer token while it
 * lasts, to whoever holds it (an `<img>`, a `<video>`, a shared URL). The API
 * hands them out (`POST /storage/links`) to a user the `FileAcl` allows;
 * a bearer token never goes into a URL, where logs and `Referer` headers
 * would keep it.
 *
 * The signature is an HMAC-SHA256, under a server secret, of the key and the
 * expiry: changing either, or using it for another key, breaks it. Servers
 * that share a secret accept each other's links.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { serverSecret } from "../internal/secrets.js"
import { lifetime } from "../layers/StorageConfig.js"
import { DownloadLinkExpired, InvalidDownloadLink, type StorageBackendError } from "../schema/Errors.js"

/**
 * A signed link: a path with its query, relative to the server's origin.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignedLink {
  readonly key: string
  /** `/storage/files/<key, percent-encoded>?expires=...&signature=...` */
  readonly url: string
  readonly expiresAt: DateTime.Utc
}

/**
 * Signs and checks download links.
 *
 * @since 0.1.0
 * @category tags
 */
export class DownloadLinks extends Context.Tag("effect-storage/DownloadLinks")<DownloadLinks, {
  /** How long a new link lives. */
  readonly ttl: Duration.Duration
  /** A link to `key`, valid for `ttl` from now. */
  readonly sign: (key: string) => Effect.Effect<SignedLink>
  /**
   * Checks the `signature` and `expires` query parameters of a download of
   * `key`: `InvalidDownloadLink` unless they were signed for this very key
   * and expiry, then `DownloadLinkExpired` once the expiry has passed.
   */
  readonly verify: (
    key: string,
    link: { readonly signature: string | null; readonly expires: string | null }
  ) => Effect.Effect<void, InvalidDownloadLink | DownloadLinkExpired>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface DownloadLinksOptions {
  /** The signing secret; at least 32 bytes (a random one is best). */
  readonly secret: Redacted.Redacted<string> | Uint8Array
  /** How long a link lives; 15 minutes when absent. */
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * The default life of a link: 15 minutes.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTtl = Duration.minutes(15)

/**
 * The fewest bytes a secret may have.
 *
 * @since 0.1.0
 * @category constants
 */
export const minimumSecretBytes = 32

/**
 * Links signed with `options.secret`. A secret shorter than
 * `minimumSecretBytes` is a programming error: it throws.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: DownloadLinksOptions): DownloadLinks["Type"] => {
  const secret = options.secret instanceof Uint8Array
    ? Buffer.from(options.secret)
    : Buffer.from(Redacted.value(options.secret), "utf8")
  if (secret.byteLength < minimumSecretBytes) {
    throw new Error(`a download link secret needs at least ${minimumSecretBytes} bytes`)
  }
  const ttl = options.ttl === undefined ? defaultTtl : Duration.decode(options.ttl)
  const mac = (key: string, expires: string) =>
    createHmac("sha256", secret).update(`effect-storage download\n${key}\n${expires}`, "utf8").digest()

  const sign = Effect.fn("DownloadLinks.sign")(function*(key: string) {
    const now = yield* DateTime.now
    // Whole seconds, rounded up: a link never lives shorter than `ttl`.
    const expires = Math.ceil((DateTime.toEpochMillis(now) + Duration.toMillis(ttl)) / 1000)
    const signature = mac(key, String(expires)).toString("base64url")
    const path = key.split("/").map(encodeURIComponent).join("/")
    return {
      key,
      url: `/storage/files/${path}?expires=${expires}&signature=${signature}`,
      expiresAt: DateTime.unsafeMake(expires * 1000)
    }
  })

  const verify = Effect.fn("DownloadLinks.verify")(function*(
    key: string,
    link: { readonly signature: string | null; readonly expires: string | null }
  ) {
    const { expires, signature } = link
    if (signature === null || expires === null || !/^\d{1,12}$/.test(expires) || !/^[\w-]{43}$/.test(signature)) {
      return yield* new InvalidDownloadLink({
        message: "a signed download link needs both expires (unix seconds) and signature"
      })
    }
    // The signature is checked first, in constant time: an expired link that
    // was tampered with says "invalid", not "expired".
    const given = Buffer.from(signature, "base64url")
    const expected = mac(key, expires)
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
      return yield* new InvalidDownloadLink({
        message: "the download link's signature does not match this file and expiry"
      })
    }
    const now = yield* DateTime.now
    if (DateTime.toEpochMillis(now) >= Number(expires) * 1000) return yield* new DownloadLinkExpired()
  })

  return { ttl, sign, verify }
}

/**
 * Links signed with a given secret.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: DownloadLinksOptions): Layer.Layer<DownloadLinks> =>
  Layer.sync(DownloadLinks, () => make(options))

/**
 * Links with a secret of their own, made at random when built: links live
 * as long as this layer, in this process only.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: { readonly ttl?: Duration.DurationInput | undefined } = {}) =>
  Layer.sync(DownloadLinks, () => make({ secret: randomBytes(minimumSecretBytes), ttl: options.ttl }))

/**
 * Links from the environment:
 * - `STORAGE_LINK_SECRET`: the secret (at least 32 characters). Give every
 *   server of a fleet the same one, so a link made by one works on all.
 * - without it, `STORAGE_LINK_SECRET_FILE`, or with the filesystem backend
 *   (the embedded default) `download-link.secret` beside `STORAGE_ROOT`
 *   (`./data/download-link.secret`): read, or made at random on first start
 *   (servers sharing the folder share it too);
 * - otherwise (S3 or memory backend, no secret given) a random secret in
 *   memory, with a warning: links then fail on other servers and after a
 *   restart.
 * - `STORAGE_LINK_TTL`: how long a link lives (15 minutes).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig: Layer.Layer<DownloadLinks, ConfigError.ConfigError | StorageBackendError> = Layer
  .effect(
    DownloadLinks,
    Effect.gen(function*() {
      const ttl = yield* lifetime("STORAGE_LINK_TTL", defaultTtl)
      const secret = yield* serverSecret({
        name: "STORAGE_LINK_SECRET",
        fileName: "download-link.secret",
        operation: "downloadLinkSecret",
        minimumBytes: minimumSecretBytes,
        warning: "STORAGE_LINK_SECRET is not set: download links are signed with a secret in memory, so they fail on " +
          "other servers and after a restart; set STORAGE_LINK_SECRET (the same on every server)"
      })
      return make({ secret, ttl })
    })
  )

// ---- internal ----
