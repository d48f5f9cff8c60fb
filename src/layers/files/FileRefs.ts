/**
 * File references declared on Effect Schemas, and their extraction from
 * values.
 *
 * A field of a business model holds files in one of three ways: the key of
 * an uploaded file (or a list or record of keys), rich text (HTML) with
 * `<img src>`, `<a href>`, … pointing at files, or Markdown with `![](…)`
 * and `[](…)` links. Annotate the field's schema and the `Files` facade
 * finds every reference in a value of the model:
 *
 * ```ts
 * import { Schema } from "effect"
 * import { FileRefs } from "effect-storage"
 *
 * const Author = Schema.Struct({
 *   name: Schema.String,
 *   avatar: Schema.optional(FileRefs.UploadedFile)
 * })
 *
 * class Document extends Schema.Class<Document>("Document")({
 *   title: Schema.String,
 *   cover: Schema.NullOr(FileRefs.UploadedFile),
 *   gallery: Schema.Array(Schema.String).pipe(FileRefs.uploadedFile({ category: "gallery" })),
 *   attachments: Schema.Record({ key: Schema.String, value: FileRefs.UploadedFile }),
 *   body: FileRefs.RichText,
 *   notes: Schema.String.pipe(FileRefs.markdown()),
 *   author: Author
 * }) {}
 *
 * FileRefs.extract(Document, doc) // [{ kind: "uploaded_file", value: "pub/…", path: ["cover"], … }, …]
 * ```
 *
 * This is the Effect rendering of the Go module's struct tags
 * (`meta:"uploaded_file"`, `meta:"rich_text"`, `meta:"markdown"`,
 * `meta:"dive"`): an annotation under `FileRefAnnotationId` on any schema
 * node, found by walking the schema's AST.
 *
 * **Where the annotation may sit.** On the field's schema, or on anything
 * the field's schema is made of: the annotated node's value is read as
 *
 * - a `string`: one reference (trimmed, skipped when empty);
 * - an array: each string element (trimmed, empty ones skipped, other
 *   elements ignored);
 * - a plain object (a `Schema.Record`): each string value, the same way;
 * - an `Option` of one of these (`Schema.OptionFromNullOr(…)` annotated
 *   as a whole): its value when `Some`.
 *
 * Any other value is silently ignored, as in the Go module. So both
 * `Schema.Array(FileRefs.UploadedFile)` (each element annotated) and
 * `Schema.Array(Schema.String).pipe(FileRefs.uploadedFile())` (the array
 * annotated) work, and so do records. The outermost annotation on a path
 * wins: nothing below an annotated node is examined. For `richText` and
 * `markdown`, each string is scanned for URLs (see `UrlExtractor`); URLs are
 * trimmed and de-duplicated per string.
 *
 * **What is walked.** Nested structs are entered automatically, at any
 * depth, with no marker (the Go module's `dive` is implied): `Struct` /
 * `TypeLiteral` property signatures (optional ones too), `Schema.Class`,
 * `TaggedClass` and other classes (through their fields, so annotations on
 * transforming fields such as `Schema.Trim` survive), index signatures
 * (`Schema.Record`), arrays and tuples (`elements`, rest and post-rest
 * elements), unions (`NullOr`, `UndefinedOr`, tagged unions: a value is
 * walked through the first member it is an instance of; if it matches none,
 * through every member, so a malformed value over-reports rather than
 * hides a file), refinements, transformations (the type side, since values
 * are the decoded values the app holds; renamed keys are followed), the
 * Effect containers `Option`, `Chunk`, `List`, `ReadonlySet`, `HashSet`,
 * `SortedSet` (elements), `ReadonlyMap` and `HashMap` (values), and
 * `Schema.suspend` (recursive schemas are walked as deep as the value goes;
 * a schema cycle is compiled once, and a cyclic value is never entered
 * twice on the same path).
 *
 * One limit: where Effect keeps only the type side of a schema, an
 * annotation on a *transforming* schema (e.g. `Schema.Trim.pipe(…)`) is
 * lost with the transformation. That happens to the elements of the Effect
 * containers listed above (`Schema.Set(Schema.Trim.pipe(…))`) and to the
 * fields of `Schema.typeSchema(SomeClass)`; annotate a non-transforming
 * schema (`Schema.String`) there, or the container field itself. Plain
 * structs, classes, arrays, records and unions keep every annotation.
 *
 * @since 0.1.0
 */
