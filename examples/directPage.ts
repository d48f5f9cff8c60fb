/**
 * The direct-upload page of the example server: `/direct` (HTML) and
 * `/direct.js` (`examples/direct-page.ts`, bundled: by
 * `scripts/build-example.mjs` beside the built server, or on the first
 * request with esbuild when the server runs from source).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>effect-storage: direct uploads</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  .upload[data-state=error] { color: #b00020; }
  .upload[data-state=done] { color: #1b7f3b; }
</style>
</head>
<body>
<h1>Direct uploads</h1>
<p>The files go straight to the storage with URLs the server signs (Uppy's <code>@uppy/aws-s3</code>, Companion mode).</p>
<p><label>Token <input id="token" type="text" value="tokenA" autocomplete="off"></label></p>
<p><input id="files" type="file" multiple> <button id="upload" type="button">Upload</button></p>
<p id="status"></p>
<ul id="results"></ul>
<script type="module" src="/direct.js"></script>
</body>
</html>
`

/** The bundled page script: the built file beside this module, else bundled now from source. */
const script = Effect.cached(
  Effect.tryPromise(async () => {
    try {
      return await readFile(fileURLToPath(new URL("./direct-page.js", import.meta.url)), "utf8")
    } catch {
      const { build } = await import("esbuild")
      const result = await build({
        entryPoints: [fileURLToPath(new URL("./direct-page.ts", import.meta.url))],
        bundle: true,
        format: "esm",
        platform: "browser",
        target: "es2022",
        write: false,
        logLevel: "warning"
      })
      return result.outputFiles[0]!.text
    }
  })
)

/**
 * The page's routes.
 */
export const routes = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const bundle = yield* script
    yield* router.get("/direct", HttpServerResponse.html(html))
    yield* router.get(
      "/direct.js",
      bundle.pipe(
        Effect.map((text) => HttpServerResponse.text(text, { contentType: "text/javascript; charset=utf-8" })),
        Effect.catchAll((error) =>
          Effect.zipRight(
            Effect.logError("the direct-upload page script could not be loaded or bundled", error),
            HttpServerResponse.text("the page script is missing: run npm run build:example", { status: 500 })
          )
        )
      )
    )
  })
)
