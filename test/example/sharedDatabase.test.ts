/**
 * Several example servers starting at the same moment on one fresh
 * PostgreSQL database (a rollout): the example's own migrations survive the
 * race for their migrations table (the Migrator's CREATE TABLE fails with
 * "already exists" in all but one), and every one of them finds the tables.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, inject, it } from "vitest"
import { migrations } from "../../examples/documents.js"
import * as Database from "../../src/layers/sql/Database.js"
import { createDatabase, missingServer } from "../support/databases.js"

const title = "the example's migrations run by several servers at once on one PostgreSQL database"
const admin = inject("servers").pg

if (admin === undefined) missingServer(title, "PostgreSQL")
else {
  describe(title, () => {
    const cleanups: Array<() => Promise<void>> = []
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup()
    })

    it("all succeed and the tables exist", async () => {
      const database = await createDatabase("pg", admin, "es_example")
      cleanups.push(database.drop)
      // Each run on its own connection pool, as separate processes would.
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, () =>
          Effect.runPromise(
            migrations.pipe(
              Effect.zipRight(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT COUNT(*) AS n FROM documents`)),
              Effect.as("ok"),
              Effect.catchAllCause((cause) => Effect.succeed(String(cause).slice(0, 300))),
              Effect.provide(Database.layerFromUrl(database.url)),
              Effect.scoped
            )
          ))
      )
      expect(outcomes).toEqual(outcomes.map(() => "ok"))
    }, 60_000)
  })
}