import { dual } from "effect/Function"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { extractHtmlUrls, extractMarkdownUrls } from "./UrlExtractor.js"
import type { UrlKeyMapperShape } from "./UrlKeyMapper.js"

/**
 * The annotation key of a file reference.
 *
 * @since 0.1.0
 * @category annotations
 */
export const FileRefAnnotationId: unique symbol = Symbol.for("effect-storage/FileRef")

/**
 * @since 0.1.0
 * @category annotations
 */
export type FileRefAnnotationId = typeof FileRefAnnotationId

/**
 * How a field holds files: `uploaded_file` (object keys), `rich_text`
 * (HTML whose URLs point at files) or `markdown` (Markdown whose link and
 * image URLs point at files).
 *
 * @since 0.1.0
 * @category models
 */
export type FileRefKind = "uploaded_file" | "rich_text" | "markdown"

/**
 * Free-form attributes of a reference (the Go module's
 * `uploaded_file=category:gallery public:true`), carried on every `FileRef`
 * extracted from the field.
 *
 * @since 0.1.0
 * @category models
 */
export type FileRefAttributes = Readonly<Record<string, string>>

/**
 * The value of a `FileRefAnnotationId` annotation.
 *
 * @since 0.1.0
 * @category annotations
 */
export interface FileRefAnnotation {
  readonly kind: FileRefKind
  readonly attributes: FileRefAttributes
}

/**
 * One reference found in a value.
 *
 * `value` is trimmed and non-empty: an object key for `uploaded_file`, a URL
 * for `rich_text` and `markdown` (the `UrlKeyMapper` turns it into a key, or
 * drops it; see `keysOf`). `path` leads from the root value to the string
 * the reference was found in (`["gallery", 2]`, `["author", "avatar"]`).
 *
 * @since 0.1.0
 * @category models
 */
export interface FileRef {
  readonly kind: FileRefKind
  readonly value: string
  readonly path: ReadonlyArray<PropertyKey>
  readonly attributes: FileRefAttributes
}

/**
 * What an annotated schema may hold: a string, an array or record of
 * strings, an `Option` of those, possibly `null` / `undefined`.
 *
 * @since 0.1.0
 * @category models
 */
export type FileRefValue =
  | string
  | ReadonlyArray<string>
  | { readonly [key: string]: string }
  | Option.Option<string | ReadonlyArray<string> | { readonly [key: string]: string }>
  | null
  | undefined

/**
 * A schema that may carry a file reference annotation.
 *
 * @since 0.1.0
 * @category models
 */
export type Annotatable = Schema.Annotable.All & { readonly Type: FileRefValue }

/**
 * Annotates a schema as a file reference of `kind`.
 *
 * @since 0.1.0
 * @category annotations
 */
export const annotate =
  (kind: FileRefKind, attributes: FileRefAttributes = {}) =>
  <S extends Annotatable>(self: S): Schema.Annotable.Self<S> =>
    self.annotations({ [FileRefAnnotationId]: { kind, attributes: { ...attributes } } satisfies FileRefAnnotation })

/**
 * Marks a schema as holding uploaded files: a key, or an array or record
 * of keys (`meta:"uploaded_file"`).
 *
 * ```ts
 * Schema.String.pipe(FileRefs.uploadedFile())
 * FileRefs.uploadedFile(Schema.Array(Schema.String), { category: "gallery" })
 * ```
 *
 * @since 0.1.0
 * @category annotations
 */
export const uploadedFile: {
  (attributes?: FileRefAttributes): <S extends Annotatable>(self: S) => Schema.Annotable.Self<S>
  <S extends Annotatable>(self: S, attributes?: FileRefAttributes): Schema.Annotable.Self<S>
} = dual(
  (args) => Schema.isSchema(args[0]),
  <S extends Annotatable>(self: S, attributes?: FileRefAttributes) => annotate("uploaded_file", attributes)(self)
)

/**
 * Marks a schema as holding HTML whose `img`, `a`, `video`, `audio`,
 * `source`, `embed` and `object` URLs point at files (`meta:"rich_text"`).
 *
 * @since 0.1.0
 * @category annotations
 */
export const richText: {
  (attributes?: FileRefAttributes): <S extends Annotatable>(self: S) => Schema.Annotable.Self<S>
  <S extends Annotatable>(self: S, attributes?: FileRefAttributes): Schema.Annotable.Self<S>
} = dual(
  (args) => Schema.isSchema(args[0]),
  <S extends Annotatable>(self: S, attributes?: FileRefAttributes) => annotate("rich_text", attributes)(self)
)

