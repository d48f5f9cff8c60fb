// Compiles the example server ahead of time (`npm start` runs the output
// with plain node): type-stripped and bundled by esbuild, dependencies left
// in node_modules. Running it through tsx instead costs about 85 MB of
// memory for the transpiler.
import { build } from "esbuild"
import { buildUppy } from "./build-uppy.mjs"

await build({
  entryPoints: ["examples/server.ts"],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: true,
  outfile: "build/example/server.mjs",
  logLevel: "warning"
})

// The Uppy page's browser bundle (served at /uppy/).
await buildUppy()

// The direct-upload page's script (Uppy with @uppy/aws-s3), for browsers.
await build({
  entryPoints: ["examples/direct-page.ts"],
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  minify: true,
  outfile: "build/example/direct-page.js",
  logLevel: "warning"
})
