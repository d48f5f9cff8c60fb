/**
 * A fault-injecting HTTP proxy to put in front of an S3 server. Each request
 * is, by a seeded draw:
 *
 * - answered `500 InternalError` or `503 SlowDown` (S3's XML error body)
 *   without reaching the server;
 * - reset (the socket destroyed) before it reaches the server;
 * - forwarded, and then reset before the answer reaches the client: the
 *   server did the work, the client does not know it (the nastiest case);
 * - delayed before it is forwarded (a slow server);
 * - or forwarded untouched.
 *
 * Headers go through as they are (the Host header included), so SigV4
 * signatures made for the proxy's address still verify at the server.
 *
 * A batch delete (`POST /bucket?delete`) names its keys in its body, so it
 * is read first: its keys go into the log, and keys a `failKey` rule matches
 * fail on their own, as S3 reports a key it could not delete. The proxy then
 * deletes the other keys itself (through `deleteKeys`: a body it changed
 * would no longer match the client's signature) and answers the batch with
 * one `<Error>` per failed key.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Rng } from "./rng.js"

export interface FaultPlan {
  /** Share of requests answered 500/503 without reaching the server. */
  readonly error: number
  /** Share reset before reaching the server. */
  readonly reset: number
  /** Share forwarded, then reset before the answer reaches the client. */
  readonly resetAfter: number
  /** Share delayed by `slowMillis` before being forwarded. */
  readonly slow: number
  readonly slowMillis: readonly [number, number]
}

export const noFaults: FaultPlan = { error: 0, reset: 0, resetAfter: 0, slow: 0, slowMillis: [0, 0] }

export type Fault = "error" | "reset" | "resetAfter" | "slow" | "pass"

export interface ProxyRecord {
  readonly method: string
  readonly path: string
  /** The keys of a batch delete. */
  readonly keys?: ReadonlyArray<string> | undefined
  readonly fault: Fault
  readonly at: number
  status?: number | undefined
}

export interface FaultProxy {
  readonly url: string
  /** Counts of requests by fault. */
  readonly stats: Record<Fault, number>
  /** Every request, in arrival order. */
  readonly log: Array<ProxyRecord>
  /** The plan for requests `select` matches (the last matching rule wins); the default plan otherwise. */
  readonly rule: (select: (method: string, path: string) => boolean, plan: FaultPlan) => void
  readonly setDefault: (plan: FaultPlan) => void
  /**
   * Keys that fail inside batch deletes (`InternalError` for that key, the
   * object kept); `deleteKeys` deletes the rest of such a batch upstream.
   */
  readonly failKeys: (
    select: (key: string) => boolean,
    deleteKeys: (bucket: string, keys: ReadonlyArray<string>) => Promise<void>
  ) => void
  readonly clearRules: () => void
  readonly close: () => Promise<void>
}

const errorBody = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>soak</RequestId></Error>`

export const startFaultProxy = async (target: string, rng: Rng, plan: FaultPlan): Promise<FaultProxy> => {
  const upstream = new URL(target)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  let defaultPlan = plan
  let rules: Array<[(method: string, path: string) => boolean, FaultPlan]> = []
  let keyRule:
    | {
      readonly select: (key: string) => boolean
      readonly deleteKeys: (bucket: string, keys: ReadonlyArray<string>) => Promise<void>
    }
    | undefined
  const stats: Record<Fault, number> = { error: 0, reset: 0, resetAfter: 0, slow: 0, pass: 0 }
  const log: Array<ProxyRecord> = []

  const choose = (p: FaultPlan): Fault => {
    const r = rng.next()
    if (r < p.error) return "error"
    if (r < p.error + p.reset) return "reset"
    if (r < p.error + p.reset + p.resetAfter) return "resetAfter"
    if (r < p.error + p.reset + p.resetAfter + p.slow) return "slow"
    return "pass"
  }

  const server = http.createServer((req, res) => {
    const method = req.method ?? "GET"
    const path = req.url ?? "/"
    if (method === "POST" && /\?delete(=|&|$)/.test(path)) {
      // A batch delete: its body holds the keys; read it before deciding.
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => handle(req, res, method, path, Buffer.concat(chunks)))
      return
    }
    handle(req, res, method, path, undefined)
  })

  const handle = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    path: string,
    batchBody: Buffer | undefined
  ) => {
    const keys = batchBody === undefined ? undefined : batchKeys(batchBody.toString("utf8"))
    let active = defaultPlan
    for (const [select, p] of rules) if (select(method, path)) active = p
    const fault = choose(active)
    stats[fault]++
    const record: ProxyRecord = { method, path, keys, fault, at: Date.now() }
    log.push(record)
    if (fault === "reset") {
      req.socket.destroy()
      return
    }
    if (fault === "error") {
      // Read the body first, as a server would, then refuse.
      const refuse = () => {
        const status = rng.chance(0.5) ? 500 : 503
        record.status = status
        const body = status === 500
          ? errorBody("InternalError", "injected by the soak proxy")
          : errorBody("SlowDown", "injected by the soak proxy")
        res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) })
        res.end(body)
      }
      if (batchBody === undefined) {
        req.resume()
        req.on("end", refuse)
      } else {
        refuse()
      }
      return
    }
    const failing = keys === undefined || keyRule === undefined ? [] : keys.filter(keyRule.select)
    if (keys !== undefined && keyRule !== undefined && failing.length > 0) {
      // Some keys of this batch fail on their own: the rest is deleted by the proxy.
      const rule = keyRule
      const bucket = path.split("?")[0]!.split("/")[1]!
      rule.deleteKeys(bucket, keys.filter((key) => !failing.includes(key))).then(
        () => {
          if (fault === "resetAfter") return void req.socket.destroy()
          record.status = 200
          const body = `<?xml version="1.0" encoding="UTF-8"?><DeleteResult>${
            failing.map((key) =>
              `<Error><Key>${escapeXml(key)}</Key><Code>InternalError</Code><Message>injected</Message></Error>`
            ).join("")
          }</DeleteResult>`
          res.writeHead(200, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) })
          res.end(body)
        },
        () => req.socket.destroy()
      )
      return
    }
    const forward = () => {
      const out = http.request({
        host: upstream.hostname,
        port: upstream.port,
        method,
        path,
        headers: req.headers,
        agent
      }, (answer) => {
        record.status = answer.statusCode
        if (fault === "resetAfter") {
          // The server has done the work; the client never hears of it.
          answer.resume()
          answer.on("end", () => req.socket.destroy())
          return
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      out.on("error", () => req.socket.destroy())
      if (batchBody === undefined) req.pipe(out)
      else out.end(batchBody)
    }
    if (fault === "slow") {
      const [min, max] = active.slowMillis
      req.pause()
      setTimeout(() => {
        req.resume()
        forward()
      }, rng.int(min, max))
    } else {
      forward()
    }
  }
  server.on("clientError", (_error, socket) => socket.destroy())
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    log,
    rule: (select, p) => {
      rules.push([select, p])
    },
    setDefault: (p) => {
      defaultPlan = p
    },
    failKeys: (select, deleteKeys) => {
      keyRule = { select, deleteKeys }
    },
    clearRules: () => {
      rules = []
    },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      agent.destroy()
    }
  }
}

/** The keys of a `DeleteObjects` request body. */
const batchKeys = (xml: string): Array<string> =>
  [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((match) => unescapeXml(match[1]!))

const unescapeXml = (text: string) =>
  text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, "\"").replace(/&apos;/g, "'").replace(
    /&amp;/g,
    "&"
  )

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
