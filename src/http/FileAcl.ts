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
import { AccessDenied, Unauthenticated } from "../schema/Errors.js"
import { isAnonymous, type Principal } from "../schema/Models.js"
import { isPublicKey } from "../schema/Naming.js"
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

/**
 * Who may read `key`: anyone for a `pub/` key, else whom the `FileAcl`
 * allows; `Unauthenticated` for an anonymous caller it does not allow,
 * `AccessDenied` for anyone else it does not. The download and the links
 * it hands out both ask this.
 *
 * @since 0.1.0
 * @category access
 */
export const requireRead = (
  principal: Principal,
  key: string
): Effect.Effect<void, Unauthenticated | AccessDenied | SqlError, FileAcl> =>
  isPublicKey(key) ? Effect.void : Effect.flatMap(FileAcl, (acl) => acl.canRead(principal, key)).pipe(
    Effect.flatMap((allowed) =>
      allowed ? Effect.void : Effect.fail(isAnonymous(principal) ? new Unauthenticated() : new AccessDenied())
    )
  )
