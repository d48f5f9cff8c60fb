/**
 * URLs in rich text (HTML) and Markdown: finding them, to adopt and delete
 * the files they point at, and rewriting them, to render stored keys as
 * URLs.
 *
 * Both scanners are small hand-written tokenizers, not HTML or CommonMark
 * parsers; they find what an editor produces:
 *
 * - HTML: `<img src>`, `<a href>`, `<video src>`, `<audio src>`,
 *   `<source src>`, `<embed src>` and `<object data>`. Tag and attribute
 *   names are case-insensitive; the value must be quoted with matching
 *   quotes (`"…"` or `'…'`), an unquoted or unterminated value is ignored.
 *   Attributes are read in order, so `alt=' src="x"'` is not taken for a
 *   `src`, nor is `data-src`. The first occurrence of an attribute counts,
 *   as in a browser. Character references (`&amp;`, `&#47;`, `&#x2F;`, …)
 *   in a value are decoded.
 * - Markdown: inline links and images, `[text](url)` and `![alt](url)`,
 *   with an optional `"title"` or `'title'`, a destination in angle brackets
 *   (`[a](<my file.png>)`), one level of balanced parentheses in a bare
 *   destination, images nested in link text (`[![alt](img)](href)`), and
 *   reference definitions (`[id]: url "title"`, footnotes `[^1]:` excluded). Code spans and fences are
 *   not special: a link written inside one is found too.
 *
 * URLs are trimmed; empty ones are skipped; each text answers every URL
 * once, in order of first appearance. No URL is rejected here, whatever its
 * scheme: deciding which URLs are stored files is the `UrlKeyMapper`'s job.
 *
 * @since 0.1.0
 */

/**
 * The tags whose URL attribute is read, lower-case tag to lower-case
 * attribute.
 *
 * @since 0.1.0
 * @category constants
 */
export const htmlUrlAttributes: Readonly<Record<string, string>> = {
  img: "src",
  a: "href",
  video: "src",
  audio: "src",
  source: "src",
  embed: "src",
  object: "data"
}

/**
 * The URLs of an HTML fragment, trimmed, de-duplicated, in order.
 *
 * @since 0.1.0
 * @category extraction
 */
export const extractHtmlUrls = (html: string): ReadonlyArray<string> => {
  const urls = new UniqueUrls()
  for (const hit of scanHtml(html)) urls.add(hit.url)
  return urls.values
}

/**
 * The URLs of a Markdown text, trimmed, de-duplicated, in order.
 *
 * @since 0.1.0
 * @category extraction
 */
export const extractMarkdownUrls = (markdown: string): ReadonlyArray<string> => {
  const urls = new UniqueUrls()
  for (const hit of scanMarkdown(markdown)) urls.add(hit.url)
  return urls.values
}

/**
 * Rewrites every URL that `extractHtmlUrls` finds with `f` (given the
 * trimmed, decoded URL). Everything else is kept byte for byte: the quote
 * style, the whitespace around the URL inside the quotes, the other
 * attributes. A URL for which `f` answers the same string is left exactly as
 * written; a new one is escaped for its attribute (`&` and the quote
 * character become character references).
 *
 * @since 0.1.0
 * @category rendering
 */
export const replaceHtmlUrls = (html: string, f: (url: string) => string): string =>
  splice(html, scanHtml(html), f, (url, hit) => escapeAttribute(url, hit.quote))

/**
 * Rewrites every URL that `extractMarkdownUrls` finds with `f` (given the
 * trimmed URL, without angle brackets). Titles, their quote style, angle
 * brackets and the link text are kept; a URL for which `f` answers the same
 * string is left exactly as written. A new bare destination that would not
 * parse as one (whitespace, parentheses, angle brackets) is put in angle
 * brackets.
 *
 * @since 0.1.0
 * @category rendering
 */
export const replaceMarkdownUrls = (markdown: string, f: (url: string) => string): string =>
  splice(markdown, scanMarkdown(markdown), f, (url, hit) =>
    hit.quote === "<"
      ? url.replace(/[<>\n]/g, encodeURIComponent)
      : /[\s()<>]/.test(url)
      ? `<${url.replace(/[<>\n]/g, encodeURIComponent)}>`
      : url)

// ---- internal ----

/** One URL found in a text: `[start, end)` is the raw text of the trimmed URL. */
interface Hit {
  readonly url: string
  readonly start: number
  readonly end: number
  /** `"` or `'` for HTML, `<` for a Markdown destination in angle brackets, `""` otherwise. */
  readonly quote: string
}

