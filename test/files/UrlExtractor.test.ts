import { describe, expect, it } from "@effect/vitest"
import {
  extractHtmlUrls,
  extractMarkdownUrls,
  replaceHtmlUrls,
  replaceMarkdownUrls
} from "../../src/layers/files/UrlExtractor.js"

describe("extractHtmlUrls", () => {
  it("reads the URL attribute of every supported tag", () => {
    const html = `
      <p><img src="/i.png" alt="x"></p>
      <a href="/a.pdf">doc</a>
      <video src="/v.mp4" controls></video>
      <audio src="/s.mp3"></audio>
      <video><source src="/alt.webm" type="video/webm"></video>
      <embed src="/e.swf">
      <object data="/o.svg" type="image/svg+xml"></object>`
    expect(extractHtmlUrls(html)).toEqual(["/i.png", "/a.pdf", "/v.mp4", "/s.mp3", "/alt.webm", "/e.swf", "/o.svg"])
  })

  it("is case-insensitive in tag and attribute names, and accepts any whitespace", () => {
    expect(extractHtmlUrls(`<IMG SRC="/a.png"><A\n  HREF = '/b.png'>x</A><Object\tDATA="/c">`))
      .toEqual(["/a.png", "/b.png", "/c"])
  })

  it("accepts single or double quotes and requires the matching one", () => {
    expect(extractHtmlUrls(`<img src='/single.png'><img src="/double.png">`)).toEqual(["/single.png", "/double.png"])
    expect(extractHtmlUrls(`<img src="/it's.png">`)).toEqual(["/it's.png"])
    expect(extractHtmlUrls(`<img src='/say "hi".png'>`)).toEqual([`/say "hi".png`])
    // The double quote never closes: the tag never ends, nothing in it counts.
    expect(extractHtmlUrls(`<img src="/broken.png'>`)).toEqual([])
  })

  it("ignores unquoted values and empty ones", () => {
    expect(extractHtmlUrls(`<img src=/bare.png><img src=""><img src="   "><a href>x</a>`)).toEqual([])
  })

  it("takes only the tag's own attribute, not look-alikes", () => {
    expect(extractHtmlUrls(`<img data-src="/lazy.png" srcset="/2x.png 2x"><a src="/no"><img href="/no">`)).toEqual([])
    expect(extractHtmlUrls(`<abbr src="/no"><image src="/no"><imgx src="/no"><sources src="/no">`)).toEqual([])
    expect(extractHtmlUrls(`<video poster="/poster.jpg" src="/v.mp4">`)).toEqual(["/v.mp4"])
  })

  it("reads attributes in order, so quoted text is never taken for an attribute", () => {
    expect(extractHtmlUrls(`<img alt=' src="/fake.png"' src="/real.png">`)).toEqual(["/real.png"])
    expect(extractHtmlUrls(`<a title="<a href='/fake'>" href="/real">`)).toEqual(["/real"])
  })

  it("uses the first occurrence of the attribute, as a browser does", () => {
    expect(extractHtmlUrls(`<img src="/first.png" src="/second.png">`)).toEqual(["/first.png"])
  })

  it("decodes character references", () => {
    expect(extractHtmlUrls(`<a href="/f?a=1&amp;b=2&#38;c=&#x33;">`)).toEqual(["/f?a=1&b=2&c=3"])
    expect(extractHtmlUrls(`<a href="/f&unknown;">`)).toEqual(["/f&unknown;"])
  })

  it("trims and de-duplicates, keeping the order of first appearance", () => {
    expect(extractHtmlUrls(`<img src=" /b.png "><img src="/a.png"><a href="/b.png">`)).toEqual(["/b.png", "/a.png"])
  })

  it("passes every scheme on", () => {
    expect(extractHtmlUrls(`<img src="https://cdn/x.png"><img src="data:image/png;base64,AA"><a href="mailto:a@b">`))
      .toEqual(["https://cdn/x.png", "data:image/png;base64,AA", "mailto:a@b"])
  })

  it("copes with text that is not HTML", () => {
    expect(extractHtmlUrls("")).toEqual([])
    expect(extractHtmlUrls("a < b > c <img")).toEqual([])
    expect(extractHtmlUrls(`<img src="/a.png"`)).toEqual(["/a.png"])
    expect(extractHtmlUrls(`<<img src="/a.png">>`)).toEqual(["/a.png"])
  })
})

