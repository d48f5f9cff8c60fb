/**
 * A small `documents` API that shows a business transaction adopting
 * uploads and scheduling the deletion of dropped ones:
 *
 * - POST /documents `{ title, files: [key] }` -> 201 `{ id, title, files }`
 * - GET /documents/{id}
 * - PUT /documents/{id} `{ title, files }` (adopts new keys, schedules the
 *   deletion of dropped ones, reason `replaced`)
 * - DELETE /documents/{id} -> 204 (schedules deletion, reason `deleted`)
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import {
  Authentication,
  CompanionApiGroup,
  CurrentPrincipal,
  DirectApiGroup,
  FileAcl,
  StorageApiGroup,
  StorageHandlers
} from "../src/http/index.js"
import { SessionApiGroup } from "../src/http/Sessions.js"
import {
  AccessDenied,
  ClaimNotFound,
  DirectUploads,
  FileRefs,
  Files,
  isAnonymous,
  ServiceUnavailable,
  StorageMisconfigured,
  Unauthenticated
} from "../src/index.js"

/** A document; `files` are object keys of uploads it owns. */
export class Document extends Schema.Class<Document>("Document")({
  id: Schema.String,
  title: Schema.String,
  files: Schema.Array(Schema.String).pipe(FileRefs.uploadedFile())
}) {}

const DocumentInput = Schema.Struct({
  title: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  files: Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(512))).pipe(Schema.maxItems(100))
})

/** An unknown document, or someone else's (they look the same). */
export class DocumentNotFound extends Schema.TaggedError<DocumentNotFound>()("DocumentNotFound", {
  message: Schema.String
}) {}

const id = HttpApiSchema.param("id", Schema.String)

/** The documents API. */
export class DocumentsGroup extends HttpApiGroup.make("documents")
  .add(HttpApiEndpoint.post("create", "/documents").setPayload(DocumentInput).addSuccess(Document, { status: 201 }))
  .add(HttpApiEndpoint.get("get")`/documents/${id}`.addSuccess(Document))
  .add(HttpApiEndpoint.put("update")`/documents/${id}`.setPayload(DocumentInput).addSuccess(Document))
  .add(HttpApiEndpoint.del("remove")`/documents/${id}`.addSuccess(HttpApiSchema.NoContent))
  .addError(DocumentNotFound, { status: 404 })
  .addError(ClaimNotFound, { status: 422 })
  .addError(AccessDenied, { status: 403 })
  .addError(Unauthenticated, { status: 401 })
  .addError(ServiceUnavailable, { status: 503 })
  .addError(StorageMisconfigured, { status: 500 })
  .middleware(Authentication)
{}

