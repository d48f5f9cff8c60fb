import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as FileRefs from "../../src/layers/files/FileRefs.js"
import { identityUrlKeyMapper, proxyUrlKeyMapper } from "../../src/layers/files/UrlKeyMapper.js"
import { Author, Document, url } from "./documents.js"

/** `[path, value]` pairs, the shortest way to compare refs. */
const found = <A, I, R>(schema: Schema.Schema<A, I, R>, value: A | null | undefined) =>
  FileRefs.extract(schema, value).map((ref) => [ref.path.map(String).join("."), ref.value])

describe("FileRefs annotations", () => {
  it("put a FileRefAnnotation on the schema", () => {
    const annotation = FileRefs.getFileRefAnnotation(
      Schema.Array(Schema.String).pipe(FileRefs.uploadedFile({ category: "gallery" })).ast
    )
    expect(Option.getOrThrow(annotation)).toEqual({ kind: "uploaded_file", attributes: { category: "gallery" } })
    expect(Option.getOrThrow(FileRefs.getFileRefAnnotation(FileRefs.RichText.ast)).kind).toBe("rich_text")
    expect(Option.getOrThrow(FileRefs.getFileRefAnnotation(FileRefs.Markdown.ast)).kind).toBe("markdown")
    expect(Option.getOrThrow(FileRefs.getFileRefAnnotation(FileRefs.uploadedFile(Schema.String).ast)).attributes)
      .toEqual({})
    expect(
      Option.getOrThrow(
        FileRefs.getFileRefAnnotation(Schema.String.pipe(FileRefs.annotate("markdown", { a: "b" })).ast)
      )
    ).toEqual({ kind: "markdown", attributes: { a: "b" } })
  })

  it("accept only schemas of strings, arrays or records of strings, options of those", () => {
    // @ts-expect-error a number is no file reference
    FileRefs.uploadedFile(Schema.Number)
    // @ts-expect-error nor an array of numbers
    Schema.Array(Schema.Number).pipe(FileRefs.richText())
    Schema.Record({ key: Schema.String, value: Schema.String }).pipe(FileRefs.uploadedFile())
    Schema.OptionFromNullOr(Schema.String).pipe(FileRefs.uploadedFile())
    Schema.NullOr(Schema.String).pipe(FileRefs.markdown())
  })
})

describe("FileRefs.extract: uploaded_file shapes", () => {
  it("a string field is one key, trimmed; empty is skipped", () => {
    const S = Schema.Struct({ file: FileRefs.UploadedFile, other: Schema.String })
    expect(found(S, { file: "  pub/a.png ", other: "pub/not-a-ref" })).toEqual([["file", "pub/a.png"]])
    expect(found(S, { file: "   ", other: "x" })).toEqual([])
  })

  it("carries kind, path and attributes", () => {
    const S = Schema.Struct({ file: Schema.String.pipe(FileRefs.uploadedFile({ category: "cover", public: "true" })) })
    expect(FileRefs.extract(S, { file: "pub/a.png" })).toEqual([
      { kind: "uploaded_file", value: "pub/a.png", path: ["file"], attributes: { category: "cover", public: "true" } }
    ])
  })

  it("an array: each entry, trimmed, empty ones skipped, annotated on the array or on the element", () => {
    const OnArray = Schema.Struct({ files: Schema.Array(Schema.String).pipe(FileRefs.uploadedFile()) })
    const OnElement = Schema.Struct({ files: FileRefs.UploadedFiles })
    const value = { files: [" pub/a ", "", "pub/b", "  "] }
    expect(found(OnArray, value)).toEqual([["files.0", "pub/a"], ["files.2", "pub/b"]])
    expect(found(OnElement, value)).toEqual([["files.0", "pub/a"], ["files.2", "pub/b"]])
  })

  it("a record: the values are keys, annotated on the record or on the value", () => {
    const OnRecord = Schema.Struct({
      files: Schema.Record({ key: Schema.String, value: Schema.String }).pipe(FileRefs.uploadedFile())
    })
    const OnValue = Schema.Struct({ files: Schema.Record({ key: Schema.String, value: FileRefs.UploadedFile }) })
    const value = { files: { cv: " pub/cv.pdf ", none: "", photo: "pub/p.png" } }
    expect(found(OnRecord, value)).toEqual([["files.cv", "pub/cv.pdf"], ["files.photo", "pub/p.png"]])
    expect(found(OnValue, value)).toEqual([["files.cv", "pub/cv.pdf"], ["files.photo", "pub/p.png"]])
  })

  it("a struct with an index signature: declared properties are not index entries", () => {
    const S = Schema.Struct(
      { id: Schema.String, main: FileRefs.UploadedFile },
      Schema.Record({ key: Schema.String, value: FileRefs.UploadedFile })
    )
    expect(found(S, { id: "doc-1", main: "pub/m", extra: "pub/e" })).toEqual([["main", "pub/m"], ["extra", "pub/e"]])
  })

  it("values of other shapes are silently ignored", () => {
    const S = Schema.Struct({ file: FileRefs.UploadedFile })
    expect(found(S, { file: 42 } as never)).toEqual([])
    expect(found(S, { file: ["pub/a"] } as never)).toEqual([["file.0", "pub/a"]])
    expect(found(S, { file: { k: "pub/r", n: 1 } } as never)).toEqual([["file.k", "pub/r"]])
    expect(found(S, { file: new Date() } as never)).toEqual([])
    expect(found(S, "not an object" as never)).toEqual([])
  })

  it("the outermost annotation wins", () => {
    const S = Schema.Struct({ files: Schema.Array(FileRefs.RichText).pipe(FileRefs.uploadedFile()) })
    expect(found(S, { files: [`<img src="/x">`] })).toEqual([["files.0", `<img src="/x">`]])
  })
})

