/**
 * Cheap checks that a server answers, used by the global setup.
 */
import mysql from "mysql2/promise"
import pg from "pg"

export interface S3Server {
  readonly endpoint: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

export interface Servers {
  readonly ci: boolean
  readonly pg: string | undefined
  readonly mysql: string | undefined
  readonly s3: {
    readonly ceph: S3Server | undefined
    readonly swift: S3Server | undefined
  }
}

export const probePg = async (url: string): Promise<boolean> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  try {
    await client.connect()
    await client.query("SELECT 1")
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

export const probeMysql = async (url: string): Promise<boolean> => {
  try {
    const conn = await mysql.createConnection({ uri: url, connectTimeout: 2000 })
    await conn.query("SELECT 1")
    await conn.end()
    return true
  } catch {
    return false
  }
}

export const probeS3 = async (endpoint: string): Promise<boolean> => {
  try {
    const res = await fetch(endpoint, { signal: AbortSignal.timeout(2000) })
    await res.arrayBuffer()
    return res.status < 500
  } catch {
    return false
  }
}
