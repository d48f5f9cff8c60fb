/**
 * The tus peer of bench:upload and bench:memory: @tus/server with
 * @tus/s3-store in front of the same S3 server, on its own port.
 *
 * Environment: PORT, TUS_BUCKET, TUS_PART_SIZE, S3_ENDPOINT,
 * S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY.
 */
import { S3Store } from "@tus/s3-store"
import { Server } from "@tus/server"
import * as http from "node:http"

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const datastore = new S3Store({
  partSize: Number(env("TUS_PART_SIZE")),
  s3ClientConfig: {
    bucket: env("TUS_BUCKET"),
    endpoint: env("S3_ENDPOINT"),
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: env("S3_ACCESS_KEY_ID"), secretAccessKey: env("S3_SECRET_ACCESS_KEY") },
    // As for every client of these servers: no aws-chunked bodies.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  }
})

const tusServer = new Server({ path: "/files", datastore })

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok")
    return
  }
  void tusServer.handle(req, res)
})
server.listen(Number(env("PORT")), "127.0.0.1")
process.on("SIGTERM", () => server.close(() => process.exit(0)))
