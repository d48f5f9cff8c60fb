/**
 * Browser sessions: a signed, HttpOnly session cookie as a second way to
 * authenticate, for clients that send no custom headers (a web page using
 * Uppy's `@uppy/aws-s3` plugin, whose calls to the server carry no bearer
 * token). A page exchanges a bearer token for the cookie once
 * (`POST /storage/session`); from then on the browser sends it along on its
 * own origin.
 *
 * Cross-site requests: the cookie is `SameSite=Strict`, and
 * `SessionAuthentication` refuses a cookie on an unsafe method (anything but
 * GET, HEAD, OPTIONS) unless the request's `Origin` is the server's own
 * (or, without `Origin`, `Sec-Fetch-Site: same-origin`).
 *
 * The cookie is `<principal id, base64url>.<expiry>.<HMAC-SHA256>` under a
 * server secret: stateless, so every server sharing the secret accepts it.
 *
 * @since 0.1.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHmac, timingSafeEqual } from "node:crypto"
import { serverSecret } from "../internal/secrets.js"
import { lifetime } from "../layers/StorageConfig.js"
import { type StorageBackendError, Unauthenticated } from "../schema/Errors.js"
import { isAnonymous, type Principal } from "../schema/Models.js"
import { Authentication, CurrentPrincipal, TokenResolver } from "./Authentication.js"

/**
 * The session cookie's name.
 *
 * @since 0.1.0
 * @category constants
 */
export const cookieName = "effect_storage_session"

/**
 * The session cookie as an `HttpApiSecurity` scheme.
 *
 * @since 0.1.0
 * @category security
 */
export const sessionCookie = HttpApiSecurity.apiKey({ in: "cookie", key: cookieName })

/**
 * Issues and checks session cookies.
 *
 * @since 0.1.0
 * @category tags
 */
