import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import {
  identityUrlKeyMapper,
  makeProxyUrlKeyMapper,
  proxyUrlKeyMapper,
  UrlKeyMapper
} from "../../src/layers/files/UrlKeyMapper.js"

const proxy = (url: string) => Option.getOrUndefined(proxyUrlKeyMapper.urlToKey(url))
const identity = (url: string) => Option.getOrUndefined(identityUrlKeyMapper.urlToKey(url))

describe("proxyUrlKeyMapper", () => {
  it("strips the /storage/files/ prefix of a trimmed URL", () => {
    expect(proxy("/storage/files/pub/2026/11/28/a.png")).toBe("pub/2026/11/28/a.png")
    expect(proxy("  /storage/files/priv/b.pdf \n")).toBe("priv/b.pdf")
  })

  it("rejects URLs with a scheme, protocol-relative ones and other paths", () => {
    for (
      const url of [
        "https://example.com/storage/files/pub/a.png",
        "http://localhost:8080/storage/files/pub/a.png",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "mailto:a@b.c",
        "ftp://x/storage/files/a",
        "//cdn.example.com/storage/files/pub/a.png",
        "/storage/file/pub/a.png",
        "storage/files/pub/a.png",
        "/STORAGE/FILES/pub/a.png",
        "pub/a.png",
        ""
      ]
    ) expect(proxy(url), url).toBeUndefined()
  })

  it("rejects an empty remainder", () => {
    expect(proxy("/storage/files/")).toBeUndefined()
    expect(proxy("/storage/files/?download=1")).toBeUndefined()
    expect(proxy("/storage/files/#top")).toBeUndefined()
    expect(proxy("/storage/files/%20")).toBeUndefined()
  })

  it("percent-decodes the remainder once, and drops query and fragment", () => {
    expect(proxy("/storage/files/pub/my%20file.png")).toBe("pub/my file.png")
    expect(proxy("/storage/files/pub/100%2525.png")).toBe("pub/100%25.png")
    expect(proxy("/storage/files/pub/a.png?v=2#x")).toBe("pub/a.png")
    expect(proxy("/storage/files/pub/what%3F.png")).toBe("pub/what?.png")
  })

  it("rejects a malformed percent-encoding", () => {
    expect(proxy("/storage/files/pub/100%.png")).toBeUndefined()
    expect(proxy("/storage/files/pub/%E0%A4%A.png")).toBeUndefined()
    expect(proxy("/storage/files/pub/%FF.png")).toBeUndefined()
  })

  it("takes another prefix", () => {
    const mapper = makeProxyUrlKeyMapper("/files/")
    expect(Option.getOrUndefined(mapper.urlToKey("/files/pub/a.png"))).toBe("pub/a.png")
    expect(Option.isNone(mapper.urlToKey("/storage/files/pub/a.png"))).toBe(true)
  })
})

describe("identityUrlKeyMapper", () => {
  it("accepts any trimmed, non-empty URL without a scheme, verbatim", () => {
    expect(identity(" pub/2026/a.png ")).toBe("pub/2026/a.png")
    expect(identity("/storage/files/pub/a.png")).toBe("/storage/files/pub/a.png")
    expect(identity("pub/my%20file.png")).toBe("pub/my%20file.png")
  })

  it("rejects schemes, protocol-relative, empty and malformed URLs", () => {
    for (
      const url of [
        "http://x/a",
        "https://x/a",
        "data:text/plain,hi",
        "mailto:a@b",
        "javascript:void(0)",
        "ftp://x/a",
        "//host/a.png",
        "",
        "   ",
        "pub/a\u0000.png",
        "pub/a\nb.png"
      ]
    ) expect(identity(url), JSON.stringify(url)).toBeUndefined()
  })
})

describe("UrlKeyMapper", () => {
  it.effect("defaults to the proxy mapper", () =>
    Effect.gen(function*() {
      const mapper = yield* UrlKeyMapper
      expect(mapper).toBe(proxyUrlKeyMapper)
    }))

  it.effect("can be replaced by a layer", () =>
    Effect.gen(function*() {
      const mapper = yield* UrlKeyMapper
      expect(mapper).toBe(identityUrlKeyMapper)
    }).pipe(Effect.provide(UrlKeyMapper.layerIdentity)))
})