describe("FileRefs.extract: rich_text and markdown", () => {
  it("HTML and Markdown fields answer their URLs, de-duplicated per field", () => {
    const S = Schema.Struct({ body: FileRefs.RichText, notes: FileRefs.Markdown })
    const refs = FileRefs.extract(S, {
      body: `<img src="/a.png"><a href=" /a.png ">a</a><img src="https://x/y.png">`,
      notes: "![a](/a.png) [b](/b.pdf \"B\")"
    })
    expect(refs.map((r) => [r.kind, r.path.join("."), r.value])).toEqual([
      ["rich_text", "body", "/a.png"],
      ["rich_text", "body", "https://x/y.png"],
      ["markdown", "notes", "/a.png"],
      ["markdown", "notes", "/b.pdf"]
    ])
  })

  it("arrays of rich text are scanned element by element", () => {
    const S = Schema.Struct({ paragraphs: Schema.Array(FileRefs.RichText) })
    expect(found(S, { paragraphs: [`<img src="/a">`, `<img src="/a"><img src="/b">`] }))
      .toEqual([["paragraphs.0", "/a"], ["paragraphs.1", "/a"], ["paragraphs.1", "/b"]])
  })
})

describe("FileRefs.extract: schema structure", () => {
  it("recurses into nested structs at any depth, no marker needed", () => {
    const S = Schema.Struct({
      a: Schema.Struct({ b: Schema.Struct({ c: Schema.Struct({ file: FileRefs.UploadedFile }) }) })
    })
    expect(found(S, { a: { b: { c: { file: "pub/deep" } } } })).toEqual([["a.b.c.file", "pub/deep"]])
  })

  it("optional, nullable and undefined-able fields", () => {
    const S = Schema.Struct({
      opt: Schema.optional(FileRefs.UploadedFile),
      exact: Schema.optionalWith(FileRefs.UploadedFile, { exact: true }),
      nullable: Schema.NullOr(FileRefs.UploadedFile),
      nullish: Schema.NullishOr(FileRefs.UploadedFile),
      undef: Schema.UndefinedOr(FileRefs.UploadedFile),
      nested: Schema.optional(Schema.NullOr(Schema.Struct({ file: FileRefs.UploadedFile })))
    })
    expect(found(S, { nullable: null, nullish: undefined, undef: undefined, nested: null })).toEqual([])
    expect(found(S, { nullable: null, nullish: null, undef: undefined })).toEqual([])
    expect(
      found(S, {
        opt: "pub/1",
        exact: "pub/2",
        nullable: "pub/3",
        nullish: "pub/4",
        undef: "pub/5",
        nested: { file: "pub/6" }
      })
    ).toEqual([
      ["opt", "pub/1"],
      ["exact", "pub/2"],
      ["nullable", "pub/3"],
      ["nullish", "pub/4"],
      ["undef", "pub/5"],
      ["nested.file", "pub/6"]
    ])
  })

  it("null and undefined root values have no references", () => {
    expect(FileRefs.extract(Document, null)).toEqual([])
    expect(FileRefs.extract(Document, undefined)).toEqual([])
  })

  it("unions walk the member the value belongs to", () => {
    const Image = Schema.TaggedStruct("image", { file: FileRefs.UploadedFile })
    const Link = Schema.TaggedStruct("link", { file: Schema.String })
    const Note = Schema.TaggedStruct("note", { file: FileRefs.Markdown })
    const S = Schema.Struct({ blocks: Schema.Array(Schema.Union(Image, Link, Note)) })
    expect(
      found(S, {
        blocks: [
          { _tag: "image", file: "pub/img" },
          { _tag: "link", file: "https://not-a-file" },
          { _tag: "note", file: "[x](/storage/files/pub/n)" }
        ]
      })
    ).toEqual([["blocks.0.file", "pub/img"], ["blocks.2.file", "/storage/files/pub/n"]])
  })

  it("a value matching no member of a union is walked through every member (over-report, never hide)", () => {
    const A = Schema.Struct({ kind: Schema.Literal("a"), file: FileRefs.UploadedFile })
    const B = Schema.Struct({ kind: Schema.Literal("b"), other: FileRefs.UploadedFile })
    const S = Schema.Union(A, B)
    expect(found(S, { kind: "c", file: "pub/f", other: "pub/o" } as never)).toEqual([["file", "pub/f"], [
      "other",
      "pub/o"
    ]])
  })

  it("refinements, annotated or not", () => {
    const S = Schema.Struct({
      outer: Schema.NonEmptyString.pipe(FileRefs.uploadedFile()),
      inner: FileRefs.UploadedFile.pipe(Schema.maxLength(100)),
      arr: FileRefs.UploadedFiles.pipe(Schema.maxItems(3))
    })
    expect(found(S, { outer: "pub/o", inner: "pub/i", arr: ["pub/a"] }))
      .toEqual([["outer", "pub/o"], ["inner", "pub/i"], ["arr.0", "pub/a"]])
  })

  it("transformations are read on their type side, annotations on them included", () => {
    const S = Schema.Struct({
      trimmed: Schema.Trim.pipe(FileRefs.uploadedFile()),
      fromJson: Schema.parseJson(Schema.Struct({ file: FileRefs.UploadedFile })),
      maybe: Schema.OptionFromNullOr(Schema.String).pipe(FileRefs.uploadedFile()),
      option: Schema.Option(FileRefs.UploadedFile),
      optionSelf: Schema.OptionFromSelf(FileRefs.UploadedFile)
    })
    const value = {
      trimmed: "pub/t",
      fromJson: { file: "pub/j" },
      maybe: Option.some("pub/m"),
      option: Option.some("pub/o"),
      optionSelf: Option.none()
    }
    expect(found(S, value)).toEqual([["trimmed", "pub/t"], ["fromJson.file", "pub/j"], ["maybe", "pub/m"], [
      "option",
      "pub/o"
    ]])
  })

  it("renamed and defaulted keys keep the annotations of their transforming schemas", () => {
    const S = Schema.Struct({
      renamed: Schema.propertySignature(Schema.Trim.pipe(FileRefs.uploadedFile())).pipe(Schema.fromKey("file_key")),
      defaulted: Schema.optionalWith(Schema.Trim.pipe(FileRefs.uploadedFile()), { default: () => "" }),
      plain: FileRefs.UploadedFile
    })
    const value = Schema.decodeUnknownSync(S)({ file_key: " pub/r ", defaulted: "pub/d", plain: "pub/p" })
    expect(found(S, value)).toEqual([["renamed", "pub/r"], ["defaulted", "pub/d"], ["plain", "pub/p"]])
  })

  it("Schema.Class, TaggedClass and extended classes, nested", () => {
    class Avatar extends Schema.TaggedClass<Avatar>()("Avatar", { file: Schema.Trim.pipe(FileRefs.uploadedFile()) }) {}
    class Person extends Schema.Class<Person>("Person")({
      name: Schema.String,
      avatar: Schema.optional(Avatar)
    }) {}
    class Employee extends Person.extend<Employee>("Employee")({ badge: FileRefs.UploadedFile }) {}
    const S = Schema.Struct({ people: Schema.Array(Schema.Union(Employee, Person)) })
    const value = {
      people: [
        new Person({ name: "a", avatar: new Avatar({ file: "pub/a" }) }),
        new Employee({ name: "b", badge: "pub/badge" }),
        new Person({ name: "c" })
      ]
    }
    expect(found(S, value)).toEqual([["people.0.avatar.file", "pub/a"], ["people.1.badge", "pub/badge"]])
    expect(found(Person, new Person({ name: "x", avatar: new Avatar({ file: "pub/x" }) })))
      .toEqual([["avatar.file", "pub/x"]])
    expect(found(Schema.typeSchema(Employee), new Employee({ name: "y", badge: "pub/y" }))).toEqual([[
      "badge",
      "pub/y"
    ]])
  })

  it("tuples: elements, rest and post-rest elements", () => {
    const S = Schema.Tuple([Schema.String, FileRefs.UploadedFile], FileRefs.UploadedFile, Schema.String)
    expect(found(S, ["x", "pub/1", "pub/r1", "pub/r2", "plain"])).toEqual([["1", "pub/1"], ["2", "pub/r1"], [
      "3",
      "pub/r2"
    ]])
    expect(found(S, ["x", "pub/1", "plain"])).toEqual([["1", "pub/1"]])
  })

  it("Effect containers: Chunk, ReadonlySet, HashSet, ReadonlyMap, HashMap", () => {
    const S = Schema.Struct({
      chunk: Schema.Chunk(FileRefs.UploadedFile),
      set: Schema.ReadonlySet(FileRefs.UploadedFile),
      hashSet: Schema.HashSetFromSelf(FileRefs.UploadedFile),
      map: Schema.ReadonlyMap({ key: Schema.String, value: FileRefs.UploadedFile }),
      hashMap: Schema.HashMapFromSelf({ key: Schema.String, value: FileRefs.UploadedFile })
    })
    const value = Schema.decodeUnknownSync(Schema.typeSchema(S))({
      chunk: Chunk.make("pub/c1", "pub/c2"),
      set: new Set(["pub/s"]),
      hashSet: Schema.decodeSync(Schema.HashSet(Schema.String))(["pub/h"]),
      map: new Map([["k", "pub/m"]]),
      hashMap: HashMap.make(["hk", "pub/hm"])
    })
    expect(found(S, value)).toEqual([
      ["chunk.0", "pub/c1"],
      ["chunk.1", "pub/c2"],
      ["set.0", "pub/s"],
      ["hashSet.0", "pub/h"],
      ["map.k", "pub/m"],
      ["hashMap.hk", "pub/hm"]
    ])
  })

  it("an annotation on a property signature is honoured", () => {
    const S = Schema.Struct({
      file: Schema.propertySignature(Schema.String).annotations({
        [FileRefs.FileRefAnnotationId]: { kind: "uploaded_file", attributes: { on: "ps" } }
      })
    })
    expect(FileRefs.extract(S, { file: "pub/ps" })).toEqual([
      { kind: "uploaded_file", value: "pub/ps", path: ["file"], attributes: { on: "ps" } }
    ])
  })
})

