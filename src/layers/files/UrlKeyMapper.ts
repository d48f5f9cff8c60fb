/**
 * Which URLs in rich text and Markdown are stored files, and under which
 * key.
 *
 * The `Files` facade asks the `UrlKeyMapper` in context about every URL it
 * finds in a `richText` or `markdown` field; `uploadedFile` values are keys
 * already and never pass through it. A URL the mapper rejects is not a file
 * reference: it is neither adopted nor deleted.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * The shape of a mapper.
 *
 * @since 0.1.0
 * @category models
 */
export interface UrlKeyMapperShape {
  /** The object key a URL points at, or `None` when it is not a stored file. */
  readonly urlToKey: (url: string) => Option.Option<string>
}

/**
 * The prefix of the download proxy route (`GET /storage/files/{key...}`).
 *
 * @since 0.1.0
 * @category constants
 */
export const proxyPrefix = "/storage/files/"

/**
 * A mapper for URLs served by the download proxy under `prefix`, as the
 * app's pages render them (`<img src="/storage/files/pub/2026/…/x.png">`).
 * After trimming, it rejects:
 *
 * - any URL with a scheme (`https:`, `data:`, `javascript:`, …) and any
 *   protocol-relative URL (`//host/…`): files of this app are linked by
 *   path;
 * - a URL that does not start with `prefix`;
 * - an empty remainder, or one that is empty once its query (`?…`) and
 *   fragment (`#…`) are dropped;
 * - a malformed percent-encoding.
 *
 * Otherwise the key is the remainder without query and fragment,
 * percent-decoded once (`a%20b.png` is the key `a b.png`; a `?` or `#` in a
 * key is written `%3F` / `%23`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeProxyUrlKeyMapper = (prefix: string = proxyPrefix): UrlKeyMapperShape => ({
  urlToKey: (raw) => {
    const url = raw.trim()
    if (hasScheme(url) || url.startsWith("//") || !url.startsWith(prefix)) return Option.none()
    const remainder = url.slice(prefix.length).replace(/[?#].*$/s, "")
    if (remainder === "") return Option.none()
    try {
      const key = decodeURIComponent(remainder)
      return key.trim() === "" ? Option.none() : Option.some(key)
    } catch {
      return Option.none()
    }
  }
})

/**
 * The default mapper: `makeProxyUrlKeyMapper("/storage/files/")`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const proxyUrlKeyMapper: UrlKeyMapperShape = makeProxyUrlKeyMapper()

/**
 * A mapper for apps that store keys verbatim in their rich text
 * (`<img src="pub/2026/…/x.png">`): any trimmed, non-empty URL without a
 * scheme is its own key (`/storage/files/…` included, unchanged). It
 * rejects URLs with a scheme (`http:`, `https:`, `data:`, `mailto:`,
 * `javascript:`, `ftp:`, …), protocol-relative URLs (`//host/…`) and
 * malformed ones (control characters, unparseable as a relative URL).
 *
 * @since 0.1.0
 * @category constructors
 */
export const identityUrlKeyMapper: UrlKeyMapperShape = {
  urlToKey: (raw) => {
    const url = raw.trim()
    if (url === "" || hasScheme(url) || url.startsWith("//")) return Option.none()
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(url)) return Option.none()
    try {
      new URL(url, "http://relative.invalid/")
    } catch {
      return Option.none()
    }
    return Option.some(url)
  }
}

/**
 * The mapper in use. A `Context.Reference`: without a layer of its own it
 * is `proxyUrlKeyMapper`. Provide another one to the `Files` layer to
 * change it, e.g. `Files.Default.pipe(Layer.provide(UrlKeyMapper.layerIdentity))`.
 *
 * @since 0.1.0
 * @category tags
 */
export class UrlKeyMapper extends Context.Reference<UrlKeyMapper>()("effect-storage/UrlKeyMapper", {
  defaultValue: (): UrlKeyMapperShape => proxyUrlKeyMapper
}) {
  /**
   * Uses `mapper`.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layer = (mapper: UrlKeyMapperShape): Layer.Layer<UrlKeyMapper> => Layer.succeed(UrlKeyMapper, mapper)

  /**
   * The proxy mapper with another route prefix.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerProxy = (prefix: string = proxyPrefix): Layer.Layer<UrlKeyMapper> =>
    UrlKeyMapper.layer(makeProxyUrlKeyMapper(prefix))

  /**
   * `identityUrlKeyMapper`.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerIdentity: Layer.Layer<UrlKeyMapper> = UrlKeyMapper.layer(identityUrlKeyMapper)
}

// ---- internal ----

const hasScheme = (url: string) => /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(url)
