/**
 * Who may download what through the proxy.
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { publicPrefix } from "../layers/uploads/Naming.js"
import { isAnonymous, type Principal } from "../schema/Models.js"
import { ClaimStore } from "../services/ClaimStore.js"

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
   * The default: the uploader may read their upload until a record adopts
   * it (then the claim, and with it the owner, is gone); nobody else may.
   * Apps combine it with their own rules (`FileAcl.layerAnyOf`).
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerUploader: Layer.Layer<FileAcl, never, ClaimStore> = Layer.effect(
    FileAcl,
    Effect.map(ClaimStore, (claims) => ({
      canRead: (principal, key) =>
        isAnonymous(principal)
          ? Effect.succeed(false)
          : claims.getByKey(key).pipe(
            Effect.map((claim) => claim.createdBy === principal.id),
            Effect.catchTag("ClaimNotFound", () => Effect.succeed(false))
          )
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

/**
 * Whether a key is public (readable by anyone).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isPublicKey = (key: string): boolean => key.startsWith(publicPrefix)
