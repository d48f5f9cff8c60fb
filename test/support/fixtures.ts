/**
 * Builders of model values for the suites.
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { uuidv7FromMillis } from "../../src/internal/uuidv7.js"
import { UploadClaim } from "../../src/schema/Models.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { FileRegistry } from "../../src/services/FileRegistry.js"

/** A fixed instant, so suites never depend on the wall clock. */
export const t0 = DateTime.unsafeMake("2026-11-28T12:00:00.000Z") as DateTime.Utc

export const at = (offsetMillis: number): DateTime.Utc => DateTime.add(t0, { millis: offsetMillis })

export const unique = (prefix = "k") => `${prefix}-${randomBytes(6).toString("hex")}`

export const makeClaim = (fields: Partial<ConstructorParameters<typeof UploadClaim>[0]> = {}): UploadClaim =>
  new UploadClaim({
    id: uuidv7FromMillis(Date.now()),
    createdAt: t0,
    createdBy: "alice",
    key: `priv/2026/11/28/${unique("obj")}.bin`,
    uploadId: "",
    size: 1234,
    contentType: "application/octet-stream",
    originalFilename: "report.pdf",
    status: "pending",
    public: false,
    partSize: 65536,
    partCount: 1,
    expiresAt: at(24 * 3600_000),
    ...fields
  })

/**
 * Records a claim's upload as completed, as the upload flow does in its
 * completing transaction: the claim marked uploaded and the file registered.
 */
export const completeClaim = (claim: UploadClaim) =>
  Effect.gen(function*() {
    yield* (yield* ClaimStore).markUploaded(claim.id)
    yield* (yield* FileRegistry).recordUploaded(claim, yield* DateTime.now)
  })
