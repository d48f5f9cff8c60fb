// Sets a bucket's CORS rule on the test servers, so that browsers on the
// given origins can send direct uploads (PUT parts, POST forms) and read
// the ETag header:
//
//   scripts/s3/all.sh cors BUCKET ORIGIN...
//
// Ceph RGW: the S3 call PutBucketCors (the bucket is created when missing).
// Swift: its s3api (2.30) answers PutBucketCors with 501 and CORS
// preflights on the S3 path with 400, so the container's CORS metadata is
// set through the Swift API (tempauth), which serves the Swift paths only:
// browsers cannot upload to Swift's S3 path directly.
//
// Endpoints and credentials: the same defaults and variables as ceph.sh and swift.sh.
import { CreateBucketCommand, PutBucketCorsCommand, S3Client } from "@aws-sdk/client-s3"
import { createHash } from "node:crypto"

const [bucket, ...origins] = process.argv.slice(2)
if (bucket === undefined || origins.length === 0) {
  console.error("usage: scripts/s3/all.sh cors BUCKET ORIGIN...")
  process.exit(2)
}

const ceph = {
  endpoint: `http://127.0.0.1:${process.env.CEPH_S3_PORT ?? 7480}`,
  accessKeyId: process.env.CEPH_S3_ACCESS_KEY ?? "test",
  secretAccessKey: process.env.CEPH_S3_SECRET_KEY ?? "testsecret"
}
const swift = {
  endpoint: `http://127.0.0.1:${process.env.SWIFT_S3_PORT ?? 8380}`,
  user: process.env.SWIFT_S3_ACCESS_KEY ?? "test:tester",
  key: process.env.SWIFT_S3_SECRET_KEY ?? "testing"
}

const cephCors = async () => {
  const client = new S3Client({
    endpoint: ceph.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED"
  })
  // PutBucketCors needs Content-MD5, which SDK v3 replaced by a CRC32 checksum.
  client.middlewareStack.add((next) => (args) => {
    const request = args.request
    if (typeof request.body === "string") {
      request.headers["content-md5"] = createHash("md5").update(request.body).digest("base64")
    }
    return next(args)
  }, { step: "build", name: "corsContentMd5" })
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }))
  } catch (error) {
    if (error.name !== "BucketAlreadyOwnedByYou" && error.name !== "BucketAlreadyExists") throw error
  }
  await client.send(
    new PutBucketCorsCommand({
      Bucket: bucket,
      CORSConfiguration: {
        CORSRules: [{
          AllowedOrigins: origins,
          AllowedMethods: ["GET", "HEAD", "PUT", "POST"],
          AllowedHeaders: ["*"],
          ExposeHeaders: ["ETag"],
          MaxAgeSeconds: 3600
        }]
      }
    })
  )
  client.destroy()
  console.error(`[cors] ceph: bucket ${bucket} allows ${origins.join(" ")}`)
}

const swiftCors = async () => {
  const auth = await fetch(`${swift.endpoint}/auth/v1.0`, {
    headers: { "x-auth-user": swift.user, "x-auth-key": swift.key }
  })
  if (!auth.ok) throw new Error(`swift auth answered ${auth.status}`)
  const token = auth.headers.get("x-auth-token")
  const container = `${auth.headers.get("x-storage-url")}/${encodeURIComponent(bucket)}`
  const created = await fetch(container, { method: "PUT", headers: { "x-auth-token": token } })
  if (!created.ok) throw new Error(`swift container PUT answered ${created.status}`)
  const set = await fetch(container, {
    method: "POST",
    headers: {
      "x-auth-token": token,
      "x-container-meta-access-control-allow-origin": origins.join(" "),
      "x-container-meta-access-control-expose-headers": "etag",
      "x-container-meta-access-control-max-age": "3600"
    }
  })
  if (!set.ok) throw new Error(`swift container POST answered ${set.status}`)
  console.error(`[cors] swift: container ${bucket} allows ${origins.join(" ")} (Swift API paths only)`)
}

await cephCors()
await swiftCors()
