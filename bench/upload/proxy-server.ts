/**
 * A floor for bench:upload: the least a server in the middle can do. Plain
 * `node:http`, each part's request body handed as is to the SDK's
 * UploadPart (no checks, no database, no Effect). The difference between it
 * and the direct upload is the cost of the extra hop on this machine; the
 * difference between it and the storage API is the API's own.
 *
 *   POST /uploads?key=K -> { uploadId }; PUT /uploads/ID/parts/N?key=K -> { etag };
 *   POST /uploads/ID/complete?key=K (body: JSON etags) -> {}
 *
 * Environment: PORT, PROXY_BUCKET, S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY.
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  S3Client,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import * as http from "node:http"

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}
const bucket = env("PROXY_BUCKET")
const client = new S3Client({
  endpoint: env("S3_ENDPOINT"),
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: env("S3_ACCESS_KEY_ID"), secretAccessKey: env("S3_SECRET_ACCESS_KEY") },
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED"
})

const readBody = (req: http.IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url ?? "/", "http://localhost")
    const key = url.searchParams.get("key") ?? ""
    const parts = url.pathname.split("/").filter((p) => p !== "")
    let body: unknown = {}
    if (url.pathname === "/healthz") body = "ok"
    else if (req.method === "POST" && parts.length === 1) {
      const out = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
      body = { uploadId: out.UploadId }
    } else if (req.method === "PUT" && parts[2] === "parts") {
      const out = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: parts[1],
          PartNumber: Number(parts[3]),
          Body: req,
          ContentLength: Number(req.headers["content-length"])
        })
      )
      body = { etag: out.ETag }
    } else if (req.method === "POST" && parts[2] === "complete") {
      const etags = JSON.parse(await readBody(req)) as Array<string>
      await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: parts[1],
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }
        })
      )
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body))
  } catch (error) {
    res.writeHead(500).end(String(error))
  }
})
server.listen(Number(env("PORT")), "127.0.0.1")
process.on("SIGTERM", () => server.close(() => process.exit(0)))
