/**
 * The tables of effect-storage, created by Effect's Migrator in its own
 * migrations table (`effect_storage_migrations`).
 *
 * Every statement is idempotent (`IF NOT EXISTS`), so a run interrupted
 * half-way can simply run again. Timestamps are UTC everywhere:
 * `TIMESTAMPTZ` on PostgreSQL, `DATETIME(3)` written by a UTC session on
 * MySQL, ISO 8601 text on SQLite.
 *
 * @since 0.1.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/**
 * The table that records which migrations ran.
 *
 * @since 0.1.0
 * @category constants
 */
export const migrationsTable = "effect_storage_migrations"

/**
 * The tables the stores need.
 *
 * @since 0.1.0
 * @category constants
 */
export const tables = [
  "sys_storage_upload_claim",
  "sys_storage_upload_part",
  "sys_storage_pending_delete",
  "sys_storage_owner_lock",
  "sys_storage_event_outbox",
  "sys_storage_file",
  "sys_storage_upload_tail"
] as const

/**
 * Runs the migrations that have not run yet.
 *
 * Several processes may start at once: the Migrator lets one of them run
 * the migrations and returns early in the others, possibly before the
 * winner has committed, so this also waits until every table exists.
 *
 * @since 0.1.0
 * @category migrations
 */
export const run: Effect.Effect<void, SqlError | Migrator.MigrationError, SqlClient.SqlClient> = Effect.gen(
  function*() {
    const migrate = Migrator.make({})({
      loader: Migrator.fromRecord({
        "1_create_storage_tables": createTables,
        "2_create_event_outbox": createOutbox,
        "3_create_file_registry": createFileRegistry,
        "4_registry_adopted": renameClaimedToAdopted,
        "5_create_upload_tail": createUploadTail
      }),
      table: migrationsTable
    })
    yield* migrate.pipe(
      Effect.retry({ times: 5, schedule: Schedule.spaced("200 millis") })
    )
    yield* tablesExist.pipe(
      Effect.filterOrFail(
        (ok) => ok,
        () => new Migrator.MigrationError({ reason: "failed", message: "tables missing" })
      ),
      Effect.retry({ times: 50, schedule: Schedule.spaced("200 millis") })
    )
  }
)

// ---- internal ----

const tablesExist = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const found = yield* Effect.forEach(tables, (table) =>
    // Unprepared: the SQLite client caches a failed preparation, which would
    // make every retry fail while another process is still migrating.
    sql`SELECT 1 FROM ${sql(table)} WHERE 1 = 0`.unprepared.pipe(
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    ))
  return found.every((ok) => ok)
})

const createTables = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const statements = yield* sql.onDialectOrElse({
    pg: () => Effect.succeed(pgStatements),
    mysql: () => Effect.map(mysqlCollation(sql), mysqlStatements),
    orElse: () => Effect.succeed(sqliteStatements)
  })
  for (const statement of statements) {
    yield* sql.unsafe(statement).unprepared
  }
})