/**
 * Marks a schema as holding Markdown whose link and image URLs point at
 * files (`meta:"markdown"`).
 *
 * @since 0.1.0
 * @category annotations
 */
export const markdown: {
  (attributes?: FileRefAttributes): <S extends Annotatable>(self: S) => Schema.Annotable.Self<S>
  <S extends Annotatable>(self: S, attributes?: FileRefAttributes): Schema.Annotable.Self<S>
} = dual(
  (args) => Schema.isSchema(args[0]),
  <S extends Annotatable>(self: S, attributes?: FileRefAttributes) => annotate("markdown", attributes)(self)
)

/**
 * The key of an uploaded file: `Schema.String` annotated with
 * `uploadedFile()`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UploadedFile = Schema.String.pipe(uploadedFile())

/**
 * Keys of uploaded files: `Schema.Array(UploadedFile)`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UploadedFiles = Schema.Array(UploadedFile)

/**
 * HTML pointing at files: `Schema.String` annotated with `richText()`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RichText = Schema.String.pipe(richText())

/**
 * Markdown pointing at files: `Schema.String` annotated with `markdown()`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Markdown = Schema.String.pipe(markdown())

/**
 * The annotation of a schema node, if any.
 *
 * @since 0.1.0
 * @category annotations
 */
export const getFileRefAnnotation: (annotated: SchemaAST.Annotated) => Option.Option<FileRefAnnotation> = SchemaAST
  .getAnnotation<FileRefAnnotation>(FileRefAnnotationId)

/**
 * The file references of a schema, compiled once: walking a value then
 * touches only the parts of it that can hold references.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileRefExtractor<A> {
  /** Whether the schema declares no reference at all (`refs` then always answers `[]`). */
  readonly isEmpty: boolean
  /** Every reference in `value`, in schema order; `null` and `undefined` have none. */
  readonly refs: (value: A | null | undefined) => ReadonlyArray<FileRef>
}

/**
 * Compiles the schema's references. The result is cached per schema (its
 * AST), so calling this again for the same schema is a map lookup.
 *
 * @since 0.1.0
 * @category extraction
 */
export const extractor = <A, I, R>(schema: Schema.Schema<A, I, R>): FileRefExtractor<A> => {
  const cached = cache.get(schema.ast)
  if (cached !== undefined) return cached as FileRefExtractor<A>
  const walk = new Compiler().compile(schema.ast)
  const made: FileRefExtractor<A> = {
    isEmpty: walk === undefined,
    refs: walk === undefined ? () => [] : (value) => {
      if (value == null) return []
      const out: Out = { refs: [], ancestors: new Set() }
      walk(value, [], out)
      return out.refs
    }
  }
  cache.set(schema.ast, made)
  return made
}

/**
 * Every reference in `value` (see `extractor`).
 *
 * @since 0.1.0
 * @category extraction
 */
export const extract: {
  <A>(value: A | null | undefined): <I, R>(schema: Schema.Schema<A, I, R>) => ReadonlyArray<FileRef>
  <A, I, R>(schema: Schema.Schema<A, I, R>, value: A | null | undefined): ReadonlyArray<FileRef>
} = dual(
  2,
  <A, I, R>(schema: Schema.Schema<A, I, R>, value: A | null | undefined) => extractor(schema).refs(value)
)

/**
 * The object keys of references, each once, in order: `uploaded_file`
 * values as they are, `rich_text` and `markdown` URLs through `mapper`
 * (a rejected URL is dropped).
 *
 * @since 0.1.0
 * @category extraction
 */
export const keysOf = (refs: Iterable<FileRef>, mapper: UrlKeyMapperShape): ReadonlyArray<string> => {
  const keys = new Set<string>()
  for (const ref of refs) {
    if (ref.kind === "uploaded_file") {
      keys.add(ref.value)
    } else {
      const key = mapper.urlToKey(ref.value)
      if (Option.isSome(key) && key.value !== "") keys.add(key.value)
    }
  }
  return Array.from(keys)
}

// ---- internal ----

type Path = ReadonlyArray<PropertyKey>

interface Out {
  readonly refs: Array<FileRef>
  /** Objects on the path being walked: a cyclic value is not entered again. */
  readonly ancestors: Set<object>
}

type Walk = (value: unknown, path: Path, out: Out) => void

const cache = new WeakMap<SchemaAST.AST, FileRefExtractor<any>>()

