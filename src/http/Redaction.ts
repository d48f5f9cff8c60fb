/**
 * Keeping credentials that travel in URLs out of logs and traces.
 *
 * Signed download links and the embedded backends' part URLs carry their
 * signature in the query string, and a download redirect answers with a
 * presigned S3 URL in `Location`: each is a bearer credential while it
 * lives. The platform's request logger writes the whole URL and its tracer
 * records `url.full`, `url.query` and the response headers, so a server
 * that logs or exports traces would hand them to whoever reads those.
 *
 * - `logger`: the request logger, with those parameters' values redacted;
 * - `withRedaction`: around a server layer, the tracer skips requests whose
 *   URL carries such a parameter (their spans would hold it), and
 *   `Location` is redacted like `Authorization` in the spans it records.
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * Query parameters whose value is a credential (compared case-insensitively).
 *
 * @since 0.1.0
 * @category constants
 */
export const secretParameters: ReadonlySet<string> = new Set([
  "signature",
  "x-amz-signature",
  "x-amz-credential",
  "x-amz-security-token",
  "access_token",
  "token"
])

const isSecret = (name: string) => secretParameters.has(name.toLowerCase())

/**
 * Whether a request URL (path and query) carries a credential.
 *
 * @since 0.1.0
 * @category predicates
 */
export const hasSecret = (url: string): boolean => {
  const query = url.indexOf("?")
  if (query < 0) return false
  for (const name of new URLSearchParams(url.slice(query + 1)).keys()) {
    if (isSecret(name)) return true
  }
  return false
}

/**
 * The URL with the value of every secret parameter replaced by `REDACTED`;
 * everything else as it was.
 *
 * @since 0.1.0
 * @category redaction
 */
export const redactUrl = (url: string): string => {
  const query = url.indexOf("?")
  if (query < 0 || !hasSecret(url)) return url
  const pairs = url.slice(query + 1).split("&").map((pair) => {
    const at = pair.indexOf("=")
    const name = at < 0 ? pair : pair.slice(0, at)
    let decoded = name
    try {
      decoded = decodeURIComponent(name)
    } catch {
      // a malformed name is compared as it is
    }
    return isSecret(decoded) ? `${name}=REDACTED` : pair
  })
  return `${url.slice(0, query)}?${pairs.join("&")}`
}

/**
 * The request logger (one line per response with method, URL and status,
 * as `HttpMiddleware.logger`), with the URL's secrets redacted.
 *
 * @since 0.1.0
 * @category middleware
 */
export const logger = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.onExit(app, (exit) => {
      const annotations = { "http.method": request.method, "http.url": redactUrl(request.url) }
      if (exit._tag === "Success") {
        return Effect.annotateLogs(Effect.log("Sent HTTP response"), {
          ...annotations,
          "http.status": exit.value.status
        })
      }
      const [response, cause] = HttpServerError.causeResponseStripped(exit.cause)
      return Effect.annotateLogs(
        Effect.log(Option.getOrElse(cause, () => "Sent HTTP response" as unknown)),
        { ...annotations, "http.status": response.status }
      )
    }))

/**
 * Around a server layer: no span for a request whose URL carries a secret,
 * and `Location` redacted in the response headers spans record.
 *
 * @since 0.1.0
 * @category layers
 */
export const withRedaction = <A, E, R>(self: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  self.pipe(
    HttpMiddleware.withTracerDisabledWhen((request) => hasSecret(request.url)),
    Layer.locallyWith(Headers.currentRedactedNames, (names) => [...names, "location"])
  )
