/**
 * Bearer authentication: a pluggable `TokenResolver` turns a token into a
 * `Principal`; the `Authentication` middleware applies it to the API.
 *
 * @since 0.1.0
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createHash, timingSafeEqual } from "node:crypto"
import { Unauthenticated } from "../schema/Errors.js"
import type { Principal } from "../schema/Models.js"

/**
 * The principal of the request being handled.
 *
 * @since 0.1.0
 * @category tags
 */
export class CurrentPrincipal extends Context.Tag("effect-storage/CurrentPrincipal")<CurrentPrincipal, Principal>() {}

/**
 * Turns a bearer token into a principal. Provide your own to plug in your
 * identity provider.
 *
 * @since 0.1.0
 * @category tags
 */
export class TokenResolver extends Context.Tag("effect-storage/TokenResolver")<TokenResolver, {
  /** The principal of a token; `Unauthenticated` when the token is unknown. */
  readonly resolve: (token: Redacted.Redacted<string>) => Effect.Effect<Principal, Unauthenticated>
}>() {
  /**
   * Fixed tokens: `{ alice: "tokenA" }` makes `tokenA` authenticate `alice`.
   *
   * @since 0.1.0
   * @category layers
   */
  static layerFromMap(tokensByUser: Readonly<Record<string, string>>): Layer.Layer<TokenResolver> {
    // Compared by digest, in constant time, against every token: a map
    // lookup by token (or `===`) answers sooner the fewer leading characters
    // match, which lets a caller guess a token byte by byte.
    const known = Object.entries(tokensByUser).map(([user, token]) => ({ user, digest: tokenDigest(token) }))
    return Layer.succeed(TokenResolver, {
      resolve: (token) => {
        const digest = tokenDigest(Redacted.value(token))
        let user: string | undefined
        for (const entry of known) {
          if (timingSafeEqual(entry.digest, digest) && user === undefined) user = entry.user
        }
        return user === undefined
          ? Effect.fail(new Unauthenticated({ message: "unknown token" }))
          : Effect.succeed({ id: user })
      }
    })
  }

  /**
   * Fixed tokens from `STORAGE_TOKENS` (`alice=tokenA,bob=tokenB`).
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerFromEnv: Layer.Layer<TokenResolver, ConfigError.ConfigError> = Layer.unwrapEffect(
    Effect.map(
      Config.redacted("STORAGE_TOKENS").pipe(Config.withDefault(Redacted.make(""))),
      (tokens) => TokenResolver.layerFromMap(parseTokens(Redacted.value(tokens)))
    )
  )
}

/**
 * Whether two secrets are equal, in a time that depends on neither: both are
 * hashed to SHA-256 digests of a fixed length, which `timingSafeEqual`
 * compares. For `TokenResolver`s of your own.
 *
 * @since 0.1.0
 * @category security
 */
export const secretsEqual = (a: string, b: string): boolean => timingSafeEqual(tokenDigest(a), tokenDigest(b))

/**
 * Reads `alice=tokenA,bob=tokenB`.
 *
 * @since 0.1.0
 * @category config
 */
export const parseTokens = (text: string): Record<string, string> =>
  Object.fromEntries(
    text.split(",").map((pair) => pair.trim()).filter((pair) => pair.includes("=")).map((pair) => {
      const at = pair.indexOf("=")
      return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()] as const
    }).filter(([user, token]) => user !== "" && token !== "")
  )

/**
 * The API's authentication: a bearer token, resolved by `TokenResolver`.
 *
 * @since 0.1.0
 * @category middleware
 */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("effect-storage/Authentication", {
  failure: Unauthenticated.annotations(HttpApiSchema.annotations({ status: 401 })),
  provides: CurrentPrincipal,
  security: { bearer: HttpApiSecurity.bearer }
}) {
  /**
   * `Authentication` over the `TokenResolver` in context.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<Authentication, never, TokenResolver> = Layer.effect(
    Authentication,
    Effect.map(TokenResolver, (resolver) =>
      Authentication.of({
        bearer: (token) => Redacted.value(token) === "" ? Effect.fail(new Unauthenticated()) : resolver.resolve(token)
      }))
  )
}

/**
 * The principal of an optional credential (`Authorization: Bearer`):
 * anonymous when there is none, `Unauthenticated` when there is a wrong
 * one. Tokens are never taken from the query string (`?access_token=`),
 * where logs and `Referer` headers would keep them: links use
 * `DownloadLinks` instead.
 *
 * @since 0.1.0
 * @category middleware
 */
export const optionalPrincipal = (
  authorization: string | undefined
): Effect.Effect<Principal, Unauthenticated, TokenResolver> => {
  if (authorization === undefined) return Effect.succeed({ id: "anonymous" })
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization.trim())?.[1]
  if (bearer === undefined) return Effect.fail(new Unauthenticated({ message: "malformed Authorization header" }))
  return Effect.flatMap(TokenResolver, (resolver) => resolver.resolve(Redacted.make(bearer)))
}

// ---- internal ----

const tokenDigest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()