class UniqueUrls {
  readonly values: Array<string> = []
  private readonly seen = new Set<string>()
  add(url: string) {
    if (url === "" || this.seen.has(url)) return
    this.seen.add(url)
    this.values.push(url)
  }
}

const splice = (
  text: string,
  hits: ReadonlyArray<Hit>,
  f: (url: string) => string,
  encode: (url: string, hit: Hit) => string
): string => {
  let out = ""
  let last = 0
  for (const hit of hits) {
    const next = f(hit.url)
    if (next === hit.url) continue
    out += text.slice(last, hit.start) + encode(next, hit)
    last = hit.end
  }
  return last === 0 ? text : out + text.slice(last)
}

/** The span of `value` within `[start, end)` without surrounding whitespace. */
const trimmedSpan = (text: string, start: number, end: number) => {
  while (start < end && isSpace(text.charCodeAt(start))) start++
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--
  return { start, end }
}

const isSpace = (code: number) => code === 32 || (code >= 9 && code <= 13) || code === 0xa0 || code === 0xfeff

// ---- HTML ----

const tagStart = /<(img|a|video|audio|source|embed|object)(?=[\s/>])/gi

const scanHtml = (html: string): ReadonlyArray<Hit> => {
  const hits: Array<Hit> = []
  tagStart.lastIndex = 0
  let match: RegExpExecArray | null
  while ((match = tagStart.exec(html)) !== null) {
    const wanted = htmlUrlAttributes[match[1]!.toLowerCase()]!
    const { end, hit } = scanAttributes(html, tagStart.lastIndex, wanted)
    if (hit !== undefined) hits.push(hit)
    tagStart.lastIndex = Math.max(end, tagStart.lastIndex)
  }
  return hits
}

/**
 * Reads the attributes of a tag from `i` (just after its name) to its `>`.
 * Answers where the scan stopped and the wanted attribute's URL, when its
 * first occurrence has a quoted value.
 */
const scanAttributes = (html: string, i: number, wanted: string): { end: number; hit: Hit | undefined } => {
  const n = html.length
  let seen = false
  let hit: Hit | undefined
  while (i < n) {
    while (i < n && (isSpace(html.charCodeAt(i)) || html[i] === "/")) i++
    if (i >= n || html[i] === ">") break
    const nameStart = i
    while (i < n && !isSpace(html.charCodeAt(i)) && !"/>=".includes(html[i]!)) i++
    // A stray quote or `<` would otherwise never advance.
    if (i === nameStart) i++
    const name = html.slice(nameStart, i).toLowerCase()
    let j = i
    while (j < n && isSpace(html.charCodeAt(j))) j++
    if (html[j] !== "=") continue
    j++
    while (j < n && isSpace(html.charCodeAt(j))) j++
    const quote = html[j]
    if (quote === "\"" || quote === "'") {
      const close = html.indexOf(quote, j + 1)
      // An unterminated value: the tag never ends, nothing in it counts.
      if (close === -1) return { end: n, hit: undefined }
      if (name === wanted && !seen) {
        seen = true
        const span = trimmedSpan(html, j + 1, close)
        hit = { url: decodeCharacterReferences(html.slice(span.start, span.end)).trim(), quote, ...span }
      }
      i = close + 1
    } else {
      // Unquoted: skipped, and it hides later occurrences of the same name.
      if (name === wanted) seen = true
      while (j < n && !isSpace(html.charCodeAt(j)) && html[j] !== ">") j++
      i = j
    }
  }
  return { end: i, hit: hit !== undefined && hit.url !== "" ? hit : undefined }
}

const namedReferences: Readonly<Record<string, string>> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: "\"",
  apos: "'",
  nbsp: "\u00a0"
}

const decodeCharacterReferences = (value: string): string =>
  value.indexOf("&") === -1 ? value : value.replace(
    /&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));/g,
    (whole, dec: string | undefined, hex: string | undefined, name: string | undefined) => {
      if (name !== undefined) return namedReferences[name] ?? whole
      const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex!, 16)
      return code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff) ? String.fromCodePoint(code) : whole
    }
  )

