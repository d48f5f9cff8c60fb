/**
 * A small HTTP client for the soak suites: every request is bounded by a
 * timeout, and its outcome is a response, a network failure (the server was
 * killed, the connection reset) or a timeout (a hang: always a finding).
 */
import { createHash } from "node:crypto"
import * as http from "node:http"

export type Outcome =
  | {
    readonly kind: "response"
    readonly status: number
    readonly json: any
    readonly text: string
    readonly headers: Headers
    readonly body: Uint8Array
  }
  | { readonly kind: "network"; readonly error: string }
  | { readonly kind: "timeout" }

export interface RequestOptions {
  readonly token?: string | undefined
  readonly json?: unknown
  readonly body?: Uint8Array | undefined
  readonly headers?: Record<string, string>
  readonly timeoutMs?: number
}

export const request = async (
  base: string,
  method: string,
  path: string,
  options: RequestOptions = {}
): Promise<Outcome> => {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  let body: BodyInit | null = null
  if (options.json !== undefined) {
    headers["content-type"] = "application/json"
    body = JSON.stringify(options.json)
  } else if (options.body !== undefined) {
    headers["content-type"] ??= "application/octet-stream"
    body = options.body as unknown as BodyInit
  }
  const timeoutMs = options.timeoutMs ?? 15_000
  const controller = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, timeoutMs)
  try {
    const res = await fetch(base + path, { method, headers, body, signal: controller.signal })
    const bytes = new Uint8Array(await res.arrayBuffer())
    const text = new TextDecoder().decode(bytes)
    let json: any = undefined
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    return { kind: "response", status: res.status, json, text, headers: res.headers, body: bytes }
  } catch (error) {
    if (timedOut) return { kind: "timeout" }
    return { kind: "network", error: String((error as { cause?: unknown }).cause ?? error) }
  } finally {
    clearTimeout(timer)
  }
}

export const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

/** Counts outcomes by method, route and status, for the reports. */
export class Tally {
  readonly counts = new Map<string, number>()
  total = 0

  add(label: string, outcome: Outcome): void {
    const status = outcome.kind === "response" ? String(outcome.status) : outcome.kind
    this.bump(`${label} ${status}`)
  }

  bump(key: string, by = 1): void {
    this.total += by
    this.counts.set(key, (this.counts.get(key) ?? 0) + by)
  }

  count(predicate: (key: string) => boolean): number {
    let n = 0
    for (const [key, value] of this.counts) if (predicate(key)) n += value
    return n
  }

  toString(): string {
    return [...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`).join(", ")
  }
}

/** Route labels without ids, for tallies. */
export const routeOf = (method: string, path: string) =>
  `${method} ${
    path.replace(/\?.*$/, "").replace(/\/storage\/files\/.*/, "/storage/files/*").replace(
      /\/storage\/uploads\/[^/]+/,
      "/storage/uploads/:id"
    ).replace(/\/parts\/[^/]+$/, "/parts/:n").replace(/\/documents\/[^/]+/, "/documents/:id")
  }`

/**
 * A request with the path sent exactly as given (fetch resolves `..` and
 * `%2e%2e` segments before sending); same outcome shape as `request`.
 */
export const requestRaw = (
  base: string,
  method: string,
  path: string,
  options: { readonly token?: string | undefined; readonly timeoutMs?: number } = {}
): Promise<Outcome> =>
  new Promise((resolve) => {
    const url = new URL(base)
    const headers: Record<string, string> = options.token === undefined
      ? {}
      : { authorization: `Bearer ${options.token}` }
    const req = http.request({ host: url.hostname, port: url.port, path, method, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => {
        const body = new Uint8Array(Buffer.concat(chunks))
        const text = new TextDecoder().decode(body)
        let json: any = undefined
        try {
          json = text === "" ? undefined : JSON.parse(text)
        } catch {
          json = undefined
        }
        const responseHeaders = new Headers()
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") responseHeaders.set(k, v)
        resolve({ kind: "response", status: res.statusCode ?? 0, json, text, headers: responseHeaders, body })
      })
    })
    req.setTimeout(options.timeoutMs ?? 15_000, () => {
      req.destroy()
      resolve({ kind: "timeout" })
    })
    req.on("error", (e) => resolve({ kind: "network", error: String(e) }))
    req.end()
  })
