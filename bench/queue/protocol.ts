/** Messages between bench/queue.ts and its worker processes. */

export type QueueKind = "ours" | "raw" | "graphile" | "pgboss" | "effectpq"

export interface WorkerSettings {
  /** Rows per lease / jobs per fetch. */
  readonly batchSize: number
  /** Jobs (or object deletes) in flight per process. */
  readonly concurrency: number
  /** The peers' queue name. */
  readonly queueName: string
  /** graphile-worker's completeJobBatchDelay (ms; -1 is off). */
  readonly completeJobBatchDelay?: number
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