const createOutbox = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const statements = sql.onDialectOrElse({
    pg: () => [
      `CREATE TABLE IF NOT EXISTS sys_storage_event_outbox (
        id VARCHAR(128) PRIMARY KEY,
        topic VARCHAR(64) NOT NULL,
        payload TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
      )`
    ],
    mysql: () => [
      `CREATE TABLE IF NOT EXISTS sys_storage_event_outbox (
        id VARCHAR(128) NOT NULL PRIMARY KEY,
        topic VARCHAR(64) NOT NULL,
        payload TEXT NOT NULL,
        created_at DATETIME(3) NOT NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
    ],
    orElse: () => [
      `CREATE TABLE IF NOT EXISTS sys_storage_event_outbox (
        id TEXT PRIMARY KEY NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL
      )`
    ]
  })
  for (const statement of statements) {
    yield* sql.unsafe(statement).unprepared
  }
})

// The registry's keys sort in byte order on every dialect (PostgreSQL: the
// "C" collation), so a walk over it can be merged with a bucket listing.
const createFileRegistry = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const statements = yield* sql.onDialectOrElse({
    pg: () =>
      Effect.succeed([
        `CREATE TABLE IF NOT EXISTS sys_storage_file (
          id VARCHAR(128) PRIMARY KEY,
          object_key VARCHAR(512) COLLATE "C" NOT NULL,
          created_by VARCHAR(128) NOT NULL,
          original_filename VARCHAR(255) NOT NULL DEFAULT '',
          content_type VARCHAR(255) NOT NULL DEFAULT '',
          size BIGINT NOT NULL DEFAULT 0,
          public BOOLEAN NOT NULL DEFAULT FALSE,
          status VARCHAR(16) NOT NULL DEFAULT 'uploaded',
          started_at TIMESTAMPTZ NOT NULL,
          uploaded_at TIMESTAMPTZ NOT NULL,
          claimed_at TIMESTAMPTZ NULL,
          deleted_at TIMESTAMPTZ NULL,
          delete_reason VARCHAR(32) NULL,
          CONSTRAINT uk_sys_storage_file__object_key UNIQUE (object_key)
        )`,
        `CREATE INDEX IF NOT EXISTS idx_sys_storage_file__status_uploaded_at ON sys_storage_file (status, uploaded_at)`,
        `CREATE INDEX IF NOT EXISTS idx_sys_storage_file__owner_uploaded_at ON sys_storage_file (created_by, uploaded_at)`,
        backfillRegistry
      ]),
    mysql: () =>
      Effect.map(mysqlCollation(sql), (collation) => [
        `CREATE TABLE IF NOT EXISTS sys_storage_file (
          id VARCHAR(128) NOT NULL PRIMARY KEY,
          object_key VARCHAR(512) NOT NULL,
          created_by VARCHAR(128) NOT NULL,
          original_filename VARCHAR(255) NOT NULL DEFAULT '',
          content_type VARCHAR(255) NOT NULL DEFAULT '',
          size BIGINT NOT NULL DEFAULT 0,
          public BOOLEAN NOT NULL DEFAULT FALSE,
          status VARCHAR(16) NOT NULL DEFAULT 'uploaded',
          started_at DATETIME(3) NOT NULL,
          uploaded_at DATETIME(3) NOT NULL,
          claimed_at DATETIME(3) NULL,
          deleted_at DATETIME(3) NULL,
          delete_reason VARCHAR(32) NULL,
          UNIQUE KEY uk_sys_storage_file__object_key (object_key),
          KEY idx_sys_storage_file__status_uploaded_at (status, uploaded_at),
          KEY idx_sys_storage_file__owner_uploaded_at (created_by, uploaded_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${collation}`,
        backfillRegistry
      ]),
    orElse: () =>
      Effect.succeed([
        `CREATE TABLE IF NOT EXISTS sys_storage_file (
          id TEXT PRIMARY KEY NOT NULL,
          object_key TEXT NOT NULL,
          created_by TEXT NOT NULL,
          original_filename TEXT NOT NULL DEFAULT '',
          content_type TEXT NOT NULL DEFAULT '',
          size INTEGER NOT NULL DEFAULT 0,
          public INTEGER NOT NULL DEFAULT 0,
          status TEXT NOT NULL DEFAULT 'uploaded',
          started_at TEXT NOT NULL,
          uploaded_at TEXT NOT NULL,
          claimed_at TEXT NULL,
          deleted_at TEXT NULL,
          delete_reason TEXT NULL,
          CONSTRAINT uk_sys_storage_file__object_key UNIQUE (object_key)
        )`,
        `CREATE INDEX IF NOT EXISTS idx_sys_storage_file__status_uploaded_at ON sys_storage_file (status, uploaded_at)`,
        `CREATE INDEX IF NOT EXISTS idx_sys_storage_file__owner_uploaded_at ON sys_storage_file (created_by, uploaded_at)`,
        backfillRegistry
      ])
  })
  for (const statement of statements) {
    yield* sql.unsafe(statement).unprepared
  }
})

// Adoption is "adopted" in the registry, as everywhere else ("claim" is a
// pending upload). Each step is safe to run again: MySQL commits DDL at
// once, so a run cut short after the rename is redone without it.
const renameClaimedToAdopted = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  yield* sql`UPDATE sys_storage_file SET status = 'adopted' WHERE status = 'claimed'`
  // Asked of the catalog: a failing probe would abort PostgreSQL's migration transaction.
  const found = yield* sql.onDialectOrElse({
    pg: () =>
      sql`SELECT 1 AS found FROM information_schema.columns WHERE table_schema = current_schema()
        AND table_name = 'sys_storage_file' AND column_name = 'adopted_at'`,
    mysql: () =>
      sql`SELECT 1 AS found FROM information_schema.columns WHERE table_schema = DATABASE()
        AND table_name = 'sys_storage_file' AND column_name = 'adopted_at'`,
    orElse: () => sql`SELECT 1 AS found FROM pragma_table_info('sys_storage_file') WHERE name = 'adopted_at'`
  })
  if (found.length === 0) yield* sql`ALTER TABLE sys_storage_file RENAME COLUMN claimed_at TO adopted_at`.unprepared
})

// Resumable (tus) uploads: the acknowledged offset and the tail object
// (bytes short of a whole part), one row per claim, gone with the claim.
const createUploadTail = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const statements = yield* sql.onDialectOrElse({
    pg: () =>
      Effect.succeed([
        `CREATE TABLE IF NOT EXISTS sys_storage_upload_tail (
          claim_id VARCHAR(128) PRIMARY KEY REFERENCES sys_storage_upload_claim (id) ON DELETE CASCADE,
          upload_offset BIGINT NOT NULL DEFAULT 0,
          tail_key VARCHAR(1024) NOT NULL DEFAULT '',
          tail_size BIGINT NOT NULL DEFAULT 0,
          updated_at TIMESTAMPTZ NOT NULL
        )`
      ]),
    mysql: () =>
      Effect.map(mysqlCollation(sql), (collation) => [
        `CREATE TABLE IF NOT EXISTS sys_storage_upload_tail (
          claim_id VARCHAR(128) NOT NULL PRIMARY KEY,
          upload_offset BIGINT NOT NULL DEFAULT 0,
          tail_key VARCHAR(1024) NOT NULL DEFAULT '',
          tail_size BIGINT NOT NULL DEFAULT 0,
          updated_at DATETIME(3) NOT NULL,
          CONSTRAINT fk_sys_storage_upload_tail__claim FOREIGN KEY (claim_id)
            REFERENCES sys_storage_upload_claim (id) ON DELETE CASCADE
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${collation}`
      ]),
    orElse: () =>
      Effect.succeed([
        `CREATE TABLE IF NOT EXISTS sys_storage_upload_tail (
          claim_id TEXT PRIMARY KEY NOT NULL REFERENCES sys_storage_upload_claim (id) ON DELETE CASCADE,
          upload_offset INTEGER NOT NULL DEFAULT 0,
          tail_key TEXT NOT NULL DEFAULT '',
          tail_size INTEGER NOT NULL DEFAULT 0,
          updated_at TEXT NOT NULL
        )`
      ])
  })
  for (const statement of statements) {
    yield* sql.unsafe(statement).unprepared
  }
})

// Completed uploads from before the registry existed (their completion time
// is unknown: the claim's creation stands in).
/** @internal */
export const backfillRegistry = `INSERT INTO sys_storage_file
  (id, object_key, created_by, original_filename, content_type, size, public, status, started_at, uploaded_at)
  SELECT c.id, c.object_key, c.created_by, c.original_filename, c.content_type, c.size, c.public, 'uploaded',
    c.created_at, c.created_at
  FROM sys_storage_upload_claim c
  WHERE c.status = 'uploaded'
    AND NOT EXISTS (SELECT 1 FROM sys_storage_file f WHERE f.object_key = c.object_key)`

const pgStatements = [
  `CREATE TABLE IF NOT EXISTS sys_storage_upload_claim (
    id VARCHAR(128) PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by VARCHAR(128) NOT NULL DEFAULT 'system',
    object_key VARCHAR(512) NOT NULL,
    upload_id VARCHAR(1024) NOT NULL DEFAULT '',
    size BIGINT NOT NULL DEFAULT 0,
    content_type VARCHAR(255) NOT NULL DEFAULT '',
    original_filename VARCHAR(255) NOT NULL DEFAULT '',
    status VARCHAR(16) NOT NULL DEFAULT 'pending',
    public BOOLEAN NOT NULL DEFAULT FALSE,
    part_size BIGINT NOT NULL DEFAULT 0,
    part_count INTEGER NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT uk_sys_storage_upload_claim__object_key UNIQUE (object_key)
  )`,
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_upload_claim__status_expires_at
    ON sys_storage_upload_claim (status, expires_at)`,
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_upload_claim__owner_status
    ON sys_storage_upload_claim (created_by, status)`,
  `CREATE TABLE IF NOT EXISTS sys_storage_upload_part (
    id VARCHAR(128) PRIMARY KEY,
    claim_id VARCHAR(128) NOT NULL REFERENCES sys_storage_upload_claim (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    etag VARCHAR(128) NOT NULL,
    size BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT uk_sys_storage_upload_part__claim_part UNIQUE (claim_id, part_number)
  )`,
  `CREATE TABLE IF NOT EXISTS sys_storage_pending_delete (
    id VARCHAR(128) PRIMARY KEY,
    object_key VARCHAR(512) NOT NULL,
    upload_id VARCHAR(1024) NOT NULL DEFAULT '',
    reason VARCHAR(32) NOT NULL DEFAULT 'replaced',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error VARCHAR(1024) NULL,
    lease_token VARCHAR(64) NULL,
    dead_at TIMESTAMPTZ NULL,
    CONSTRAINT uk_sys_storage_pending_delete__key_reason UNIQUE (object_key, reason)
  )`,
  // Only live rows are ever leased: a partial index keeps the lease query
  // independent of how many dead or future rows the table holds.
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_pending_delete__lease
    ON sys_storage_pending_delete (next_attempt_at) WHERE dead_at IS NULL`,
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_pending_delete__dead
    ON sys_storage_pending_delete (dead_at) WHERE dead_at IS NOT NULL`,
  `CREATE TABLE IF NOT EXISTS sys_storage_owner_lock (
    owner VARCHAR(128) PRIMARY KEY
  )`
]

// Object keys are case- and space-sensitive: a binary collation without
// PAD SPACE, so 'a.png' and 'A.png ' are different keys.
const mysqlCollation = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    for (const candidate of ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"]) {
      const rows =
        yield* sql`SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME = ${candidate}`
      if (rows.length > 0) return candidate
    }
    return "utf8mb4_bin"
  })

const mysqlStatements = (collation: string) => {
  const table = `ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${collation}`
  return [
    `CREATE TABLE IF NOT EXISTS sys_storage_upload_claim (
      id VARCHAR(128) NOT NULL PRIMARY KEY,
      created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      created_by VARCHAR(128) NOT NULL DEFAULT 'system',
      object_key VARCHAR(512) NOT NULL,
      upload_id VARCHAR(1024) NOT NULL DEFAULT '',
      size BIGINT NOT NULL DEFAULT 0,
      content_type VARCHAR(255) NOT NULL DEFAULT '',
      original_filename VARCHAR(255) NOT NULL DEFAULT '',
      status VARCHAR(16) NOT NULL DEFAULT 'pending',
      public BOOLEAN NOT NULL DEFAULT FALSE,
      part_size BIGINT NOT NULL DEFAULT 0,
      part_count INTEGER NOT NULL DEFAULT 0,
      expires_at DATETIME(3) NOT NULL,
      UNIQUE KEY uk_sys_storage_upload_claim__object_key (object_key),
      KEY idx_sys_storage_upload_claim__status_expires_at (status, expires_at),
      KEY idx_sys_storage_upload_claim__owner_status (created_by, status)
    ) ${table}`,
    `CREATE TABLE IF NOT EXISTS sys_storage_upload_part (
      id VARCHAR(128) NOT NULL PRIMARY KEY,
      claim_id VARCHAR(128) NOT NULL,
      part_number INTEGER NOT NULL,
      etag VARCHAR(128) NOT NULL,
      size BIGINT NOT NULL,
      created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      UNIQUE KEY uk_sys_storage_upload_part__claim_part (claim_id, part_number),
      CONSTRAINT fk_sys_storage_upload_part__claim FOREIGN KEY (claim_id)
        REFERENCES sys_storage_upload_claim (id) ON DELETE CASCADE
    ) ${table}`,
    `CREATE TABLE IF NOT EXISTS sys_storage_pending_delete (
      id VARCHAR(128) NOT NULL PRIMARY KEY,
      object_key VARCHAR(512) NOT NULL,
      upload_id VARCHAR(1024) NOT NULL DEFAULT '',
      reason VARCHAR(32) NOT NULL DEFAULT 'replaced',
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      last_error VARCHAR(1024) NULL,
      lease_token VARCHAR(64) NULL,
      dead_at DATETIME(3) NULL,
      UNIQUE KEY uk_sys_storage_pending_delete__key_reason (object_key, reason),
      KEY idx_sys_storage_pending_delete__lease (dead_at, next_attempt_at)
    ) ${table}`,
    `CREATE TABLE IF NOT EXISTS sys_storage_owner_lock (
      owner VARCHAR(128) NOT NULL PRIMARY KEY
    ) ${table}`
  ]
}

const sqliteNow = `(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`

const sqliteStatements = [
  `CREATE TABLE IF NOT EXISTS sys_storage_upload_claim (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL DEFAULT ${sqliteNow},
    created_by TEXT NOT NULL DEFAULT 'system',
    object_key TEXT NOT NULL,
    upload_id TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL DEFAULT '',
    original_filename TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    public INTEGER NOT NULL DEFAULT 0,
    part_size INTEGER NOT NULL DEFAULT 0,
    part_count INTEGER NOT NULL DEFAULT 0,
    expires_at TEXT NOT NULL,
    CONSTRAINT uk_sys_storage_upload_claim__object_key UNIQUE (object_key)
  )`,
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_upload_claim__status_expires_at
    ON sys_storage_upload_claim (status, expires_at)`,
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_upload_claim__owner_status
    ON sys_storage_upload_claim (created_by, status)`,
  `CREATE TABLE IF NOT EXISTS sys_storage_upload_part (
    id TEXT PRIMARY KEY NOT NULL,
    claim_id TEXT NOT NULL REFERENCES sys_storage_upload_claim (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT ${sqliteNow},
    CONSTRAINT uk_sys_storage_upload_part__claim_part UNIQUE (claim_id, part_number)
  )`,
  `CREATE TABLE IF NOT EXISTS sys_storage_pending_delete (
    id TEXT PRIMARY KEY NOT NULL,
    object_key TEXT NOT NULL,
    upload_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT 'replaced',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL DEFAULT ${sqliteNow},
    created_at TEXT NOT NULL DEFAULT ${sqliteNow},
    last_error TEXT NULL,
    lease_token TEXT NULL,
    dead_at TEXT NULL,
    CONSTRAINT uk_sys_storage_pending_delete__key_reason UNIQUE (object_key, reason)
  )`,
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_pending_delete__lease
    ON sys_storage_pending_delete (next_attempt_at) WHERE dead_at IS NULL`,
  `CREATE INDEX IF NOT EXISTS idx_sys_storage_pending_delete__dead
    ON sys_storage_pending_delete (dead_at) WHERE dead_at IS NOT NULL`,
  `CREATE TABLE IF NOT EXISTS sys_storage_owner_lock (
    owner TEXT PRIMARY KEY NOT NULL
  )`
]
