/**
 * Server secrets kept in a file beside the data, made at random on first
 * start (download links, direct-upload URLs).
 *
 * @internal
 */
import { randomBytes } from "node:crypto"
import * as fsp from "node:fs/promises"
import { dirname } from "node:path"
import { fsCall } from "./files.js"

/**
 * The secret in `path`, made at random when the file is missing. Written
 * whole to a file of its own, then linked into place: servers starting
 * together on a shared folder all end up with the one that won.
 */
export const readOrCreateSecret = (operation: string, path: string, minimumSecretBytes: number) =>
  fsCall(operation, async () => {
    const read = async () => {
      try {
        return Buffer.from((await fsp.readFile(path, "utf8")).trim(), "hex")
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
        throw error
      }
    }
    const existing = await read()
    if (existing !== undefined && existing.byteLength >= minimumSecretBytes) return existing
    if (existing !== undefined) throw new Error(`${path} holds no secret of ${minimumSecretBytes} hex-encoded bytes`)
    await fsp.mkdir(dirname(path), { recursive: true })
    const staging = `${path}.${randomBytes(8).toString("hex")}.tmp`
    await fsp.writeFile(staging, `${randomBytes(minimumSecretBytes).toString("hex")}\n`, { flag: "wx", mode: 0o600 })
    try {
      await fsp.link(staging, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    } finally {
      await fsp.rm(staging, { force: true })
    }
    const created = await read()
    if (created === undefined || created.byteLength < minimumSecretBytes) throw new Error(`${path} could not be read`)
    return created
  })
