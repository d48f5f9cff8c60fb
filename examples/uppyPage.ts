/**
 * The example server's Uppy page at `/uppy`: Uppy's dashboard uploading to
 * the resumable (tus) endpoint. Its script and styles are bundled ahead of
 * time by scripts/build-uppy.mjs (`npm start` and the tests build them).
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { tusPath } from "../src/http/Tus.js"

/** Where the bundle is: beside the sources (tsx) or beside the built server. */
const bundleDir = (): string | undefined =>
  [process.env.UPPY_BUNDLE_DIR, "../build/uppy/", "../uppy/"].filter((dir) => dir !== undefined && dir !== "")
    .map((dir) => dir!.startsWith("/") ? dir! : fileURLToPath(new URL(dir!, import.meta.url)))
    .find((dir) => existsSync(`${dir}/uppy.js`))

const assets = {
  "uppy.js": "text/javascript; charset=utf-8",
  "uppy-style.css": "text/css; charset=utf-8"
} as const

const page = (ready: boolean) =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>effect-storage: Uppy over tus</title>
<link rel="stylesheet" href="/uppy/uppy-style.css">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  code { font-size: .85rem; word-break: break-all; }
</style>
</head>
<body>
<h1>Upload files with Uppy (tus)</h1>
<p><label>Bearer token <input type="text" id="token" autocomplete="off" placeholder="tokenA"></label>
  &middot; <a href="/">the minimal page</a></p>
${
    ready
      ? `<div id="dashboard"></div>`
      : `<p><strong>The Uppy bundle is not built: run <code>node scripts/build-uppy.mjs</code>.</strong></p>`
  }
<h2>Uploaded</h2>
<ul id="done"></ul>
<script type="application/json" id="uppy-config">${JSON.stringify({ endpoint: tusPath, apiBase: "" })}</script>
${ready ? `<script type="module" src="/uppy/uppy.js"></script>` : ""}
</body>
</html>
`

/** The page and its bundle, on the API's router. */
export const routes = <E, R>(router: HttpRouter.HttpRouter.Service<E, R>) =>
  Effect.gen(function*() {
    yield* router.get("/uppy", Effect.sync(() => HttpServerResponse.html(page(bundleDir() !== undefined))))
    yield* router.get(
      "/uppy/:asset",
      Effect.flatMap(HttpRouter.params, (params) => {
        const asset = params["asset"] ?? ""
        const dir = bundleDir()
        if (!(asset in assets) || dir === undefined) return Effect.succeed(HttpServerResponse.empty({ status: 404 }))
        return Effect.sync(() =>
          HttpServerResponse.uint8Array(readFileSync(`${dir}/${asset}`), {
            contentType: assets[asset as keyof typeof assets],
            headers: { "cache-control": "no-cache" }
          })
        )
      })
    )
  })
