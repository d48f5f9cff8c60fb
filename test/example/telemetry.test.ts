/**
 * OTLP export of the example server, configured only by `OTEL_*`
 * variables, received by an OTLP/HTTP receiver this test starts:
 *
 * - on PostgreSQL + Ceph RGW (JSON): the spans of an upload (the HTTP
 *   request, its SQL statements, its S3 calls) arrive as one trace whose
 *   spans all hang from the request's server span; a chunked upload whose
 *   client sends `traceparent` lands in the client's trace; the configured
 *   headers, service name, metrics and logs arrive too;
 * - on the embedded default with no protocol set: OTLP's default,
 *   protobuf, is what is sent.
 */
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { createDatabase } from "../support/databases.js"
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../support/otlpReceiver.js"
import { type ExampleServer, startExampleServer, waitFor } from "./exampleServer.js"

const servers = inject("servers")
const ceph = servers.s3.ceph
const runS3 = (servers.pg !== undefined && ceph !== undefined) || servers.ci

const SERVER = 2 // OTLP SpanKind

const auth = { authorization: "Bearer tokenA" }

/** Spans of one trace, and whether each hangs (through its parents) from `rootId`. */
const traceOf = (spans: ReadonlyArray<ReceivedSpan>, traceId: string) => spans.filter((s) => s.traceId === traceId)

const hangsFrom = (spans: ReadonlyArray<ReceivedSpan>, span: ReceivedSpan, rootId: string): boolean => {
  const byId = new Map(spans.map((s) => [s.spanId, s]))
  let current: ReceivedSpan | undefined = span
  for (let hops = 0; current !== undefined && hops < 100; hops++) {
    if (current.spanId === rootId) return true
    current = byId.get(current.parentSpanId)
  }
  return false
}

