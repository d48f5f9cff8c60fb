/**
 * Who may download what through the proxy.
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { isAnonymous, type Principal } from "../schema/Models.js"
import { FileRegistry } from "../services/FileRegistry.js"

/**
 * Decides whether a principal may read a non-public key. `pub/` keys never
 * reach it: anyone may read those.
 *
 * @since 0.1.0
 * @category tags
 */
export class FileAcl extends Context.Tag("effect-storage/FileAcl")<FileAcl, {
  /** Whether `principal` may read `key`. */
  readonly canRead: (principal: Principal, key: string) => Effect.Effect<boolean, SqlError>
}>() {
  /**
   * The default: the uploader may read their upload, before and after a
   * record adopts it (the file registry remembers who uploaded it), until it
   * is deleted; nobody else may. Apps combine it with their own rules
   * (`FileAcl.anyOf`).
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerUploader: Layer.Layer<FileAcl, never, FileRegistry> = Layer.effect(
    FileAcl,
    Effect.map(FileRegistry, (registry) => ({
      canRead: (principal, key) =>
        isAnonymous(principal)
          ? Effect.succeed(false)
          : Effect.map(registry.get(key), (record) =>
            Option.isSome(record) && record.value.createdBy === principal.id && record.value.status !== "deleted")
    }))
  )

  /**
   * Allows what any of `rules` allows (tried in order).
   *
   * @since 0.1.0
   * @category constructors
   */
  static anyOf(...rules: ReadonlyArray<FileAcl["Type"]>): FileAcl["Type"] {
    return {
      canRead: (principal, key) =>
        Effect.reduce(rules, false, (allowed, rule) => allowed ? Effect.succeed(true) : rule.canRead(principal, key))
    }
  }
}