const escapeAttribute = (url: string, quote: string): string =>
  url.replace(/&/g, "&amp;").replace(quote === "'" ? /'/g : /"/g, quote === "'" ? "&#39;" : "&quot;")

// ---- Markdown ----

// Link text: anything but brackets, backslash escapes, or one nested [..].
const linkText = String.raw`(?:\\.|[^\[\]\\]|\[(?:\\.|[^\[\]\\])*\])*`
// A destination: <...> or a bare run with one level of balanced parentheses.
const destination = String.raw`<[^<>\n]*>|(?:[^\s()<>\\]|\\.|\((?:[^\s()<>\\]|\\.)*\))+`

// "[label](" or "![label](": the rest is read by `linkTail`, without
// backtracking (a regex for it backtracks quadratically on long whitespace).
const linkOpen = new RegExp(String.raw`!?\[(${linkText})\]\(`, "g")
const referenceDefinition = new RegExp(
  String.raw`^[ ]{0,3}\[(?!\^)(?:\\.|[^\[\]\\])+\]:[ \t]*(?:\n[ \t]*)?(${destination})(?=[ \t]|\n|$)`,
  "gm"
)

const scanMarkdown = (markdown: string): ReadonlyArray<Hit> => {
  const hits: Array<Hit> = []
  scanInline(markdown, 0, hits)
  referenceDefinition.lastIndex = 0
  let match: RegExpExecArray | null
  while ((match = referenceDefinition.exec(markdown)) !== null) {
    const dest = match[1]!
    pushDestination(hits, dest, match.index + match[0].length - dest.length)
  }
  return hits.sort((a, b) => a.start - b.start)
}

/**
 * Inline links and images of `text`, nested ones in link text included;
 * `offset` is where `text` starts in the whole document.
 */
const scanInline = (text: string, offset: number, hits: Array<Hit>) => {
  const re = new RegExp(linkOpen.source, "g")
  let match: RegExpExecArray | null
  while ((match = re.exec(text)) !== null) {
    const tail = linkTail(text, match.index + match[0].length)
    if (tail === undefined) {
      // Not a link: look again just after its "[", at a nested one.
      re.lastIndex = match.index + 1
      continue
    }
    const labelStart = match.index + match[0].indexOf("[") + 1
    // A label is short, and scanned on its own: never the rest of the text.
    scanInline(match[1]!, offset + labelStart, hits)
    if (tail.dest !== undefined) {
      pushDestination(hits, text.slice(tail.dest.start, tail.dest.end), offset + tail.dest.start)
    }
    re.lastIndex = tail.end
  }
}

const isBlank = (c: string | undefined) => c === " " || c === "\t"

/** Skips spaces and tabs and at most one line break. */
const skipBlanks = (text: string, i: number) => {
  while (isBlank(text[i])) i++
  if (text[i] === "\n") {
    i++
    while (isBlank(text[i])) i++
  }
  return i
}

/**
 * Reads `dest "title")` from `i`, just after "](": answers the span of the
 * destination (undefined when empty) and the index after ")", or undefined
 * when this is not a link.
 */
const linkTail = (
  text: string,
  i: number
): { dest: { start: number; end: number } | undefined; end: number } | undefined => {
  const to = text.length
  i = skipBlanks(text, i)
  let dest: { start: number; end: number } | undefined
  if (text[i] === "<") {
    const start = i
    i++
    while (i < to && text[i] !== ">" && text[i] !== "<" && text[i] !== "\n") i++
    if (text[i] !== ">") return undefined
    i++
    dest = { start, end: i }
  } else {
    const start = i
    let depth = 0
    while (i < to) {
      const c = text[i]!
      if (c === "\\" && i + 1 < to) {
        i += 2
        continue
      }
      if (c === "(") {
        // One level of nesting, as the reference-definition pattern allows.
        if (depth === 1) return undefined
        depth++
      } else if (c === ")") {
        if (depth === 0) break
        depth--
      } else if (c === "<" || c === ">" || /\s/.test(c)) {
        break
      }
      i++
    }
    if (depth !== 0) return undefined
    if (i > start) dest = { start, end: i }
  }
  const afterDest = i
  i = skipBlanks(text, i)
  const quote = text[i]
  if ((quote === "\"" || quote === "'") && i > afterDest) {
    const close = text.indexOf(quote, i + 1)
    if (close === -1) return undefined
    i = skipBlanks(text, close + 1)
  }
  if (text[i] !== ")") return undefined
  return { dest, end: i + 1 }
}

const pushDestination = (hits: Array<Hit>, dest: string, start: number) => {
  if (dest.startsWith("<")) {
    const inner = dest.slice(1, -1)
    const lead = inner.length - inner.trimStart().length
    const url = inner.trim()
    if (url !== "") hits.push({ url, start: start + 1 + lead, end: start + 1 + lead + url.length, quote: "<" })
  } else if (dest !== "") {
    hits.push({ url: dest, start, end: start + dest.length, quote: "" })
  }
}
