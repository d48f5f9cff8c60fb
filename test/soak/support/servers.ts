/**
 * The servers of this machine, as the normal suites find them (see
 * test/support/globalSetup.ts), and restarting the database servers for the
 * outage suites. Under CI=true a missing server fails the suite; elsewhere
 * it is skipped with a visible warning.
 */
import { execFile } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { Socket } from "node:net"
import { promisify } from "node:util"
import { inject } from "vitest"
import { missingServer } from "../../support/databases.js"
import { sleep } from "./soakServer.js"

const run = promisify(execFile)

export const servers = () => inject("servers")

/** A failing (CI) or visibly skipped (elsewhere) test naming what is missing. */
export const missing = missingServer

export const portAnswers = (port: number, host = "127.0.0.1") =>
  new Promise<boolean>((resolve) => {
    const socket = new Socket()
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once("error", () => done(false))
    socket.connect(port, host, () => done(true))
  })

export const waitForPort = async (port: number, up: boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if ((await portAnswers(port)) === up) return
    await sleep(100)
  }
  throw new Error(`port ${port} did not go ${up ? "up" : "down"} within ${timeoutMs} ms`)
}

// ---- PostgreSQL (the Debian cluster) ----

const pgCluster = (): { version: string; name: string } | undefined => {
  if (!existsSync("/etc/postgresql") || !existsSync("/usr/bin/pg_ctlcluster")) return undefined
  const versions = readdirSync("/etc/postgresql")
  if (versions.length === 0) return undefined
  return { version: versions[0]!, name: "main" }
}

/** Whether this machine's PostgreSQL can be stopped and started by the suite. */
export const canRestartPostgres = () => pgCluster() !== undefined

export const stopPostgres = async () => {
  const cluster = pgCluster()!
  await run("pg_ctlcluster", ["--skip-systemctl-redirect", cluster.version, cluster.name, "stop", "-m", "fast"])
  await waitForPort(5432, false)
}

export const startPostgres = async () => {
  const cluster = pgCluster()!
  if (!(await portAnswers(5432))) {
    await run("pg_ctlcluster", ["--skip-systemctl-redirect", cluster.version, cluster.name, "start"]).catch((e) => {
      if (!String(e).includes("already running")) throw e
    })
  }
  await waitForPort(5432, true)
}

// ---- MariaDB ----

export const canRestartMariadb = () => existsSync("/usr/sbin/mariadbd") && existsSync("/usr/bin/mariadb-admin")

export const stopMariadb = async () => {
  await run("mariadb-admin", ["-uroot", "-h127.0.0.1", "shutdown"])
  await waitForPort(3306, false)
}

export const startMariadb = async () => {
  if (!(await portAnswers(3306))) {
    const daemon = ["--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"]
    await run("start-stop-daemon", [...daemon, "--", "--user=mysql"]).catch(() => run("start-stop-daemon", daemon))
  }
  await waitForPort(3306, true)
}