/** Walks `value` with `body` unless it is already being walked higher up. */
const enter = (value: object, out: Out, body: () => void) => {
  if (out.ancestors.has(value)) return
  out.ancestors.add(value)
  try {
    body()
  } finally {
    out.ancestors.delete(value)
  }
}

const isPlainObject = (value: unknown): value is Readonly<Record<string, unknown>> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** The walk of an annotated node: strings, arrays and records of strings, options of those. */
const leaf = (annotation: FileRefAnnotation): Walk => {
  const { attributes, kind } = annotation
  const emit = (text: string, path: Path, out: Out) => {
    if (kind === "uploaded_file") {
      const value = text.trim()
      if (value !== "") out.refs.push({ kind, value, path, attributes })
    } else {
      const urls = kind === "rich_text" ? extractHtmlUrls(text) : extractMarkdownUrls(text)
      for (const value of urls) out.refs.push({ kind, value, path, attributes })
    }
  }
  const walk: Walk = (value, path, out) => {
    if (typeof value === "string") {
      emit(value, path, out)
    } else if (Option.isOption(value)) {
      if (Option.isSome(value)) walk(value.value, path, out)
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (typeof item === "string") emit(item, [...path, i], out)
      })
    } else if (isPlainObject(value)) {
      for (const key of Object.keys(value)) {
        const item = value[key]
        if (typeof item === "string") emit(item, [...path, key], out)
      }
    }
  }
  return walk
}

/** Effect containers walked through their type parameters. */
const elementContainers = new Set([
  "effect/Chunk",
  "effect/Chunk.NonEmptyChunk",
  "effect/List",
  "ReadonlySet",
  "effect/HashSet",
  "effect/SortedSet"
])

const typeConstructorOf = (ast: SchemaAST.AST): string | undefined => {
  const tc = ast.annotations[SchemaAST.TypeConstructorAnnotationId]
  return Predicate.hasProperty(tc, "_tag") && typeof tc._tag === "string" ? tc._tag : undefined
}

const isKnownContainer = (ast: SchemaAST.Declaration) => {
  const tc = typeConstructorOf(ast)
  return tc !== undefined && (tc === "effect/Option" || tc === "ReadonlyMap" || tc === "effect/HashMap" ||
    elementContainers.has(tc))
}

const nonEmpty = <A>(walks: ReadonlyArray<A | undefined>): Array<A> => walks.filter((w): w is A => w !== undefined)

/** Nested suspensions compiled at most (see `Compiler.suspend`). */
const maxSuspendDepth = 64
/** Nodes on the `hasRefs` stack at most. */
const maxVisitDepth = 4096

class Compiler {
  /** Suspended schemas being (or already) compiled: a cycle is compiled once. */
  private readonly suspended = new Map<SchemaAST.AST, { walk: Walk | undefined }>()
  /** Whether a node declares references, for pruning. */
  private readonly hasRefsMemo = new Map<SchemaAST.AST, boolean>()
  private suspendDepth = 0

  compile(ast: SchemaAST.AST): Walk | undefined {
    const annotation = getFileRefAnnotation(ast)
    if (Option.isSome(annotation)) return leaf(annotation.value)
    switch (ast._tag) {
      case "TypeLiteral":
        return this.typeLiteral(ast)
      case "TupleType":
        return this.tuple(ast)
      case "Union":
        return this.union(ast)
      case "Refinement":
        return this.compile(ast.from)
      case "Suspend":
        return this.suspend(ast)
      case "Declaration":
        return this.declaration(ast)
      case "Transformation":
        return this.transformation(ast)
      default:
        return undefined
    }
  }

