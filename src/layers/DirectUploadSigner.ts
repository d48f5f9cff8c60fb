/**
 * Signed part URLs of the app server itself, for direct uploads on backends
 * that cannot check a signature (the filesystem and memory backends): the
 * "presigned" URL of a part is the server's own part endpoint,
 * `PUT /storage/direct/parts/<claimId>/<partNumber>?size=&expires=&signature=`,
 * so the same client code works against S3 and the embedded default.
 *
 * The signature is an HMAC-SHA256, under a server secret, of the claim id,
 * the part number, the exact size and the expiry: changing any of them, or
 * using the URL for another claim or part, breaks it.
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
import { InvalidUploadSignature, type StorageBackendError, UploadUrlExpired } from "../schema/Errors.js"
import { lifetime } from "./StorageConfig.js"

/**
 * What a signed part URL allows: one part of one claim, of one exact size.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignedPart {
  readonly claimId: string
  readonly partNumber: number
  readonly size: number
}

/**
 * Signs and checks the app server's own part URLs.
 *
 * @since 0.1.0
 * @category tags
 */
export class DirectUploadSigner extends Context.Tag("effect-storage/DirectUploadSigner")<DirectUploadSigner, {
  /** How long a signed URL lives. */
  readonly ttl: Duration.Duration
  /** A URL (relative to the server's origin) for `PUT`ting the part, valid for `ttl`. */
  readonly sign: (part: SignedPart) => Effect.Effect<{ readonly url: string; readonly expiresAt: DateTime.Utc }>
  /**
   * Checks a URL's `expires` and `signature` for the part it names:
   * `InvalidUploadSignature` unless signed for exactly this claim, part,
   * size and expiry, then `UploadUrlExpired` once the expiry has passed.
   */
  readonly verify: (
    part: SignedPart,
    query: { readonly expires: string | undefined; readonly signature: string | undefined }
  ) => Effect.Effect<void, InvalidUploadSignature | UploadUrlExpired>
}>() {}

/**
 * The path prefix of the signed part endpoint.
 *
 * @since 0.1.0
 * @category constants
 */
export const partPath = "/storage/direct/parts"

/**
 * The default life of a signed URL: 15 minutes.
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
 * @since 0.1.0
 * @category models
 */
export interface DirectUploadSignerOptions {
  /** The signing secret; at least 32 bytes. */
  readonly secret: Redacted.Redacted<string> | Uint8Array
  /** How long a URL lives; 15 minutes when absent. */
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * A signer with `options.secret`. A secret shorter than `minimumSecretBytes`
 * is a programming error: it throws.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: DirectUploadSignerOptions): DirectUploadSigner["Type"] => {
  const secret = options.secret instanceof Uint8Array
    ? Buffer.from(options.secret)
    : Buffer.from(Redacted.value(options.secret), "utf8")
  if (secret.byteLength < minimumSecretBytes) {
    throw new Error(`a direct upload secret needs at least ${minimumSecretBytes} bytes`)
  }
  const ttl = options.ttl === undefined ? defaultTtl : Duration.decode(options.ttl)
  // A label of its own: a download link's signature can never pass for a part's.
  const mac = (part: SignedPart, expires: string) =>
    createHmac("sha256", secret)
      .update(`effect-storage part\n${part.claimId}\n${part.partNumber}\n${part.size}\n${expires}`, "utf8")
      .digest()

  const sign = Effect.fn("DirectUploadSigner.sign")(function*(part: SignedPart) {
    const now = yield* DateTime.now
    const expires = Math.ceil((DateTime.toEpochMillis(now) + Duration.toMillis(ttl)) / 1000)
    const signature = mac(part, String(expires)).toString("base64url")
    return {
      url: `${partPath}/${encodeURIComponent(part.claimId)}/${part.partNumber}?size=${part.size}&expires=${expires}` +
        `&signature=${signature}`,
      expiresAt: DateTime.unsafeMake(expires * 1000)
    }
  })

  const verify = Effect.fn("DirectUploadSigner.verify")(function*(
    part: SignedPart,
    query: { readonly expires: string | undefined; readonly signature: string | undefined }
  ) {
    const { expires, signature } = query
    if (
      signature === undefined || expires === undefined || !/^\d{1,12}$/.test(expires) ||
      !/^[\w-]{43}$/.test(signature)
    ) {
      return yield* new InvalidUploadSignature({ message: "a signed part URL needs size, expires and signature" })
    }
    // The signature first, in constant time: a tampered expired URL says "invalid".
    const given = Buffer.from(signature, "base64url")
    const expected = mac(part, expires)
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
      return yield* new InvalidUploadSignature()
    }
    if (DateTime.toEpochMillis(yield* DateTime.now) >= Number(expires) * 1000) return yield* new UploadUrlExpired()
  })

  return { ttl, sign, verify }
}

/**
 * A signer with a given secret.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: DirectUploadSignerOptions): Layer.Layer<DirectUploadSigner> =>
  Layer.sync(DirectUploadSigner, () => make(options))

/**
 * A signer with a random secret of its own: URLs work in this process only.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: { readonly ttl?: Duration.DurationInput | undefined } = {}) =>
  Layer.sync(DirectUploadSigner, () => make({ secret: randomBytes(minimumSecretBytes), ttl: options.ttl }))

/**
 * A signer from the environment:
 * - `STORAGE_DIRECT_SECRET` (at least 32 characters; the same on every
 *   server of a fleet);
 * - without it, `STORAGE_DIRECT_SECRET_FILE`, or with the filesystem backend
 *   `direct-upload.secret` beside `STORAGE_ROOT` (`./data/direct-upload.secret`),
 *   read or made at random on first start;
 * - otherwise a random secret in memory, with a warning;
 * - `STORAGE_DIRECT_URL_TTL`: how long a URL lives (15 minutes).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig: Layer.Layer<DirectUploadSigner, ConfigError.ConfigError | StorageBackendError> = Layer
  .effect(
    DirectUploadSigner,
    Effect.gen(function*() {
      const ttl = yield* lifetime("STORAGE_DIRECT_URL_TTL", defaultTtl)
      const secret = yield* serverSecret({
        name: "STORAGE_DIRECT_SECRET",
        fileName: "direct-upload.secret",
        operation: "directUploadSecret",
        minimumBytes: minimumSecretBytes,
        warning: "STORAGE_DIRECT_SECRET is not set: direct upload URLs are signed with a secret in memory, so they " +
          "fail on other servers and after a restart; set STORAGE_DIRECT_SECRET (the same on every server)"
      })
      return make({ secret, ttl })
    })
  )

// ---- internal ----
