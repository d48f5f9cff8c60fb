/**
 * A small OTLP/HTTP receiver for tests: it accepts `POST /v1/traces`,
 * `/v1/metrics` and `/v1/logs`, keeps every request (headers, content type,
 * body) and decodes the JSON ones, so a test can look at what a process
 * exported. Written from the OTLP spec's JSON mapping (ids are hex strings,
 * `kind` a number).
 */
import { createServer, type IncomingHttpHeaders } from "node:http"

export interface ExportRequest {
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly contentType: string
  readonly body: Buffer
  readonly json: unknown
}

export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string
  readonly name: string
  readonly kind: number
  readonly attributes: Record<string, unknown>
  readonly serviceName: string | undefined
}

export interface OtlpReceiver {
  readonly url: string
  readonly requests: Array<ExportRequest>
  /** Every span of the JSON trace requests so far. */
  readonly spans: () => Array<ReceivedSpan>
  /** The names of every metric of the JSON metric requests so far. */
  readonly metricNames: () => Set<string>
  /** The bodies of every JSON log record so far. */
  readonly logBodies: () => Array<string>
  readonly close: () => Promise<void>
}

interface AnyValue {
  readonly stringValue?: string
  readonly intValue?: string | number
  readonly boolValue?: boolean
  readonly doubleValue?: number
}

interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}

const plain = (value: AnyValue): unknown => value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue

const attributesOf = (list: ReadonlyArray<KeyValue> | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map(({ key, value }) => [key, plain(value)]))

export const startOtlpReceiver = async (): Promise<OtlpReceiver> => {
  const requests: Array<ExportRequest> = []
  const server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const body = Buffer.concat(chunks)
      const contentType = req.headers["content-type"] ?? ""
      let json: unknown = undefined
      if (contentType.includes("json")) json = JSON.parse(body.toString("utf8"))
      requests.push({ path: req.url ?? "", headers: req.headers, contentType, body, json })
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok))
  const address = server.address()
  if (typeof address !== "object" || address === null) throw new Error("no address")

  const jsonOf = (path: string) =>
    requests.filter((r) => r.path === path && r.json !== undefined).map((r) => r.json as Record<string, any>)

  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    spans: () =>
      jsonOf("/v1/traces").flatMap((body) =>
        (body.resourceSpans ?? []).flatMap((rs: any) => {
          const serviceName = attributesOf(rs.resource?.attributes)["service.name"] as string | undefined
          return (rs.scopeSpans ?? []).flatMap((ss: any) =>
            (ss.spans ?? []).map((span: any): ReceivedSpan => ({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? "",
              name: span.name,
              kind: span.kind,
              attributes: attributesOf(span.attributes),
              serviceName
            }))
          )
        })
      ),
    metricNames: () =>
      new Set(
        jsonOf("/v1/metrics").flatMap((body) =>
          (body.resourceMetrics ?? []).flatMap((rm: any) =>
            (rm.scopeMetrics ?? []).flatMap((sm: any) => (sm.metrics ?? []).map((m: any) => m.name as string))
          )
        )
      ),
    logBodies: () =>
      jsonOf("/v1/logs").flatMap((body) =>
        (body.resourceLogs ?? []).flatMap((rl: any) =>
          (rl.scopeLogs ?? []).flatMap((sl: any) =>
            (sl.logRecords ?? []).map((r: any) => String(plain(r.body ?? {}) ?? ""))
          )
        )
      ),
    close: () => new Promise<void>((ok) => server.close(() => ok()))
  }
}
