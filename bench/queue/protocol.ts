/** Messages between bench/queue.ts and its worker processes. */

export type QueueKind =
  | "ours"
  | "raw"
  | "graphile"
  | "pgboss"
  | "effectpq"
  // The same queues whose jobs delete a real object on S3 (Ceph RGW):
  // effect-storage's worker on its S3 backend; the peers' task sends one
  // DeleteObjectCommand per job, as their users write it.
  | "ours-s3"
  | "graphile-s3"
  | "pgboss-s3"

/** Where the `-s3` kinds delete their objects. */
export interface S3Target {
  readonly endpoint: string
  readonly region: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly bucket: string
}

export interface WorkerSettings {
  /** Rows per lease / jobs per fetch. */
  readonly batchSize: number
  /** Jobs (or object deletes) in flight per process. */
  readonly concurrency: number
  /** The peers' queue name. */
  readonly queueName: string
  /** graphile-worker's completeJobBatchDelay (ms; -1 is off). */
  readonly completeJobBatchDelay?: number
  /** The bucket of the `-s3` kinds. */
  readonly s3?: S3Target | undefined
}

export type ParentMessage = { readonly type: "go" } | { readonly type: "stop" }

export type ChildMessage =
  | { readonly type: "ready" }
  | { readonly type: "progress"; readonly count: number }
  | {
    readonly type: "done"
    readonly t0: number
    readonly tLast: number
    readonly count: number
    /** CPU time (user + system) the process spent draining. */
    readonly cpuMs: number
  }
