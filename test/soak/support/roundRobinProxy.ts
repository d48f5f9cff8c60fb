/**
 * A small round-robin HTTP load balancer in front of several example
 * servers, as a deployment would put one: each request goes to the next
 * server in turn. A server that refuses the connection (killed, not yet
 * restarted) never saw the request, so the request goes to the next one; a
 * request cut after it reached a server (a kill -9 in the middle) is answered
 * 502 `BadGateway`, or the client's connection is cut when the answer had
 * already begun: the client cannot know whether it took effect.
 *
 * Request bodies are read whole before forwarding (parts are at most a few
 * MiB here), so a refused connection can be retried elsewhere.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"

interface InFlight {
  readonly method: string
  readonly path: string
}

export class RoundRobinProxy {
  /** Requests received from clients. */
  requests = 0
  /** Requests forwarded to each server (a refused attempt not counted). */
  readonly perServer: Array<number>
  /** Attempts refused by a server that was down, sent on to the next. */
  refusedRerouted = 0
  /** Requests cut after reaching a server: answered 502, or their answer cut. */
  cut = 0
  /** Requests no server accepted (all refused): answered 502. */
  noServer = 0
  /** Requests that took longer than `slowMillis`: which server, when (ms since the proxy started), how long. */
  readonly slow: Array<{ server: number; method: string; path: string; at: number; millis: number; outcome: string }> =
    []
  readonly slowMillis = 5000
  private readonly startedAt = Date.now()
  private readonly inFlight: Array<Set<InFlight>>
  private next = 0

  private constructor(private readonly server: http.Server, readonly backends: ReadonlyArray<string>) {
    this.perServer = backends.map(() => 0)
    this.inFlight = backends.map(() => new Set())
  }

  /** Listens on a free local port in front of `backends` (base URLs). */
  static async start(backends: ReadonlyArray<string>): Promise<RoundRobinProxy> {
    const server = http.createServer()
    const proxy = new RoundRobinProxy(server, backends)
    server.on("request", (req, res) => proxy.handle(req, res))
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    return proxy
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  /** The requests now being served by server `index` that match. */
  busyWith(index: number, match: (r: InFlight) => boolean): number {
    let n = 0
    for (const r of this.inFlight[index]!) if (match(r)) n++
    return n
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests++
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("error", () => res.destroy())
    req.on("end", () => this.forward(req, res, Buffer.concat(chunks), 0))
  }

  /** Sends the request to the next server; `tried` servers refused it already. */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, tried: number): void {
    if (tried === this.backends.length) {
      this.noServer++
      return this.badGateway(res, "no server accepted the connection")
    }
    const index = this.next++ % this.backends.length
    const target = new URL(this.backends[index]!)
    const headers = { ...req.headers, host: target.host, "content-length": String(body.length) }
    delete headers["transfer-encoding"]
    delete headers.connection
    const entry: InFlight = { method: req.method ?? "GET", path: req.url ?? "/" }
    let connected = false
    // No connection pooling: a pooled socket to a killed server would fail
    // like a cut request although the request never reached it.
    const upstream = http.request({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers,
      agent: false
    })
    const sentAt = Date.now()
    let finished = false
    const done = (outcome = "answered") => {
      this.inFlight[index]!.delete(entry)
      if (finished) return
      finished = true
      const millis = Date.now() - sentAt
      if (millis > this.slowMillis) {
        this.slow.push({ server: index, ...entry, at: sentAt - this.startedAt, millis, outcome })
      }
    }
    upstream.on("socket", (socket) =>
      socket.once("connect", () => {
        connected = true
        this.perServer[index]!++
        this.inFlight[index]!.add(entry)
      }))
    upstream.on("response", (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
      answer.on("end", () => done(`answered ${answer.statusCode}`))
      // The server died while answering: the client's connection is cut too.
      let cutOnce = false
      const cutAnswer = () => {
        done("answer cut")
        if (cutOnce) return
        cutOnce = true
        this.cut++
        res.destroy()
      }
      answer.on("error", cutAnswer)
      answer.on("aborted", cutAnswer)
    })
    upstream.on("error", (error: NodeJS.ErrnoException) => {
      done(`error ${error.code}`)
      if (!connected && error.code === "ECONNREFUSED") {
        this.refusedRerouted++
        return this.forward(req, res, body, tried + 1)
      }
      this.cut++
      if (res.headersSent) res.destroy()
      else this.badGateway(res, `the server's connection failed: ${error.code ?? error.message}`)
    })
    // A client that goes away cancels the forwarded request too.
    res.on("close", () => {
      if (!res.writableFinished) {
        done("client went away")
        upstream.destroy()
      }
    })
    upstream.end(body)
  }

  private badGateway(res: http.ServerResponse, message: string): void {
    const text = JSON.stringify({ _tag: "BadGateway", message })
    res.writeHead(502, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
    res.end(text)
  }
}