  /**
   * Whether any node under `ast` carries an annotation (without compiling).
   * `visiting` cuts schema cycles: a cycle adds nothing its entry does not.
   */
  private hasRefs(ast: SchemaAST.AST, visiting: Set<SchemaAST.AST> = new Set()): boolean {
    const memo = this.hasRefsMemo.get(ast)
    if (memo !== undefined) return memo
    if (visiting.has(ast)) return false
    visiting.add(ast)
    const any = (asts: ReadonlyArray<SchemaAST.AST>) => asts.some((child) => this.hasRefs(child, visiting))
    let found: boolean
    if (Option.isSome(getFileRefAnnotation(ast))) {
      found = true
    } else {
      switch (ast._tag) {
        case "TypeLiteral":
          found = ast.propertySignatures.some((ps) => Option.isSome(getFileRefAnnotation(ps))) ||
            any(ast.propertySignatures.map((ps) => ps.type)) || any(ast.indexSignatures.map((is) => is.type))
          break
        case "TupleType":
          found = any(ast.elements.map((e) => e.type)) || any(ast.rest.map((r) => r.type))
          break
        case "Union":
          found = any(ast.types)
          break
        case "Refinement":
          found = this.hasRefs(ast.from, visiting)
          break
        case "Suspend":
          found = visiting.size < maxVisitDepth && this.hasRefs(ast.f(), visiting)
          break
        case "Declaration":
          found = any(Option.toArray(SchemaAST.getSurrogateAnnotation(ast))) || any(ast.typeParameters)
          break
        case "Transformation":
          found = this.hasRefs(ast.from, visiting) || this.hasRefs(ast.to, visiting)
          break
        default:
          found = false
      }
    }
    visiting.delete(ast)
    // A node found false while a cycle was open may be true later; only positives are final.
    if (found || visiting.size === 0) this.hasRefsMemo.set(ast, found)
    return found
  }

  private propertyWalk(ps: SchemaAST.PropertySignature): Walk | undefined {
    const annotation = getFileRefAnnotation(ps)
    return Option.isSome(annotation) ? leaf(annotation.value) : this.compile(ps.type)
  }

  /**
   * A struct's properties and index signatures. `from` is the encoded
   * struct of a key-transforming struct: a property whose type side lost
   * its annotation (Effect keeps only the type side of a transformed
   * property) falls back to its encoded property, found through `renames`.
   */
  private typeLiteral(
    ast: SchemaAST.TypeLiteral,
    from?: SchemaAST.TypeLiteral,
    renames?: ReadonlyMap<PropertyKey, PropertyKey>
  ): Walk | undefined {
    const fromProps = new Map(from?.propertySignatures.map((ps) => [ps.name, ps]))
    const props = nonEmpty(ast.propertySignatures.map((ps) => {
      let walk = this.propertyWalk(ps)
      const source = fromProps.get(renames?.get(ps.name) ?? ps.name)
      if (walk === undefined && source !== undefined) walk = this.propertyWalk(source)
      return walk === undefined ? undefined : { name: ps.name, walk }
    }))
    const declared = new Set<PropertyKey>(ast.propertySignatures.map((ps) => ps.name))
    const indexes = nonEmpty(ast.indexSignatures.map((is) => {
      const walk = this.compile(is.type)
      if (walk === undefined) return undefined
      const parameter = SchemaAST.typeAST(is.parameter)
      const symbols = isSymbolParameter(parameter)
      const accepts = ParseResult.is(Schema.make(parameter))
      return { walk, symbols, accepts }
    }))
    if (props.length === 0 && indexes.length === 0) return undefined
    return (value, path, out) => {
      if (typeof value !== "object" || value === null) return
      enter(value, out, () => {
        const record = value as Readonly<Record<PropertyKey, unknown>>
        for (const { name, walk } of props) walk(record[name], [...path, name], out)
        for (const { accepts, symbols, walk } of indexes) {
          const keys: ReadonlyArray<PropertyKey> = symbols ? Object.getOwnPropertySymbols(value) : Object.keys(value)
          for (const key of keys) {
            if (!declared.has(key) && accepts(key)) walk(record[key], [...path, key], out)
          }
        }
      })
    }
  }

  private tuple(ast: SchemaAST.TupleType): Walk | undefined {
    const elements = ast.elements.map((e) => this.compile(e.type))
    const [head, ...tail] = ast.rest.map((r) => this.compile(r.type))
    if (nonEmpty(elements).length === 0 && head === undefined && nonEmpty(tail).length === 0) return undefined
    const fixed = elements.length
    return (value, path, out) => {
      if (!Array.isArray(value)) return
      enter(value, out, () => {
        const postRest = Math.max(fixed, value.length - tail.length)
        value.forEach((item, i) => {
          const walk = i < fixed ? elements[i] : i < postRest ? head : tail[i - postRest]
          if (walk !== undefined) walk(item, [...path, i], out)
        })
      })
    }
  }

  private union(ast: SchemaAST.Union): Walk | undefined {
    const members = ast.types.map((type) => ({ type, walk: this.compile(type) }))
    const candidates = nonEmpty(members.map((m) => m.walk))
    if (candidates.length === 0) return undefined
    // `NullOr(X)`, `optional(X)`, …: every walk checks the shape it reads
    // and ignores null and undefined, so no guard is needed.
    if (candidates.length === 1 && members.every((m) => m.walk !== undefined || isNullish(m.type))) {
      return candidates[0]
    }
    const guarded = members.map((m) => ({ walk: m.walk, is: ParseResult.is(Schema.make(m.type)) }))
    return (value, path, out) => {
      const member = guarded.find((m) => m.is(value))
      if (member !== undefined) return member.walk?.(value, path, out)
      for (const walk of candidates) walk(value, path, out)
    }
  }

