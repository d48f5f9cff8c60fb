import { assert, describe, it } from "@effect/vitest"
import { compareKeys } from "../../src/internal/objectStorage.js"

// Code units around the places where UTF-16 order and UTF-8 byte order part:
// surrogate pairs (above U+FFFF) against U+E000..U+FFFF.
const pieces = [
  "",
  "a",
  "B",
  "/",
  " ",
  "\u0000",
  "é",
  "\ud7ff",
  "\ue000",
  "\uffff",
  "\u{10000}",
  "\u{1f600}",
  "\u{10ffff}"
]

const byBytes = (a: string, b: string) => Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)))

describe("compareKeys", () => {
  it("orders keys by their UTF-8 bytes, as S3 lists them", () => {
    let seed = 42
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const key = () =>
      Array.from({ length: Math.floor(next() * 5) }, () => pieces[Math.floor(next() * pieces.length)]).join("")
    for (let i = 0; i < 50_000; i++) {
      const a = key()
      const b = key()
      assert.strictEqual(Math.sign(compareKeys(a, b)), byBytes(a, b), JSON.stringify([a, b]))
    }
  })

  it("puts a code point above U+FFFF after U+E000..U+FFFF, unlike JavaScript's string order", () => {
    assert.isTrue("\u{1f600}" < "\uffff")
    assert.strictEqual(compareKeys("\u{1f600}", "\uffff"), 1)
    assert.strictEqual(compareKeys("a/\uffff", "a/\u{10000}"), -1)
    assert.strictEqual(compareKeys("abc", "abc"), 0)
    assert.strictEqual(compareKeys("ab", "abc"), -1)
  })
})