describe("extractMarkdownUrls", () => {
  it("reads images and links", () => {
    expect(extractMarkdownUrls("![alt](/i.png) and [text](/doc.pdf)")).toEqual(["/i.png", "/doc.pdf"])
  })

  it("removes a double- or single-quoted title", () => {
    expect(extractMarkdownUrls(`![a](/i.png "A title") [b](/d.pdf 'other') [c](/e.pdf  "x y")`))
      .toEqual(["/i.png", "/d.pdf", "/e.pdf"])
  })

  it("reads destinations in angle brackets, and balanced parentheses", () => {
    expect(extractMarkdownUrls("[a](< /my file.png >) [w](/wiki/Foo_(bar)) [e](<>)"))
      .toEqual(["/my file.png", "/wiki/Foo_(bar)"])
  })

  it("finds images nested in link text", () => {
    expect(extractMarkdownUrls("[![thumb](/thumb.png)](/full.png)")).toEqual(["/thumb.png", "/full.png"])
  })

  it("reads reference definitions, not footnotes", () => {
    const md = "See [the doc][d].\n\n[d]: /doc.pdf \"Doc\"\n  [logo]: </logo 1.png>\n[^1]: a footnote"
    expect(extractMarkdownUrls(md)).toEqual(["/doc.pdf", "/logo 1.png"])
  })

  it("trims, skips empty destinations and de-duplicates", () => {
    expect(extractMarkdownUrls("[a]( /x.png ) [b]() ![c](/x.png) [d](/y.png)")).toEqual(["/x.png", "/y.png"])
  })

  it("finds an image in the label of a broken link, and accepts a title on the next line", () => {
    expect(extractMarkdownUrls("[see ![i](/i.png)](broken")).toEqual(["/i.png"])
    expect(extractMarkdownUrls("[a](/a.pdf\n  \"A title\"\n)")).toEqual(["/a.pdf"])
  })

  it("stays linear on adversarial input", () => {
    const inputs = [
      "[](" + " ".repeat(100_000),
      "[a](" + " \t".repeat(50_000) + "x",
      "[a](".repeat(20_000),
      "[a](b) ".repeat(10_000) + "[x] ".repeat(10_000),
      "[" + "[a]".repeat(30_000),
      "<img " + "a='' ".repeat(30_000)
    ]
    const started = performance.now()
    for (const input of inputs) {
      extractMarkdownUrls(input)
      extractHtmlUrls(input)
    }
    expect(performance.now() - started).toBeLessThan(2_000)
  })

  it("ignores text that only looks like a link", () => {
    expect(extractMarkdownUrls("[no link] (/spaced) and ](/orphan) and [open(/x)")).toEqual([])
  })
})

describe("replaceHtmlUrls", () => {
  const toProxy = (url: string) => url.startsWith("pub/") ? `/storage/files/${url}` : url

  it("rewrites URLs and keeps quote styles and everything else", () => {
    const html = `<p class="x"><img src='pub/a.png' alt="a"> <a HREF="pub/b.pdf">b</a> <img src="https://x/y.png"></p>`
    expect(replaceHtmlUrls(html, toProxy)).toBe(
      `<p class="x"><img src='/storage/files/pub/a.png' alt="a"> <a HREF="/storage/files/pub/b.pdf">b</a> <img src="https://x/y.png"></p>`
    )
  })

  it("keeps the whitespace inside the quotes, and unchanged URLs byte for byte", () => {
    const html = `<img src=" pub/a.png "><a href="/f?a=1&amp;b=2">`
    expect(replaceHtmlUrls(html, toProxy)).toBe(`<img src=" /storage/files/pub/a.png "><a href="/f?a=1&amp;b=2">`)
    expect(replaceHtmlUrls(html, (url) => url)).toBe(html)
  })

  it("escapes a new URL for its attribute", () => {
    expect(replaceHtmlUrls(`<a href="x">`, () => `/f?a="1"&b`)).toBe(`<a href="/f?a=&quot;1&quot;&amp;b">`)
    expect(replaceHtmlUrls(`<a href='x'>`, () => `/it's`)).toBe(`<a href='/it&#39;s'>`)
  })

  it("round-trips with extraction", () => {
    const html = `<img src='pub/a.png'><a href="pub/a.png">`
    const rendered = replaceHtmlUrls(html, toProxy)
    expect(extractHtmlUrls(rendered)).toEqual(["/storage/files/pub/a.png"])
  })
})

describe("replaceMarkdownUrls", () => {
  const toProxy = (url: string) => url.startsWith("pub/") ? `/storage/files/${url}` : url

  it("rewrites URLs and keeps titles and their quote style", () => {
    const md = `![a](pub/a.png "Title") [b](pub/b.pdf 'T') [c](https://x/y)`
    expect(replaceMarkdownUrls(md, toProxy)).toBe(
      `![a](/storage/files/pub/a.png "Title") [b](/storage/files/pub/b.pdf 'T') [c](https://x/y)`
    )
  })

  it("rewrites nested images, reference definitions and angle-bracket destinations", () => {
    const md = "[![t](pub/t.png)](pub/f.png)\n[r]: pub/r.png 'R'\n[s](<pub/s s.png>)"
    expect(replaceMarkdownUrls(md, toProxy)).toBe(
      "[![t](/storage/files/pub/t.png)](/storage/files/pub/f.png)\n[r]: /storage/files/pub/r.png 'R'\n[s](</storage/files/pub/s s.png>)"
    )
  })

  it("rewrites the destination only, never a label or title that reads the same", () => {
    expect(replaceMarkdownUrls(`[pub/a.png](pub/a.png "pub/a.png")`, toProxy))
      .toBe(`[pub/a.png](/storage/files/pub/a.png "pub/a.png")`)
  })

  it("puts a new destination that needs it in angle brackets, and leaves unchanged text alone", () => {
    expect(replaceMarkdownUrls("[a](x)", () => "/my file.png")).toBe("[a](</my file.png>)")
    const md = "[a]( x  'y' )"
    expect(replaceMarkdownUrls(md, (url) => url)).toBe(md)
    expect(replaceMarkdownUrls(md, () => "z")).toBe("[a]( z  'y' )")
  })
})