export class Sessions extends Context.Tag("effect-storage/Sessions")<Sessions, {
  /** How long a session lives. */
  readonly ttl: Duration.Duration
  /** Whether cookies are marked `Secure` whatever the request (else: when it came over TLS). */
  readonly alwaysSecure: boolean
  /** A cookie value for the principal, valid for `ttl`. */
  readonly issue: (principal: Principal) => Effect.Effect<{ readonly value: string; readonly expiresAt: DateTime.Utc }>
  /** The principal of a cookie value; `Unauthenticated` when it is not one of ours or has expired. */
  readonly resolve: (value: Redacted.Redacted<string>) => Effect.Effect<Principal, Unauthenticated>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionsOptions {
  /** The signing secret; at least 32 bytes. */
  readonly secret: Redacted.Redacted<string> | Uint8Array
  /** How long a session lives; 12 hours when absent. */
  readonly ttl?: Duration.DurationInput | undefined
  /** Mark cookies `Secure` always (behind a TLS proxy that sends no `X-Forwarded-Proto`). */
  readonly alwaysSecure?: boolean | undefined
}

/**
 * The default life of a session: 12 hours.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTtl = Duration.hours(12)

const minimumSecretBytes = 32

/**
 * Sessions signed with `options.secret` (at least 32 bytes, or it throws).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: SessionsOptions): Sessions["Type"] => {
  const secret = options.secret instanceof Uint8Array
    ? Buffer.from(options.secret)
    : Buffer.from(Redacted.value(options.secret), "utf8")
  if (secret.byteLength < minimumSecretBytes) {
    throw new Error(`a session secret needs at least ${minimumSecretBytes} bytes`)
  }
  const ttl = options.ttl === undefined ? defaultTtl : Duration.decode(options.ttl)
  const mac = (id: string, expires: string) =>
    createHmac("sha256", secret).update(`effect-storage session\n${id}\n${expires}`, "utf8").digest()

  const issue = Effect.fn("Sessions.issue")(function*(principal: Principal) {
    const now = yield* DateTime.now
    const expires = Math.ceil((DateTime.toEpochMillis(now) + Duration.toMillis(ttl)) / 1000)
    const id = Buffer.from(principal.id, "utf8").toString("base64url")
    return {
      value: `${id}.${expires}.${mac(principal.id, String(expires)).toString("base64url")}`,
      expiresAt: DateTime.unsafeMake(expires * 1000)
    }
  })

  const resolve = Effect.fn("Sessions.resolve")(function*(value: Redacted.Redacted<string>) {
    const match = /^([\w-]{1,700})\.(\d{1,12})\.([\w-]{43})$/.exec(Redacted.value(value))
    if (match === null) return yield* new Unauthenticated({ message: "no valid session" })
    const id = Buffer.from(match[1]!, "base64url").toString("utf8")
    const given = Buffer.from(match[3]!, "base64url")
    const expected = mac(id, match[2]!)
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
      return yield* new Unauthenticated({ message: "no valid session" })
    }
    if (DateTime.toEpochMillis(yield* DateTime.now) >= Number(match[2]) * 1000) {
      return yield* new Unauthenticated({ message: "the session has expired; sign in again" })
    }
    return { id }
  })

  return { ttl, alwaysSecure: options.alwaysSecure === true, issue, resolve }
}

/**
 * Sessions with a given secret.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: SessionsOptions): Layer.Layer<Sessions> => Layer.sync(Sessions, () => make(options))

/**
 * Sessions from the environment: `STORAGE_SESSION_SECRET` (at least 32
 * characters), else `STORAGE_SESSION_SECRET_FILE` or, with the filesystem
 * backend, `session.secret` beside `STORAGE_ROOT` (made on first start),
 * else a random secret in memory with a warning; `STORAGE_SESSION_TTL`
 * (12 hours); `STORAGE_SESSION_SECURE=true` to mark cookies `Secure` always.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig: Layer.Layer<Sessions, ConfigError.ConfigError | StorageBackendError> = Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const ttl = yield* lifetime("STORAGE_SESSION_TTL", defaultTtl)
    const alwaysSecure = yield* Config.boolean("STORAGE_SESSION_SECURE").pipe(Config.withDefault(false))
    const secret = yield* serverSecret({
      name: "STORAGE_SESSION_SECRET",
      fileName: "session.secret",
      operation: "sessionSecret",
      minimumBytes: minimumSecretBytes,
      warning:
        "STORAGE_SESSION_SECRET is not set: sessions are signed with a secret in memory, so they end with this " +
        "process and fail on other servers; set STORAGE_SESSION_SECRET (the same on every server)"
    })
    return make({ secret, ttl, alwaysSecure })
  })
)

/**
 * Authentication by bearer token or session cookie, for routes that
 * browsers call without custom headers. A cookie on an unsafe method must
 * come from the server's own origin (see the module documentation).
 *
 * @since 0.1.0
 * @category middleware
 */
export class SessionAuthentication
  extends HttpApiMiddleware.Tag<SessionAuthentication>()("effect-storage/SessionAuthentication", {
    failure: Unauthenticated.annotations(HttpApiSchema.annotations({ status: 401 })),
    provides: CurrentPrincipal,
    security: { bearer: HttpApiSecurity.bearer, cookie: sessionCookie }
  })
{
  /**
   * Over the `TokenResolver` and `Sessions` in context.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<SessionAuthentication, never, TokenResolver | Sessions> = Layer.effect(
    SessionAuthentication,
    Effect.gen(function*() {
      const resolver = yield* TokenResolver
      const sessions = yield* Sessions
      return SessionAuthentication.of({
        bearer: (token) => Redacted.value(token) === "" ? Effect.fail(new Unauthenticated()) : resolver.resolve(token),
        cookie: (value) =>
          Effect.gen(function*() {
            if (Redacted.value(value) === "") return yield* new Unauthenticated()
            yield* sameOrigin(yield* HttpServerRequest.HttpServerRequest)
            return yield* sessions.resolve(value)
          })
      })
    })
  )
}

/**
 * `POST /storage/session` (bearer token: sets the session cookie) and
 * `DELETE /storage/session` (clears it).
 *
 * @since 0.1.0
 * @category api
 */
export class SessionApiGroup extends HttpApiGroup.make("session")
  .add(
    HttpApiEndpoint.post("startSession", "/storage/session")
      .addSuccess(Schema.Struct({ principal: Schema.String, expiresAt: Schema.DateTimeUtc }))
      .middleware(Authentication)
      .annotate(OpenApi.Summary, "Exchange a bearer token for an HttpOnly session cookie (for browser uploads)")
  )
  .add(
    HttpApiEndpoint.del("endSession", "/storage/session")
      .addSuccess(HttpApiSchema.NoContent)
      .annotate(OpenApi.Summary, "Clear the session cookie")
  )
  .addError(Unauthenticated, { status: 401 })
{}

/**
 * The session group's handlers, for `HttpApiBuilder.group(api, "session",
 * sessionHandlers)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sessionHandlers = <E, Provides>(
  handlers: HttpApiBuilder.Handlers<
    E | HttpApiGroup.HttpApiGroup.Error<typeof SessionApiGroup>,
    Provides,
    never,
    HttpApiGroup.HttpApiGroup.Endpoints<typeof SessionApiGroup>
  >
) =>
  Effect.gen(function*() {
    const sessions = yield* Sessions
    return handlers
      .handle("startSession", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          if (isAnonymous(principal)) return yield* new Unauthenticated()
          const request = yield* HttpServerRequest.HttpServerRequest
          const { expiresAt, value } = yield* sessions.issue(principal)
          yield* HttpApiBuilder.securitySetCookie(sessionCookie, value, {
            httpOnly: true,
            secure: sessions.alwaysSecure || overTls(request),
            sameSite: "strict",
            path: "/",
            expires: DateTime.toDate(expiresAt)
          })
          return { principal: principal.id, expiresAt }
        }))
      .handle("endSession", () =>
        HttpApiBuilder.securitySetCookie(sessionCookie, "", {
          httpOnly: true,
          sameSite: "strict",
          path: "/",
          maxAge: 0,
          secure: false
        }))
  })

// ---- internal ----

const safeMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"])

/** Whether the request came over TLS (directly, or through a proxy that says so). */
const overTls = (request: HttpServerRequest.HttpServerRequest): boolean =>
  request.headers["x-forwarded-proto"]?.split(",")[0]?.trim().toLowerCase() === "https" ||
  (request.source as { socket?: { encrypted?: boolean } } | undefined)?.socket?.encrypted === true

/**
 * CSRF: a cookie-authenticated unsafe request must come from the server's
 * own origin. Browsers send `Origin` on every cross-origin request and on
 * every same-origin POST, PUT, PATCH and DELETE; on a GET, the
 * `Sec-Fetch-Site` they send must not name another site or subdomain.
 */
const sameOrigin = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<void, Unauthenticated> => {
  if (safeMethods.has(request.method)) {
    // Some GETs act (Companion's /s3/params opens an upload), and SameSite
    // lets a sibling subdomain's page send the cookie: a browser says where
    // a request came from, and only its own pages (or the user) may.
    const site = request.headers["sec-fetch-site"]
    return site === undefined || site === "same-origin" || site === "none"
      ? Effect.void
      : Effect.fail(new Unauthenticated({ message: `a session cookie is not accepted from a ${site} request` }))
  }
  const origin = request.headers["origin"]
  const host = request.headers["x-forwarded-host"] ?? request.headers["host"]
  if (origin !== undefined && origin !== "null") {
    const originHost = Option.getOrUndefined(Option.liftThrowable(() => new URL(origin).host)())
    if (originHost !== undefined && host !== undefined && originHost === host) return Effect.void
  } else if (request.headers["sec-fetch-site"] === "same-origin") {
    return Effect.void
  }
  return Effect.fail(
    new Unauthenticated({ message: "a session cookie is accepted only from the server's own origin" })
  )
}
