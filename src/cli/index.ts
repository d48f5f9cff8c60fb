/**
 * effect-storage's operator CLI (`effect-storage/cli`), for apps that embed
 * the commands in their own executable. The `effect-storage` executable of
 * this package runs them as they are.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Cli from "./Cli.js"
export { CliIO } from "./Render.js"
