/**
 * Reads what the example server left behind, from outside it: the rows of
 * its database (documents, claims, the delete queue) and the objects of its
 * backend (a filesystem root or an S3 bucket), and checks the invariants
 * that must hold at any instant, even right after a kill -9:
 *
 * - every object is referenced by a document, a claim or a queued delete;
 * - every file a document references exists, and is not queued for deletion;
 * - every uploaded claim's object exists;
 * - no delete is dead-lettered.
 */
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client
} from "@aws-sdk/client-s3"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { type Dirent, existsSync, readdirSync } from "node:fs"
import { join, relative } from "node:path"
import * as Database from "../../../src/layers/sql/Database.js"
import { createDatabase } from "../../support/databases.js"

// ---- databases ----

export interface FreshDatabase {
  readonly url: string
  readonly drop: () => Promise<void>
}

/** An empty database on a server (PostgreSQL or MariaDB), dropped by `drop`. */
export const freshDatabase = (dialect: "pg" | "mysql", admin: string): Promise<FreshDatabase> =>
  createDatabase(dialect, admin, "es_soak")

// ---- backends ----

export interface S3Target {
  readonly endpoint: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly bucket: string
}

export const s3Client = (target: Omit<S3Target, "bucket">) =>
  new S3Client({
    endpoint: target.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })

export interface Backend {
  /** Every object key. */
  readonly objects: () => Promise<Set<string>>
  /** Open multipart sessions. */
  readonly sessions: () => Promise<number>
  /** Leftover temporary files (filesystem only). */
  readonly tempFiles: () => Promise<number>
  readonly describe: string
}

const internalFolders = new Set([".tmp", ".meta", ".multipart"])

/** The objects under a filesystem backend's root (its internal folders excluded). */
export const filesystemBackend = (root: string): Backend => ({
  describe: `filesystem ${root}`,
  objects: async () => {
    const found = new Set<string>()
    if (!existsSync(root)) return found
    const walk = (dir: string) => {
      let entries: Array<Dirent>
      try {
        entries = readdirSync(dir, { withFileTypes: true })
      } catch {
        return // removed meanwhile (empty parents are pruned)
      }
      for (const entry of entries) {
        const path = join(dir, entry.name)
        if (dir === root && internalFolders.has(entry.name)) continue
        if (entry.isDirectory()) walk(path)
        else found.add(relative(root, path).split("\\").join("/"))
      }
    }
    walk(root)
    return found
  },
  sessions: async () => {
    const dir = join(root, ".multipart")
    return existsSync(dir) ? readdirSync(dir).length : 0
  },
  tempFiles: async () => {
    const dir = join(root, ".tmp")
    return existsSync(dir) ? readdirSync(dir).length : 0
  }
})

/** The objects of an S3 bucket, read straight from the server (no proxy). */
export const s3Backend = (
  target: S3Target
): Backend & { readonly client: S3Client; readonly destroy: () => Promise<void> } => {
  const client = s3Client(target)
  const objects = async () => {
    const found = new Set<string>()
    let token: string | undefined
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: target.bucket, ContinuationToken: token })
      )
      for (const item of page.Contents ?? []) if (item.Key !== undefined) found.add(item.Key)
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (token !== undefined)
    return found
  }
  const listSessions = async () => {
    const all: Array<{ key: string; uploadId: string }> = []
    let keyMarker: string | undefined
    let idMarker: string | undefined
    do {
      const page = await client.send(
        new ListMultipartUploadsCommand({ Bucket: target.bucket, KeyMarker: keyMarker, UploadIdMarker: idMarker })
      )
      for (const u of page.Uploads ?? []) all.push({ key: u.Key!, uploadId: u.UploadId! })
      if (page.IsTruncated === true) {
        keyMarker = page.NextKeyMarker
        idMarker = page.NextUploadIdMarker
      } else keyMarker = undefined
    } while (keyMarker !== undefined)
    return all
  }
  return {
    client,
    describe: `s3 ${target.endpoint}/${target.bucket}`,
    objects,
    sessions: async () => (await listSessions()).length,
    tempFiles: async () => 0,
    destroy: async () => {
      try {
        for (const s of await listSessions()) {
          await client.send(
            new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: s.key, UploadId: s.uploadId })
          )
        }
        const keys = [...await objects()]
        for (let i = 0; i < keys.length; i += 500) {
          await client.send(
            new DeleteObjectsCommand({
              Bucket: target.bucket,
              Delete: { Objects: keys.slice(i, i + 500).map((Key) => ({ Key })) }
            })
          )
        }
        await client.send(new DeleteBucketCommand({ Bucket: target.bucket }))
      } catch (error) {
        console.warn(`[soak] could not remove bucket ${target.bucket}: ${error}`)
      } finally {
        client.destroy()
      }
    }
  }
}

// ---- snapshots ----

export interface ClaimRow {
  readonly id: string
  readonly key: string
  readonly status: "pending" | "uploaded"
  readonly createdBy: string
  readonly uploadId: string
}

export interface QueueRow {
  readonly key: string
  readonly reason: string
  readonly attempts: number
  readonly uploadId: string
  readonly dead: boolean
  readonly lastError: string | null
}