describe("FileRefs.extract: recursion", () => {
  interface Category {
    readonly name: string
    readonly icon?: string | undefined
    readonly children: ReadonlyArray<Category>
  }
  const Category: Schema.Schema<Category> = Schema.Struct({
    name: Schema.String,
    icon: Schema.optional(FileRefs.UploadedFile),
    children: Schema.Array(Schema.suspend((): Schema.Schema<Category> => Category))
  })

  it("walks a recursive schema as deep as the value goes", () => {
    const tree: Category = {
      name: "root",
      icon: "pub/root",
      children: [
        { name: "a", icon: "pub/a", children: [{ name: "a1", icon: "pub/a1", children: [] }] },
        { name: "b", children: [] }
      ]
    }
    expect(found(Category, tree)).toEqual([
      ["icon", "pub/root"],
      ["children.0.icon", "pub/a"],
      ["children.0.children.0.icon", "pub/a1"]
    ])
  })

  it("never enters a cyclic value twice", () => {
    const root = { name: "root", icon: "pub/root", children: [] as Array<Category> }
    root.children.push(root)
    expect(found(Category, root)).toEqual([["icon", "pub/root"]])
  })

  it("a recursive schema without references is empty and walks nothing", () => {
    interface Node {
      readonly children: ReadonlyArray<Node>
    }
    const Node: Schema.Schema<Node> = Schema.Struct({
      children: Schema.Array(Schema.suspend((): Schema.Schema<Node> => Node))
    })
    expect(FileRefs.extractor(Node).isEmpty).toBe(true)
    expect(FileRefs.extractor(Category).isEmpty).toBe(false)
  })

  it("mutually recursive classes", () => {
    class Folder extends Schema.Class<Folder>("Folder")({
      cover: Schema.optional(FileRefs.UploadedFile),
      items: Schema.Array(Schema.suspend((): Schema.Schema<Item> => Item))
    }) {}
    class Item extends Schema.Class<Item>("Item")({
      file: FileRefs.UploadedFile,
      sub: Schema.optional(Schema.suspend((): Schema.Schema<Folder> => Folder))
    }) {}
    const value = new Folder({
      cover: "pub/f",
      items: [new Item({ file: "pub/i1", sub: new Folder({ items: [new Item({ file: "pub/i2" })] }) })]
    })
    expect(found(Folder, value)).toEqual([["cover", "pub/f"], ["items.0.file", "pub/i1"], [
      "items.0.sub.items.0.file",
      "pub/i2"
    ]])
  })
})