describe.runIf(runS3)("OTLP export on PostgreSQL + Ceph RGW", () => {
  let receiver: OtlpReceiver
  let server: ExampleServer
  let drop: (() => Promise<void>) | undefined

  beforeAll(async () => {
    if (servers.pg === undefined || ceph === undefined) throw new Error("CI=true: PostgreSQL and Ceph RGW are needed")
    receiver = await startOtlpReceiver()
    const database = await createDatabase("pg", servers.pg, "es_otel")
    drop = database.drop
    server = await startExampleServer({
      DATABASE_URL: database.url,
      STORAGE_BACKEND: "s3",
      S3_ENDPOINT: ceph.endpoint,
      S3_ACCESS_KEY_ID: ceph.accessKeyId,
      S3_SECRET_ACCESS_KEY: ceph.secretAccessKey,
      S3_REGION: "us-east-1",
      S3_FORCE_PATH_STYLE: "true",
      S3_BUCKET: `otel-${randomBytes(4).toString("hex")}`,
      S3_CREATE_BUCKET: "true",
      STORAGE_PART_SIZE: "5MiB",
      STORAGE_DOWNLOAD_REDIRECT: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20collector-secret,x-tenant=storage",
      OTEL_SERVICE_NAME: "uploads-under-test",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test",
      OTEL_BSP_SCHEDULE_DELAY: "200",
      OTEL_METRIC_EXPORT_INTERVAL: "500",
      OTEL_BLRP_SCHEDULE_DELAY: "200"
    })
  }, 90_000)

  afterAll(async () => {
    await server?.stop()
    await receiver?.close()
    await drop?.()
  })

  it("a one-request upload is one trace: HTTP server span, SQL statements and S3 calls under it", async () => {
    const body = randomBytes(40_000)
    const response = await fetch(`${server.url}/storage/files?filename=notes.txt`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/octet-stream" },
      body
    })
    expect(response.status).toBe(201)
    const { key } = await response.json() as { key: string }

    let root: ReceivedSpan | undefined
    await waitFor(() => {
      root = receiver.spans().find((s) =>
        s.kind === SERVER && s.name === "http.server POST" &&
        String(s.attributes["url.path"] ?? "").startsWith("/storage/files")
      )
      if (root === undefined) return false
      const trace = traceOf(receiver.spans(), root.traceId)
      return trace.some((s) => s.name === "ObjectStorage.putObject") && trace.some((s) => s.name === "sql.execute")
    }, "the upload's trace")

    const trace = traceOf(receiver.spans(), root!.traceId)
    const put = trace.find((s) => s.name === "ObjectStorage.putObject")!
    expect(put.attributes.backend).toBe("s3")
    expect(put.attributes.key).toBe(key)
    expect(trace.filter((s) => s.name === "sql.execute").length).toBeGreaterThanOrEqual(2)
    // One tree: every span of the trace hangs from the request's server span.
    for (const span of trace) expect(hangsFrom(trace, span, root!.spanId), span.name).toBe(true)
    expect(root!.parentSpanId).toBe("")
    expect(root!.serviceName).toBe("uploads-under-test")
  })

  it("a chunked upload whose client sends traceparent lands in the client's trace", async () => {
    const traceId = randomBytes(16).toString("hex")
    const clientSpan = randomBytes(8).toString("hex")
    const headers = { ...auth, traceparent: `00-${traceId}-${clientSpan}-01` }
    const size = 5 * 1024 * 1024 + 1234
    const data = randomBytes(size)
    const opened = await fetch(`${server.url}/storage/uploads`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ filename: "video.mp4", size })
    })
    expect(opened.status).toBe(201)
    const ticket = await opened.json() as { claimId: string; partSize: number; partCount: number }
    expect(ticket.partCount).toBe(2)
    for (let part = 1; part <= ticket.partCount; part++) {
      const chunk = data.subarray((part - 1) * ticket.partSize, part * ticket.partSize)
      const sent = await fetch(`${server.url}/storage/uploads/${ticket.claimId}/parts/${part}`, {
        method: "PUT",
        headers: { ...headers, "content-type": "application/octet-stream" },
        body: chunk
      })
      expect(sent.status).toBe(200)
    }
    const completed = await fetch(`${server.url}/storage/uploads/${ticket.claimId}/complete`, {
      method: "POST",
      headers
    })
    expect(completed.status).toBe(200)

    // A request's server span ends (and is exported) after its children.
    await waitFor(
      () => traceOf(receiver.spans(), traceId).filter((s) => s.kind === SERVER).length === 4,
      "the four requests' spans"
    )
    const trace = traceOf(receiver.spans(), traceId)
    const requests = trace.filter((s) => s.kind === SERVER)
    expect(requests.length).toBe(4)
    for (const request of requests) expect(request.parentSpanId).toBe(clientSpan)
    expect(trace.filter((s) => s.name === "ObjectStorage.putPart").length).toBe(2)
    expect(trace.some((s) => s.name === "ObjectStorage.initMultipart")).toBe(true)
    expect(trace.some((s) => s.name === "sql.execute")).toBe(true)
    for (const span of trace) {
      expect(requests.some((request) => hangsFrom(trace, span, request.spanId)), span.name).toBe(true)
    }
  })

  it("keeps signed URLs out of spans and logs: signed links are not traced, redirect targets redacted", async () => {
    const uploaded = await fetch(`${server.url}/storage/files?filename=secret.txt`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/octet-stream" },
      body: randomBytes(2000)
    })
    const { key } = await uploaded.json() as { key: string }
    const made = await fetch(`${server.url}/storage/links`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ key })
    })
    const link = (await made.json() as { url: string }).url
    const signature = new URL(link, server.url).searchParams.get("signature")!
    expect(signature.length).toBeGreaterThan(20)
    // The signed link redirects (STORAGE_DOWNLOAD_REDIRECT) to a presigned GET.
    const viaLink = await fetch(`${server.url}${link}`, { redirect: "manual" })
    expect(viaLink.status).toBe(302)
    const viaToken = await fetch(`${server.url}/storage/files/${key}`, { headers: auth, redirect: "manual" })
    expect(viaToken.status).toBe(302)
    expect(viaToken.headers.get("location")).toContain("X-Amz-Signature=")

    let redirect: ReceivedSpan | undefined
    await waitFor(() => {
      redirect = receiver.spans().find((s) => s.kind === SERVER && s.attributes["url.path"] === `/storage/files/${key}`)
      return redirect !== undefined && server.log().includes(`/storage/files/${key}?expires=`)
    }, "the redirect's span and the link's log line")
    expect(redirect!.attributes["http.response.status_code"]).toBe(302)
    expect(redirect!.attributes["http.response.header.location"]).toBe("<redacted>")
    const everything = JSON.stringify(receiver.requests.map((r) => r.json)) + server.log()
    expect(everything).not.toContain(signature)
    expect(everything).not.toContain("X-Amz-Signature=")
    expect(server.log()).toContain("signature=REDACTED")
  })

  it("sends the configured headers and resource, the storage metrics and the log lines", async () => {
    await waitFor(() => receiver.metricNames().has("storage_uploads_completed_total"), "the storage metrics", 15_000)
    await waitFor(() => receiver.logBodies().length > 0, "log records", 15_000)
    const paths = new Set(receiver.requests.map((r) => r.path))
    expect(paths).toEqual(new Set(["/v1/traces", "/v1/metrics", "/v1/logs"]))
    for (const request of receiver.requests) {
      expect(request.headers.authorization).toBe("Bearer collector-secret")
      expect(request.headers["x-tenant"]).toBe("storage")
      expect(request.contentType).toContain("application/json")
    }
    const traces = receiver.requests.find((r) => r.path === "/v1/traces")!.json as any
    const resource = Object.fromEntries(
      traces.resourceSpans[0].resource.attributes.map((a: any) => [a.key, a.value.stringValue])
    )
    expect(resource["service.name"]).toBe("uploads-under-test")
    expect(resource["deployment.environment"]).toBe("test")
    // The exporter's own requests are not traced (no span about /v1/traces).
    expect(receiver.spans().some((s) => String(s.attributes["url.full"] ?? "").includes("/v1/"))).toBe(false)
  })
})

describe("OTLP export on the embedded default", () => {
  let receiver: OtlpReceiver
  let server: ExampleServer

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    server = await startExampleServer({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_BSP_SCHEDULE_DELAY: "200"
    })
  }, 90_000)

  afterAll(async () => {
    await server?.stop()
    await receiver?.close()
  })

  it("sends protobuf (OTLP's default) to a signal's own endpoint, and only the signals that are on", async () => {
    const response = await fetch(`${server.url}/storage/files?filename=a.txt`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/octet-stream" },
      body: randomBytes(1000)
    })
    expect(response.status).toBe(201)
    await waitFor(() => receiver.requests.some((r) => r.path === "/v1/traces"), "a trace export")
    // Long enough for a metrics or log export to have happened had they been on (200 ms and 1 s periods).
    await new Promise((r) => setTimeout(r, 1500))
    expect(new Set(receiver.requests.map((r) => r.path))).toEqual(new Set(["/v1/traces"]))
    for (const request of receiver.requests) {
      expect(request.contentType).toBe("application/x-protobuf")
      expect(request.body.length).toBeGreaterThan(0)
    }
  })
})
