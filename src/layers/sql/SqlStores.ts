/**
 * All SQL stores over the `SqlClient` in context, after the migrations.
 *
 * @since 0.1.0
 */
import type * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { ClaimConsumer } from "../../services/ClaimConsumer.js"
import type { ClaimStore } from "../../services/ClaimStore.js"
import { DeleteQueue } from "../../services/DeleteQueue.js"
import { DeleteScheduler } from "../../services/DeleteScheduler.js"
import type { FileRegistry } from "../../services/FileRegistry.js"
import type { UploadPartStore } from "../../services/UploadPartStore.js"
import type { UploadTailStore } from "../../services/UploadTailStore.js"
import * as Adoption from "../Adoption.js"
import * as Migrations from "./Migrations.js"
import * as SqlClaimStore from "./SqlClaimStore.js"
import * as SqlDeleteQueue from "./SqlDeleteQueue.js"
import * as SqlFileRegistry from "./SqlFileRegistry.js"
import * as SqlUploadPartStore from "./SqlUploadPartStore.js"
import * as SqlUploadTailStore from "./SqlUploadTailStore.js"

/**
 * Runs the migrations, and on SQLite turns `foreign_keys` on (part rows
 * cascade with their claim; SQLite leaves it off per connection).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMigrations: Layer.Layer<never, SqlError | Migrator.MigrationError, SqlClient.SqlClient> = Layer
  .effectDiscard(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.onDialectOrElse({
      sqlite: () => Effect.asVoid(sql`PRAGMA foreign_keys = ON`),
      orElse: () => Effect.void
    })
    yield* Migrations.run
  }))

// The narrow public face of the queue shares its implementation.
const layerQueue = Layer.effectContext(Effect.map(SqlDeleteQueue.make, (queue) =>
  Context.make(DeleteQueue, queue).pipe(
    Context.add(DeleteScheduler, DeleteScheduler.of({ schedule: queue.schedule }))
  )))

/**
 * ClaimStore, UploadPartStore, UploadTailStore, DeleteQueue, DeleteScheduler
 * and FileRegistry over the `SqlClient` in context, and the adoption flow
 * (`ClaimConsumer`) over them; runs the migrations when built.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  ClaimStore | ClaimConsumer | UploadPartStore | UploadTailStore | DeleteQueue | DeleteScheduler | FileRegistry,
  SqlError | Migrator.MigrationError,
  SqlClient.SqlClient
> = Adoption.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(
    SqlClaimStore.layer,
    SqlUploadPartStore.layer,
    SqlUploadTailStore.layer,
    layerQueue,
    SqlFileRegistry.layer
  )),
  // Built first: the stores are only handed out over a migrated database.
  Layer.provide(layerMigrations)
)
