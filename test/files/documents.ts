/**
 * A business model with every kind of file reference, shared by the
 * extraction and facade suites.
 */
import * as Schema from "effect/Schema"
import * as FileRefs from "../../src/layers/files/FileRefs.js"

export const Author = Schema.Struct({
  name: Schema.String,
  avatar: Schema.optional(FileRefs.UploadedFile)
})

export class Document extends Schema.Class<Document>("Document")({
  title: Schema.String,
  cover: Schema.NullOr(FileRefs.UploadedFile),
  gallery: Schema.Array(Schema.String).pipe(FileRefs.uploadedFile({ category: "gallery" })),
  attachments: Schema.Record({ key: Schema.String, value: FileRefs.UploadedFile }),
  body: FileRefs.RichText,
  notes: FileRefs.Markdown,
  author: Author
}) {}

/** Proxy URL of a key, as rendered rich text holds it. */
export const url = (key: string) => `/storage/files/${key}`
