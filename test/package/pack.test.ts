/**
 * The package as an app installs it: `npm pack` (which builds dist/; in a
 * staging copy of the package's files, so the checkout's own dist/ is never
 * rewritten under another suite's feet), the
 * tarball installed into a fresh app in the OS temp folder (outside this
 * repository, so nothing resolves from its node_modules) with the peers an
 * app on SQLite needs and no other driver. There, `test/package/app/app.ts`
 * must type-check (NodeNext, strict) and `app.mjs` must run: upload, adopt,
 * serve and download; the drivers left out must fail with an error naming
 * the package to install; and the app must hold one copy of effect.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import {
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join, relative, resolve } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)
const repoDir = resolve(import.meta.dirname, "..", "..")
const fixtures = join(repoDir, "test", "package", "app")
const manifest = JSON.parse(readFileSync(join(repoDir, "package.json"), "utf8")) as {
  readonly devDependencies: Readonly<Record<string, string>>
}

/** What an app on SQLite and the filesystem installs beside effect-storage, at the versions this repository tests. */
const appDependencies = [
  "effect",
  "@effect/platform",
  "@effect/platform-node",
  "@effect/sql",
  "@effect/experimental",
  "@effect/sql-sqlite-node"
]
const appDevDependencies = ["typescript", "@types/node"]
const pinned = (names: ReadonlyArray<string>) =>
  Object.fromEntries(names.map((name) => [name, manifest.devDependencies[name]!]))

/** Every `package.json` of a package named `name` under a node_modules tree. */
const copiesOf = (root: string, name: string): Array<string> => {
  const found: Array<string> = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry)
      if (!statSync(path).isDirectory()) continue
      if (entry === "node_modules") {
        const direct = join(path, ...name.split("/"))
        try {
          if (statSync(join(direct, "package.json")).isFile()) found.push(direct)
        } catch {
          // not installed here
        }
      }
      if (entry === "node_modules" || dir.includes("node_modules")) walk(path)
    }
  }
  walk(root)
  return found
}

describe("the installed package", () => {
  it("type-checks and runs in a fresh app, with one copy of effect and clear errors for drivers left out", async () => {
    const work = mkdtempSync(join(tmpdir(), "effect-storage-pack-"))
    try {
      const staging = join(work, "staging")
      mkdirSync(staging)
      for (const entry of ["package.json", "tsconfig.json", "tsconfig.build.json", "README.md", "src", "bin", "docs"]) {
        cpSync(join(repoDir, entry), join(staging, entry), { recursive: true })
      }
      symlinkSync(join(repoDir, "node_modules"), join(staging, "node_modules"))
      const packed = await run("npm", ["pack", "--pack-destination", work, "--json"], {
        cwd: staging,
        maxBuffer: 64 * 1024 * 1024
      })
      const tarball = join(work, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename)
      const files = (JSON.parse(packed.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) =>
        f.path
      )
      assert.include(files, "dist/index.js")
      assert.include(files, "dist/index.d.ts")
      assert.include(files, "dist/http/index.js")
      assert.include(files, "dist/cli/main.js")
      assert.isFalse(files.some((f) => f.startsWith("test/") || f.startsWith("node_modules/")), "tests are not shipped")

      const app = join(work, "app")
      mkdirSync(app)
      writeFileSync(
        join(app, "package.json"),
        JSON.stringify(
          {
            name: "pack-test-app",
            private: true,
            type: "module",
            dependencies: { "effect-storage": `file:${tarball}`, ...pinned(appDependencies) },
            devDependencies: pinned(appDevDependencies),
            allowScripts: { "better-sqlite3": true }
          },
          null,
          2
        )
      )
      for (const file of ["app.ts", "app.mjs", "tsconfig.json"]) copyFileSync(join(fixtures, file), join(app, file))
      const env = { ...process.env, NODE_PATH: "", npm_config_audit: "false", npm_config_fund: "false" }
      await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], {
        cwd: app,
        env,
        maxBuffer: 64 * 1024 * 1024
      })

      // Nothing resolves from this repository, and effect is there once, shared by the app and the library.
      assert.isTrue(relative(repoDir, app).startsWith(".."), "the app lives outside the repository")
      assert.deepStrictEqual(copiesOf(app, "effect").map((p) => relative(app, p)), [join("node_modules", "effect")])
      for (const driver of ["@effect/sql-pg", "@effect/sql-mysql2", "@aws-sdk/client-s3", "@effect/opentelemetry"]) {
        assert.deepStrictEqual(copiesOf(app, driver), [], `${driver} is not installed`)
      }
      const resolved = await run(
        "node",
        [
          "--input-type=module",
          "-e",
          "import { createRequire } from 'node:module';" +
          "const lib = createRequire(import.meta.resolve('effect-storage/package.json'));" +
          "console.log(JSON.stringify([import.meta.resolve('effect'), 'file://' + lib.resolve('effect'), import.meta.resolve('effect-storage')]))"
        ],
        { cwd: app, env }
      )
      const [appEffect, libraryEffect, library] = JSON.parse(resolved.stdout) as Array<string>
      assert.isTrue(appEffect!.startsWith(`file://${app}/node_modules/effect/`), appEffect)
      assert.isTrue(libraryEffect!.startsWith(`file://${app}/node_modules/effect/`), libraryEffect)
      assert.strictEqual(library, `file://${app}/node_modules/effect-storage/dist/index.js`)

      // (a) A TypeScript app type-checks against the published declarations.
      const typecheck = await run("npx", ["tsc", "--noEmit", "-p", "."], { cwd: app, env }).catch((e) => e)
      assert.strictEqual(typecheck.code ?? 0, 0, `${typecheck.stdout}${typecheck.stderr}`)

      // (b) The same app in plain JavaScript runs.
      const ran = await run("node", ["app.mjs"], { cwd: app, env, timeout: 60_000 })
      const result = JSON.parse(ran.stdout.trim().split("\n").pop()!) as {
        readonly key: string
        readonly size: number
        readonly status: number
        readonly identical: boolean
        readonly missing: Record<"pg" | "mysql" | "s3" | "otel", { readonly tag: string; readonly message: string }>
      }
      assert.match(result.key, /^priv\/\d{4}\/\d{2}\/\d{2}\/[0-9a-f-]{36}\.png$/)
      assert.strictEqual(result.size, "hello from plain JavaScript".length)
      assert.strictEqual(result.status, 200)
      assert.isTrue(result.identical)
      assert.deepInclude(result.missing.pg, { tag: "DriverNotInstalled" })
      assert.include(result.missing.pg.message, "npm install @effect/sql-pg@")
      assert.deepInclude(result.missing.mysql, { tag: "DriverNotInstalled" })
      assert.include(result.missing.mysql.message, "npm install @effect/sql-mysql2@")
      assert.deepInclude(result.missing.s3, { tag: "DriverNotInstalled" })
      assert.include(result.missing.s3.message, "npm install @aws-sdk/client-s3@")
      assert.deepInclude(result.missing.otel, { tag: "DriverNotInstalled" })
      assert.include(result.missing.otel.message, "npm install @effect/opentelemetry@")
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }, 600_000)
})
