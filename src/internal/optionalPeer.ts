/**
 * Loading an optional peer dependency (a database client, the S3 SDK) only
 * when the configuration asks for it, so an app installs only what it uses.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { DriverNotInstalled } from "../schema/Errors.js"

/**
 * Imports `packageName` through `load` (a literal `import(...)`, so bundlers
 * see it). A missing package is `DriverNotInstalled`, naming the package and
 * the version this library is tested with; any other failure to load it is
 * a defect.
 *
 * @internal
 */
export const importOptional = <A>(
  packageName: string,
  testedVersion: string,
  purpose: string,
  load: () => Promise<A>
): Effect.Effect<A, DriverNotInstalled> =>
  Effect.tryPromise({ try: load, catch: (cause) => cause }).pipe(
    Effect.catchAll((cause) =>
      isMissing(cause, packageName)
        ? Effect.fail(
          new DriverNotInstalled({
            packageName,
            message:
              `${purpose} needs the package ${packageName}, which is not installed: npm install ${packageName}@${testedVersion}`
          })
        )
        : Effect.die(cause)
    )
  )

const isMissing = (cause: unknown, packageName: string): boolean => {
  if (typeof cause !== "object" || cause === null) return false
  const { code, message } = cause as { readonly code?: unknown; readonly message?: unknown }
  return (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" && message.includes(packageName)
}
