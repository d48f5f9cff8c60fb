/**
 * The storage API spoken over HTTP, for the suites.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import { createHash, randomBytes } from "node:crypto"
import { call, type tokens } from "./harness.js"

export type User = keyof typeof tokens | undefined

export const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

export const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

export const init = (user: User, body: Record<string, unknown>) =>
  call(user, HttpClientRequest.post("/storage/uploads").pipe(HttpClientRequest.bodyUnsafeJson(body)))

export const putPart = (user: User, claimId: string, partNumber: number | string, data: Uint8Array) =>
  call(
    user,
    HttpClientRequest.put(`/storage/uploads/${claimId}/parts/${partNumber}`).pipe(
      HttpClientRequest.bodyUint8Array(data, "application/octet-stream")
    )
  )

export const listParts = (user: User, claimId: string) =>
  call(user, HttpClientRequest.get(`/storage/uploads/${claimId}/parts`))

export const complete = (user: User, claimId: string) =>
  call(user, HttpClientRequest.post(`/storage/uploads/${claimId}/complete`))

/** `POST /storage/files`: a small file in one request. */
export const postFile = (
  user: User,
  query: Record<string, string>,
  data: Uint8Array,
  contentType = "application/octet-stream"
) =>
  call(
    user,
    HttpClientRequest.post("/storage/files").pipe(
      HttpClientRequest.setUrlParams(query),
      HttpClientRequest.bodyUint8Array(data, contentType)
    )
  )

export const abort = (user: User, claimId: string) => call(user, HttpClientRequest.del(`/storage/uploads/${claimId}`))

/** Splits `data` into the parts a ticket asks for. */
export const partsOf = (data: Uint8Array, partSize: number) => {
  const parts: Array<Uint8Array> = []
  for (let offset = 0; offset < data.length; offset += partSize) parts.push(data.subarray(offset, offset + partSize))
  return parts
}

/** Init, every part, complete: answers the ticket and the completion. */
export const uploadWhole = (
  user: User,
  filename: string,
  data: Uint8Array,
  options: { contentType?: string; public?: boolean } = {}
) =>
  Effect.gen(function*() {
    const opened = yield* init(user, { filename, size: data.length, ...options })
    if (opened.status !== 201) return yield* Effect.dieMessage(`init answered ${opened.status}: ${opened.text}`)
    const ticket = opened.json as { claimId: string; key: string; partSize: number; partCount: number }
    const parts = partsOf(data, ticket.partSize)
    yield* Effect.forEach(parts, (part, i) =>
      Effect.flatMap(putPart(user, ticket.claimId, i + 1, part), (r) =>
        r.status === 200 ? Effect.void : Effect.dieMessage(`part ${i + 1} answered ${r.status}: ${r.text}`)), {
      concurrency: 4
    })
    const done = yield* complete(user, ticket.claimId)
    return { ticket, done }
  })
