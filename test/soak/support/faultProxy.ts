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
    let active = defaultPlan
    for (const [select, p] of rules) if (select(method, path)) active = p
    const fault = choose(active)
    stats[fault]++
    const record: ProxyRecord = { method, path, fault, at: Date.now() }
    log.push(record)
    if (fault === "reset") {
      req.socket.destroy()
      return
    }
    if (fault === "error") {
      // Read the body first, as a server would, then refuse.
      req.resume()
      req.on("end", () => {
        const status = rng.chance(0.5) ? 500 : 503
        record.status = status
        const body = status === 500
          ? errorBody("InternalError", "injected by the soak proxy")
          : errorBody("SlowDown", "injected by the soak proxy")
        res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) })
        res.end(body)
      })
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
      req.pipe(out)
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
  })
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