describe("FileRefs on a document model", () => {
  const doc = new Document({
    title: "Trip",
    cover: "pub/cover.png",
    gallery: ["pub/g1.png", " pub/g2.png ", ""],
    attachments: { itinerary: "priv/it.pdf", empty: "" },
    body: `<p><img src="${url("pub/body.png")}"> <a href='${
      url("priv/it.pdf")
    }'>it</a> <img src="https://cdn/x.png"></p>`,
    notes: `![n](${url("pub/notes.png")} "Notes") [ext](https://example.com)`,
    author: { name: "Alice", avatar: "pub/avatar.png" }
  })

  it("finds every reference with its kind, path and attributes", () => {
    const refs = FileRefs.extract(Document, doc)
    expect(refs.map((r) => [r.kind, r.path.join("."), r.value, r.attributes.category])).toEqual([
      ["uploaded_file", "cover", "pub/cover.png", undefined],
      ["uploaded_file", "gallery.0", "pub/g1.png", "gallery"],
      ["uploaded_file", "gallery.1", "pub/g2.png", "gallery"],
      ["uploaded_file", "attachments.itinerary", "priv/it.pdf", undefined],
      ["rich_text", "body", url("pub/body.png"), undefined],
      ["rich_text", "body", url("priv/it.pdf"), undefined],
      ["rich_text", "body", "https://cdn/x.png", undefined],
      ["markdown", "notes", url("pub/notes.png"), undefined],
      ["markdown", "notes", "https://example.com", undefined],
      ["uploaded_file", "author.avatar", "pub/avatar.png", undefined]
    ])
  })

  it("keysOf maps URLs through the mapper and de-duplicates", () => {
    const refs = FileRefs.extract(Document, doc)
    expect(FileRefs.keysOf(refs, proxyUrlKeyMapper)).toEqual([
      "pub/cover.png",
      "pub/g1.png",
      "pub/g2.png",
      "priv/it.pdf",
      "pub/body.png",
      "pub/notes.png",
      "pub/avatar.png"
    ])
    // The identity mapper keeps proxy paths verbatim and still rejects schemes.
    expect(FileRefs.keysOf(refs, identityUrlKeyMapper)).toContain(url("pub/body.png"))
    expect(FileRefs.keysOf(refs, identityUrlKeyMapper)).not.toContain("https://cdn/x.png")
  })

  it("the extractor is compiled once per schema", () => {
    expect(FileRefs.extractor(Document)).toBe(FileRefs.extractor(Document))
    expect(FileRefs.extractor(Author).isEmpty).toBe(false)
    expect(FileRefs.extractor(Schema.Struct({ a: Schema.String })).isEmpty).toBe(true)
    expect(FileRefs.extract(Schema.Struct({ a: Schema.String }), { a: "pub/x" })).toEqual([])
  })

  it("extract is dual", () => {
    expect(FileRefs.extract(doc)(Document)).toEqual(FileRefs.extract(Document, doc))
  })
})