/** The example's own tables, in its own migrations table. */
export const migrations = Effect.gen(function*() {
  const migrate = Migrator.make({})({
    table: "example_migrations",
    loader: Migrator.fromRecord({
      "1_documents": Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE IF NOT EXISTS documents (
          id VARCHAR(64) PRIMARY KEY,
          owner VARCHAR(128) NOT NULL,
          title VARCHAR(200) NOT NULL
        )`
        yield* sql`CREATE TABLE IF NOT EXISTS document_files (
          document_id VARCHAR(64) NOT NULL,
          file_key VARCHAR(512) NOT NULL,
          position INTEGER NOT NULL,
          PRIMARY KEY (document_id, position)
        )`
        yield* sql`CREATE INDEX document_files_key ON document_files (file_key)`
      })
    })
  })
  // Several servers may start at once on one database: on PostgreSQL the
  // Migrator's first CREATE TABLE of its own table fails in all but one of
  // them ("already exists"), and elsewhere a loser may return before the
  // winner committed. So: retry, then wait until the tables exist.
  yield* migrate.pipe(Effect.retry({ times: 5, schedule: Schedule.spaced("200 millis") }))
  const sql = yield* SqlClient.SqlClient
  yield* sql`SELECT 1 FROM documents, document_files WHERE 1 = 0`.unprepared.pipe(
    Effect.retry({ times: 50, schedule: Schedule.spaced("200 millis") })
  )
})

/** The documents' store: rows in `documents` and `document_files`. */
const makeRepository = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const find = (owner: string, documentId: string) =>
    Effect.gen(function*() {
      const rows = yield* sql<{ id: string; title: string }>`
        SELECT id, title FROM documents WHERE id = ${documentId} AND owner = ${owner}`
      if (rows.length === 0) return yield* new DocumentNotFound({ message: "no such document" })
      const files = yield* sql<{ file_key: string }>`
        SELECT file_key FROM document_files WHERE document_id = ${documentId} ORDER BY position`
      return new Document({ id: rows[0]!.id, title: rows[0]!.title, files: files.map((f) => f.file_key) })
    })
  const writeFiles = (document: Document) =>
    Effect.gen(function*() {
      yield* sql`DELETE FROM document_files WHERE document_id = ${document.id}`
      if (document.files.length > 0) {
        yield* sql`INSERT INTO document_files ${
          sql.insert(document.files.map((file_key, position) => ({ document_id: document.id, file_key, position })))
        }`
      }
    })
  return {
    find,
    insert: (owner: string, document: Document) =>
      Effect.zipRight(
        sql`INSERT INTO documents (id, owner, title) VALUES (${document.id}, ${owner}, ${document.title})`,
        writeFiles(document)
      ),
    update: (document: Document) =>
      Effect.zipRight(
        sql`UPDATE documents SET title = ${document.title} WHERE id = ${document.id}`,
        writeFiles(document)
      ),
    remove: (document: Document) =>
      Effect.zipRight(
        sql`DELETE FROM document_files WHERE document_id = ${document.id}`,
        sql`DELETE FROM documents WHERE id = ${document.id}`
      ),
    /** Whether one of the owner's documents references the key. */
    ownsFile: (owner: string, key: string) =>
      Effect.map(
        sql`SELECT 1 AS found FROM document_files f JOIN documents d ON d.id = f.document_id
          WHERE d.owner = ${owner} AND f.file_key = ${key}`,
        (rows) => rows.length > 0
      )
  }
})

/** The example's API: the storage routes, direct uploads (with Uppy's Companion routes and sessions) and the documents. */
export class AppApi extends HttpApi.make("app")
  .add(StorageApiGroup)
  .add(DocumentsGroup)
  .add(DirectApiGroup)
  .add(CompanionApiGroup)
  .add(SessionApiGroup)
{}

/** The documents handlers. */
export const handlers = HttpApiBuilder.group(AppApi, "documents", (h) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const repo = yield* makeRepository
    const hooks = yield* Files.forSchema(Document)
    const direct = yield* DirectUploads
    // One business transaction per write: the adoption, the queued deletes
    // and the document rows commit or roll back together.
    const inTransaction = <X, E extends { readonly _tag: string }, R>(effect: Effect.Effect<X, E, R>) =>
      StorageHandlers.unavailableOnOutage(sql.withTransaction(effect))
    return h
      .handle("create", ({ payload }) =>
        inTransaction(Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          // Direct form uploads have no complete call: checked against the storage first.
          yield* direct.settle(principal, payload.files)
          const document = new Document({ id: randomUUID(), ...payload })
          yield* hooks.onCreate(principal, document)
          yield* repo.insert(principal.id, document)
          return document
        })))
      .handle("get", ({ path }) =>
        StorageHandlers.unavailableOnOutage(Effect.flatMap(CurrentPrincipal, (principal) =>
          repo.find(principal.id, path.id))))
      .handle("update", ({ path, payload }) =>
        inTransaction(Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* direct.settle(principal, payload.files)
          const before = yield* repo.find(principal.id, path.id)
          const after = new Document({ id: before.id, ...payload })
          yield* hooks.onUpdate(principal, before, after)
          yield* repo.update(after)
          return after
        })))
      .handle("remove", ({ path }) =>
        inTransaction(Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const document = yield* repo.find(principal.id, path.id)
          yield* repo.remove(document)
          yield* hooks.onDelete(document)
        })))
  }))

/**
 * Who may download a private file in the example: its uploader while the
 * upload is not adopted, then the owner of a document that references it.
 */
export const aclLayer = Layer.effect(
  FileAcl,
  Effect.gen(function*() {
    const uploader = yield* FileAcl.pipe(Effect.provide(FileAcl.layerUploader))
    const repo = yield* makeRepository
    return FileAcl.anyOf(uploader, {
      canRead: (principal, key) => isAnonymous(principal) ? Effect.succeed(false) : repo.ownsFile(principal.id, key)
    })
  })
)