  private suspend(ast: SchemaAST.Suspend): Walk | undefined {
    const known = this.suspended.get(ast)
    if (known !== undefined) return (value, path, out) => known.walk?.(value, path, out)
    // A suspension that builds a new schema on every call (a `typeAST` of a
    // recursive schema) never closes a cycle by identity: bound the depth.
    if (this.suspendDepth >= maxSuspendDepth) return undefined
    const target = ast.f()
    const knownTarget = this.suspended.get(target)
    if (knownTarget !== undefined) return (value, path, out) => knownTarget.walk?.(value, path, out)
    if (!this.hasRefs(target)) return undefined
    const cell: { walk: Walk | undefined } = { walk: undefined }
    this.suspended.set(ast, cell)
    this.suspended.set(target, cell)
    this.suspendDepth++
    try {
      cell.walk = this.compile(target)
    } finally {
      this.suspendDepth--
    }
    return cell.walk
  }

  private declaration(ast: SchemaAST.Declaration): Walk | undefined {
    const surrogate = SchemaAST.getSurrogateAnnotation(ast)
    if (Option.isSome(surrogate)) return this.compile(surrogate.value)
    const tc = typeConstructorOf(ast)
    if (tc === "effect/Option") {
      const walk = ast.typeParameters[0] && this.compile(ast.typeParameters[0])
      if (walk === undefined) return undefined
      return (value, path, out) => {
        if (Option.isOption(value) && Option.isSome(value)) walk(value.value, path, out)
      }
    }
    if (tc !== undefined && elementContainers.has(tc)) {
      const walk = ast.typeParameters[0] && this.compile(ast.typeParameters[0])
      if (walk === undefined) return undefined
      return (value, path, out) => {
        if (!Predicate.isIterable(value) || typeof value !== "object") return
        enter(value, out, () => {
          let i = 0
          for (const item of value) walk(item, [...path, i++], out)
        })
      }
    }
    if (tc === "ReadonlyMap" || tc === "effect/HashMap") {
      const walk = ast.typeParameters[1] && this.compile(ast.typeParameters[1])
      if (walk === undefined) return undefined
      return (value, path, out) => {
        const entries: Iterable<readonly [unknown, unknown]> | undefined = value instanceof Map
          ? value.entries()
          : HashMap.isHashMap(value)
          ? (value as HashMap.HashMap<unknown, unknown>)
          : undefined
        if (entries === undefined) return
        enter(value as object, out, () => {
          for (const [key, item] of entries) {
            walk(item, [...path, typeof key === "string" || typeof key === "number" ? key : String(key)], out)
          }
        })
      }
    }
    return undefined
  }

  private transformation(ast: SchemaAST.Transformation): Walk | undefined {
    const { from, to } = ast
    // A struct with renamed or defaulted keys: the type side, property by
    // property, falling back to the encoded property (see typeLiteral).
    if (
      to._tag === "TypeLiteral" && from._tag === "TypeLiteral" &&
      SchemaAST.isTypeLiteralTransformation(ast.transformation)
    ) {
      const renames = new Map<PropertyKey, PropertyKey>(
        ast.transformation.propertySignatureTransformations.map((pst) => [pst.to, pst.from])
      )
      return this.typeLiteral(to, from, renames)
    }
    if (to._tag === "Declaration") {
      // A class (or `Schema.Data`, …): its fields schema is `from`, with
      // every annotation intact; the type side (the surrogate) lost those on
      // transforming fields. Known containers keep to their type side.
      if (isKnownContainer(to)) return this.compile(to)
      return this.compile(from) ?? this.compile(to)
    }
    return this.compile(to)
  }
}

const isNullish = (ast: SchemaAST.AST): boolean =>
  ast._tag === "UndefinedKeyword" || ast._tag === "VoidKeyword" || (ast._tag === "Literal" && ast.literal === null)

const isSymbolParameter = (parameter: SchemaAST.AST): boolean => {
  let ast = parameter
  while (ast._tag === "Refinement") ast = ast.from
  return ast._tag === "SymbolKeyword"
}
