/**
 * Server secrets kept in a file beside the data, made at random on first
 * start (download links, direct-upload URLs).
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as fsp from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { backendKind, filesystemRoot } from "../layers/StorageConfig.js"
import { fsCall } from "./files.js"

/**
 * A signing secret from the environment, in this order: the variable
 * `name` (at least `minimumBytes` characters; the same on every server);
 * the file named by `${name}_FILE`, or with the filesystem backend
 * `fileName` beside `STORAGE_ROOT`, read or made at random on first start;
 * otherwise a random secret in memory, after `warning`.
 */
export const serverSecret = (options: {
  readonly name: string
  readonly fileName: string
  readonly operation: string
  readonly minimumBytes: number
  readonly warning: string
}) =>
  Effect.gen(function*() {
    const given = yield* Config.option(
      Config.redacted(options.name).pipe(
        Config.validate({
          message: `Expected ${options.name} to have at least ${options.minimumBytes} characters`,
          validation: (value) => Buffer.byteLength(Redacted.value(value), "utf8") >= options.minimumBytes
        })
      )
    )
    if (Option.isSome(given)) return given.value as Redacted.Redacted<string> | Uint8Array
    const file = yield* secretFile(`${options.name}_FILE`, options.fileName)
    if (Option.isSome(file)) return yield* readOrCreateSecret(options.operation, file.value, options.minimumBytes)
    yield* Effect.logWarning(options.warning)
    return randomBytes(options.minimumBytes)
  })

/** Where a secret is kept when none is given: a file named by config, or beside the filesystem backend's root. */
const secretFile = (variable: string, fileName: string) =>
  Effect.gen(function*() {
    const named = yield* Config.option(Config.string(variable))
    if (Option.isSome(named) && named.value.trim() !== "") return Option.some(resolve(named.value))
    if ((yield* backendKind) !== "filesystem") return Option.none<string>()
    return Option.some(join(dirname(resolve(yield* filesystemRoot)), fileName))
  })

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
