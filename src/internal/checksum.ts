/**
 * The checksums a resumable-upload request may carry (`Upload-Checksum:
 * <algorithm> <base64 digest>`), computed as the body streams through.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { crc32 } from "node:zlib"

/** The algorithms accepted, in the order `Tus-Checksum-Algorithm` lists them. @internal */
export const checksumAlgorithms = ["sha1", "md5", "crc32", "sha256", "sha512"] as const

/** @internal */
export type ChecksumAlgorithm = typeof checksumAlgorithms[number]

/** @internal */
export const isChecksumAlgorithm = (name: string): name is ChecksumAlgorithm =>
  (checksumAlgorithms as ReadonlyArray<string>).includes(name)

/** An incremental digest. @internal */
export interface Digest {
  readonly update: (bytes: Uint8Array) => void
  /** The digest in base64 (crc32: its 4 bytes, big-endian); the same at every call once read. */
  readonly base64: () => string
}

/** @internal */
export const digest = (algorithm: ChecksumAlgorithm): Digest => {
  if (algorithm === "crc32") {
    let value = 0
    return {
      update: (bytes) => {
        value = crc32(bytes, value)
      },
      base64: () => {
        const out = Buffer.alloc(4)
        out.writeUInt32BE(value >>> 0)
        return out.toString("base64")
      }
    }
  }
  const hash = createHash(algorithm)
  // A hash can be finished once; the answer is kept for later calls.
  let result: string | undefined
  return { update: (bytes) => hash.update(bytes), base64: () => (result ??= hash.digest("base64")) }
}
