/**
 * UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids
 * sort by creation time. The time comes from Effect's `Clock`, so ids made
 * under a `TestClock` follow virtual time.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { randomFillSync } from "node:crypto"

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/** @internal */
export const uuidv7FromMillis = (millis: number): string => {
  const bytes = new Uint8Array(16)
  randomFillSync(bytes, 6)
  let ms = Math.max(0, Math.floor(millis))
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256
    ms = Math.floor(ms / 256)
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x70 // version 7
  bytes[8] = (bytes[8]! & 0x3f) | 0x80 // variant 10
  let out = ""
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += "-"
    out += hex[bytes[i]!]
  }
  return out
}

/** @internal */
export const uuidv7: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, uuidv7FromMillis)