export interface Snapshot {
  /** document id -> owner and file keys */
  readonly docs: Map<string, { readonly owner: string; readonly files: ReadonlyArray<string> }>
  /** file key -> the documents referencing it */
  readonly docRefs: Map<string, Array<string>>
  readonly claims: Map<string, ClaimRow>
  readonly queue: Map<string, Array<QueueRow>>
  readonly objects: Set<string>
  readonly sessions: number
  readonly tempFiles: number
}

/** Reads the server's database and backend. */
export class Inspector {
  private readonly runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown>

  constructor(readonly databaseUrl: string, readonly backend: Backend) {
    this.runtime = ManagedRuntime.make(Database.layerFromUrl(databaseUrl))
  }

  sql<A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>): Promise<A> {
    return this.runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, f))
  }

  async rows(): Promise<Omit<Snapshot, "objects" | "sessions" | "tempFiles">> {
    return this.sql((sql) =>
      Effect.gen(function*() {
        const docRows = yield* sql<{ id: string; owner: string }>`SELECT id, owner FROM documents`
        const fileRows = yield* sql<{ document_id: string; file_key: string; position: number }>`
          SELECT document_id, file_key, position FROM document_files ORDER BY document_id, position`
        const claimRows = yield* sql<{
          id: string
          object_key: string
          status: "pending" | "uploaded"
          created_by: string
          upload_id: string
        }>`SELECT id, object_key, status, created_by, upload_id FROM sys_storage_upload_claim`
        const queueRows = yield* sql<{
          object_key: string
          reason: string
          attempts: number | string
          upload_id: string
          dead_at: unknown
          last_error: string | null
        }>`SELECT object_key, reason, attempts, upload_id, dead_at, last_error FROM sys_storage_pending_delete`
        const docs = new Map<string, { owner: string; files: Array<string> }>()
        for (const row of docRows) docs.set(row.id, { owner: row.owner, files: [] })
        const docRefs = new Map<string, Array<string>>()
        for (const row of fileRows) {
          docs.get(row.document_id)?.files.push(row.file_key)
          const refs = docRefs.get(row.file_key) ?? []
          refs.push(row.document_id)
          docRefs.set(row.file_key, refs)
        }
        const claims = new Map<string, ClaimRow>()
        for (const row of claimRows) {
          claims.set(row.object_key, {
            id: row.id,
            key: row.object_key,
            status: row.status,
            createdBy: row.created_by,
            uploadId: row.upload_id
          })
        }
        const queue = new Map<string, Array<QueueRow>>()
        for (const row of queueRows) {
          const list = queue.get(row.object_key) ?? []
          list.push({
            key: row.object_key,
            reason: row.reason,
            attempts: Number(row.attempts),
            uploadId: row.upload_id,
            dead: row.dead_at !== null && row.dead_at !== undefined,
            lastError: row.last_error
          })
          queue.set(row.object_key, list)
        }
        return { docs, docRefs, claims, queue }
      })
    )
  }

  async snapshot(): Promise<Snapshot> {
    const rows = await this.rows()
    return {
      ...rows,
      objects: await this.backend.objects(),
      sessions: await this.backend.sessions(),
      tempFiles: await this.backend.tempFiles()
    }
  }

  /** Live (not dead) queue rows, and dead letters. */
  async queueDepth(): Promise<{ live: number; dead: number; pendingClaims: number }> {
    return this.sql((sql) =>
      Effect.gen(function*() {
        const live = yield* sql<{ n: number | string }>`
          SELECT COUNT(*) AS n FROM sys_storage_pending_delete WHERE dead_at IS NULL`
        const dead = yield* sql<{ n: number | string }>`
          SELECT COUNT(*) AS n FROM sys_storage_pending_delete WHERE dead_at IS NOT NULL`
        const pending = yield* sql<{ n: number | string }>`
          SELECT COUNT(*) AS n FROM sys_storage_upload_claim WHERE status = 'pending'`
        return { live: Number(live[0]!.n), dead: Number(dead[0]!.n), pendingClaims: Number(pending[0]!.n) }
      })
    )
  }

  dispose(): Promise<void> {
    return this.runtime.dispose()
  }
}

/**
 * The invariants that hold at any instant (no request half done can break
 * them): answers the problems found, none when all hold.
 */
export const checkInvariants = (s: Snapshot): Array<string> => {
  const problems: Array<string> = []
  for (const key of s.objects) {
    if (!s.docRefs.has(key) && !s.claims.has(key) && !s.queue.has(key)) {
      problems.push(`leaked object ${key}: no document, claim or queued delete references it`)
    }
  }
  for (const [key, docs] of s.docRefs) {
    if (!s.objects.has(key)) problems.push(`lost object ${key}: referenced by document(s) ${docs.join(", ")}`)
    if (s.queue.has(key)) {
      problems.push(
        `object ${key} of document(s) ${docs.join(", ")} is queued for deletion (${
          s.queue.get(key)!.map((q) => q.reason).join(", ")
        })`
      )
    }
    if (s.claims.has(key)) problems.push(`object ${key} is both adopted and still claimable`)
  }
  for (const [key, claim] of s.claims) {
    if (claim.status === "uploaded" && !s.objects.has(key)) problems.push(`lost object ${key}: its claim is uploaded`)
    if (claim.status === "uploaded" && s.queue.has(key)) problems.push(`uploaded claim ${key} is queued for deletion`)
  }
  for (const [key, rows] of s.queue) {
    for (const row of rows) if (row.dead) problems.push(`dead letter for ${key} (${row.reason}, ${row.lastError})`)
  }
  return problems
}
