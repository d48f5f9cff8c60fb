// Bundles the example's Uppy page (examples/uppy/: Uppy's core, dashboard
// and tus plugin, and their styles) for the browser, into build/uppy/. The
// example server serves it at /uppy/; nothing is loaded from a CDN.
import { build } from "esbuild"

export const buildUppy = (outdir = "build/uppy") =>
  build({
    entryPoints: { uppy: "examples/uppy/main.ts", "uppy-style": "examples/uppy/style.css" },
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2020",
    minify: true,
    outdir,
    logLevel: "warning"
  })

if (import.meta.url === `file://${process.argv[1]}`) await buildUppy()
