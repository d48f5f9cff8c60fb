import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { Files } from "../../src/layers/Files.js"
import * as FileRefs from "../../src/layers/files/FileRefs.js"
import { identityUrlKeyMapper } from "../../src/layers/files/UrlKeyMapper.js"
import * as SqlStores from "../../src/layers/sql/SqlStores.js"
import * as StorageMetrics from "../../src/layers/StorageMetrics.js"
import type { StorageEvent } from "../../src/schema/Events.js"
import { ClaimStore } from "../../src/services/ClaimStore.js"
import { StorageEvents } from "../../src/services/StorageEvents.js"
import { describeEachDialect } from "../support/databases.js"
import { makeClaim, unique } from "../support/fixtures.js"
import { Document, url } from "./documents.js"

/** Every event published, in order (not transactional: a rollback keeps them). */
class RecordedEvents
  extends Context.Tag("test/RecordedEvents")<RecordedEvents, Ref.Ref<ReadonlyArray<StorageEvent>>>()
{}

const recordingEvents = Layer.effectContext(Effect.map(
  Ref.make<ReadonlyArray<StorageEvent>>([]),
  (ref) =>
    Context.make(RecordedEvents, ref).pipe(
      Context.add(StorageEvents, StorageEvents.of({ publish: (event) => Ref.update(ref, (all) => [...all, event]) }))
    )
))

const alice = { id: "alice" }
const bob = { id: "bob" }

const failureTag = <A, E>(exit: Exit.Exit<A, E>): string | undefined =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? (exit.cause.error as { _tag: string })._tag : undefined

/** Fresh keys with uploaded claims of `owner`. */
const uploads = (n: number, owner = "alice") =>
  Effect.gen(function*() {
    const store = yield* ClaimStore
    const keys: Array<string> = []
    for (let i = 0; i < n; i++) {
      const claim = makeClaim({ status: "uploaded", createdBy: owner, key: `pub/2026/11/28/${unique("f")}.png` })
      yield* store.create(claim)
      keys.push(claim.key)
    }
    return keys
  })

/** "uploaded", "pending" or "gone" for each key. */
const claimStates = (keys: ReadonlyArray<string>) =>
  Effect.forEach(keys, (key) =>
    ClaimStore.pipe(
      Effect.flatMap((store) => store.getByKey(key)),
      Effect.map((claim) => claim.status as string),
      Effect.catchTag("ClaimNotFound", () => Effect.succeed("gone"))
    ))

/** `key:reason` rows of the delete queue for these keys, sorted. */
const queued = (keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ object_key: string; reason: string }>`
      SELECT object_key, reason FROM sys_storage_pending_delete WHERE ${sql.in("object_key", keys)}`
    return rows.map((row) => `${row.object_key}:${row.reason}`).sort()
  })

/** Keys of the `FileClaimed` events about these keys, in publish order. */
const claimedEvents = (keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const events = yield* Ref.get(yield* RecordedEvents)
    return events.flatMap((event) =>
      event._tag === "storage.file.claimed" && keys.includes(event.key) ? [event.key] : []
    )
  })

const adoptedCount = Effect.map(Metric.value(StorageMetrics.claimsAdopted), (state) => state.count)

const sorted = (keys: ReadonlyArray<string>) => [...keys].sort()

describeEachDialect(
  "Files",
  (database) =>
    Files.Default.pipe(
      Layer.provideMerge(Layer.mergeAll(SqlStores.layer, recordingEvents)),
      Layer.provideMerge(database)
    ),
  (it) => {
    it.effect("onCreate adopts every key and publishes one FileClaimed per unique key", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const sql = yield* SqlClient.SqlClient
        const [a, b] = yield* uploads(2)
        const before = yield* adoptedCount
        yield* sql.withTransaction(files.onCreate(alice, [a!, ` ${b} `, a!, "", "  "]))
        assert.deepStrictEqual(yield* claimStates([a!, b!]), ["gone", "gone"])
        assert.deepStrictEqual(yield* claimedEvents([a!, b!]), [a, b])
        assert.strictEqual((yield* adoptedCount) - before, 2)
        assert.deepStrictEqual(yield* queued([a!, b!]), [])
      }))

    it.effect("onCreate with no keys does nothing, even for an anonymous principal", () =>
      Effect.gen(function*() {
        const files = yield* Files
        yield* files.onCreate({ id: "" }, [])
        yield* files.onCreate({ id: "anonymous" }, ["", "   "])
      }))

    it.effect("onCreate by an anonymous principal is AccessDenied and adopts nothing", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [a] = yield* uploads(1)
        for (const principal of [{ id: "" }, { id: "anonymous" }]) {
          assert.strictEqual(failureTag(yield* Effect.exit(files.onCreate(principal, [a!]))), "AccessDenied")
        }
        assert.deepStrictEqual(yield* claimStates([a!]), ["uploaded"])
        assert.deepStrictEqual(yield* claimedEvents([a!]), [])
      }))

    it.effect("onCreate with a missing, pending or foreign key is ClaimNotFound: nothing adopted, nothing published", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const store = yield* ClaimStore
        const [mine] = yield* uploads(1)
        const [foreign] = yield* uploads(1, "bob")
        const pending = makeClaim({ createdBy: "alice" })
        yield* store.create(pending)
        const before = yield* adoptedCount
        for (const bad of [`pub/${unique("missing")}`, pending.key, foreign!]) {
          const exit = yield* Effect.exit(files.onCreate(alice, [mine!, bad]))
          assert.strictEqual(failureTag(exit), "ClaimNotFound", bad)
        }
        assert.deepStrictEqual(yield* claimStates([mine!, pending.key, foreign!]), ["uploaded", "pending", "uploaded"])
        assert.deepStrictEqual(yield* claimedEvents([mine!, pending.key, foreign!]), [])
        assert.strictEqual((yield* adoptedCount) - before, 0)
        // An adopted key cannot be adopted again, by anyone.
        yield* files.onCreate(alice, [mine!])
        assert.strictEqual(failureTag(yield* Effect.exit(files.onCreate(alice, [mine!]))), "ClaimNotFound")
        assert.strictEqual(failureTag(yield* Effect.exit(files.onCreate(bob, [mine!]))), "ClaimNotFound")
      }))

    it.effect("onCreate joins the caller's transaction: a later failure rolls the adoption back", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const sql = yield* SqlClient.SqlClient
        const [a, b] = yield* uploads(2)
        const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
          yield* files.onCreate(alice, [a!, b!])
          assert.deepStrictEqual(yield* claimStates([a!, b!]), ["gone", "gone"])
          return yield* Effect.fail("insert failed" as const)
        })))
        assert.isTrue(Exit.isFailure(exit))
        assert.deepStrictEqual(yield* claimStates([a!, b!]), ["uploaded", "uploaded"])
        // Still adoptable.
        yield* sql.withTransaction(files.onCreate(alice, [a!, b!]))
        assert.deepStrictEqual(yield* claimStates([a!, b!]), ["gone", "gone"])
      }))

    it.effect("a failed onCreate inside a transaction leaves the transaction usable and the claims adoptable", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const sql = yield* SqlClient.SqlClient
        const [a] = yield* uploads(1)
        const missing = `pub/${unique("missing")}`
        yield* sql.withTransaction(Effect.gen(function*() {
          const exit = yield* Effect.exit(files.onCreate(alice, [a!, missing]))
          assert.strictEqual(failureTag(exit), "ClaimNotFound")
          // The partial adoption was undone by consumeMany's savepoint.
          assert.deepStrictEqual(yield* claimStates([a!]), ["uploaded"])
          yield* files.onCreate(alice, [a!])
        }))
        assert.deepStrictEqual(yield* claimStates([a!]), ["gone"])
        assert.deepStrictEqual(yield* claimedEvents([a!, missing]), [a])
      }))

    it.effect("onUpdate adopts the added keys, queues the dropped ones as replaced, keeps the others", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const sql = yield* SqlClient.SqlClient
        const [kept, dropped, added1, added2] = yield* uploads(4)
        yield* files.onCreate(alice, [kept!, dropped!])
        const before = yield* adoptedCount
        yield* sql.withTransaction(files.onUpdate(alice, [kept!, dropped!], [added2!, kept!, ` ${added1} `, added2!]))
        assert.deepStrictEqual(yield* claimStates([added1!, added2!]), ["gone", "gone"])
        assert.deepStrictEqual(yield* queued([kept!, dropped!, added1!, added2!]), [`${dropped}:replaced`])
        assert.deepStrictEqual(yield* claimedEvents([added1!, added2!, kept!, dropped!]), [
          kept,
          dropped,
          added2,
          added1
        ])
        assert.strictEqual((yield* adoptedCount) - before, 2)
      }))

    it.effect("onUpdate whose adoption fails queues nothing and publishes nothing", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [old, fresh] = yield* uploads(2)
        yield* files.onCreate(alice, [old!])
        const [foreign] = yield* uploads(1, "bob")
        const exit = yield* Effect.exit(files.onUpdate(alice, [old!], [fresh!, foreign!]))
        assert.strictEqual(failureTag(exit), "ClaimNotFound")
        assert.deepStrictEqual(yield* queued([old!, fresh!, foreign!]), [])
        assert.deepStrictEqual(yield* claimStates([fresh!, foreign!]), ["uploaded", "uploaded"])
        assert.deepStrictEqual(yield* claimedEvents([fresh!, foreign!]), [])
        const anonymous = yield* Effect.exit(files.onUpdate({ id: "" }, [old!], [fresh!]))
        assert.strictEqual(failureTag(anonymous), "AccessDenied")
        assert.deepStrictEqual(yield* queued([old!]), [])
      }))

    it.effect("onUpdate with the same keys is a no-op (order, duplicates and whitespace aside)", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [a, b] = yield* uploads(2)
        yield* files.onCreate(alice, [a!, b!])
        yield* Ref.set(yield* RecordedEvents, [])
        // Anonymous even: nothing to adopt, so nothing is checked.
        yield* files.onUpdate({ id: "anonymous" }, [a!, b!], [b!, ` ${a} `, a!, ""])
        yield* files.onUpdate(alice, [], [])
        assert.deepStrictEqual(yield* queued([a!, b!]), [])
        assert.deepStrictEqual(yield* claimedEvents([a!, b!]), [])
      }))

    it.effect("onUpdate from nothing is a create; to nothing queues everything as replaced", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [a, b] = yield* uploads(2)
        yield* files.onUpdate(alice, [], [a!, b!])
        assert.deepStrictEqual(yield* claimStates([a!, b!]), ["gone", "gone"])
        assert.deepStrictEqual(yield* claimedEvents([a!, b!]), [a, b])
        yield* files.onUpdate(alice, [a!, b!], [])
        assert.deepStrictEqual(yield* queued([a!, b!]), [`${a}:replaced`, `${b}:replaced`].sort())
      }))

    it.effect("onDelete queues every key as deleted, publishes nothing, and is idempotent", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const sql = yield* SqlClient.SqlClient
        const [a, b] = yield* uploads(2)
        yield* files.onCreate(alice, [a!, b!])
        yield* Ref.set(yield* RecordedEvents, [])
        yield* sql.withTransaction(files.onDelete([a!, ` ${b} `, a!, ""]))
        yield* files.onDelete([a!, b!])
        yield* files.onDelete([])
        assert.deepStrictEqual(yield* queued([a!, b!]), sorted([`${a}:deleted`, `${b}:deleted`]))
        assert.deepStrictEqual(yield* Ref.get(yield* RecordedEvents), [])
        // replaced and deleted are distinct jobs of one key.
        yield* files.onUpdate(alice, [a!], [])
        assert.deepStrictEqual(yield* queued([a!]), sorted([`${a}:deleted`, `${a}:replaced`]))
      }))

    it.effect("onDelete inside a transaction that rolls back queues nothing", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const sql = yield* SqlClient.SqlClient
        const key = `pub/${unique("rolled")}`
        const exit = yield* Effect.exit(sql.withTransaction(
          files.onDelete([key]).pipe(Effect.zipRight(Effect.fail("delete failed" as const)))
        ))
        assert.isTrue(Exit.isFailure(exit))
        assert.deepStrictEqual(yield* queued([key]), [])
      }))

    // ---- schema-driven ----

    const documentWith = (keys: {
      cover: string | null
      gallery: ReadonlyArray<string>
      attachment: string
      body: string
      notes: string
      avatar?: string
    }) =>
      new Document({
        title: "Trip",
        cover: keys.cover,
        gallery: keys.gallery,
        attachments: { itinerary: keys.attachment, empty: "" },
        body: `<p><img src="${url(keys.body)}"><img src='https://cdn.example.com/x.png'></p>`,
        notes: `![n](${url(keys.notes)} "Notes") [site](https://example.com)`,
        author: keys.avatar === undefined ? { name: "Alice" } : { name: "Alice", avatar: keys.avatar }
      })

    it.effect("onCreateOf adopts every reference of a document: fields, lists, records, HTML, Markdown, nested", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const sql = yield* SqlClient.SqlClient
        const [cover, g1, g2, attachment, body, notes, avatar] = yield* uploads(7)
        const doc = documentWith({
          cover: cover!,
          gallery: [g1!, g2!],
          attachment: attachment!,
          body: body!,
          notes: notes!,
          avatar: avatar!
        })
        const all = [cover!, g1!, g2!, attachment!, body!, notes!, avatar!]
        assert.deepStrictEqual(files.forSchema(Document).keys(doc), all)
        yield* sql.withTransaction(files.onCreateOf(Document, alice, doc))
        assert.deepStrictEqual(yield* claimStates(all), all.map(() => "gone"))
        assert.deepStrictEqual(yield* claimedEvents(all), all)
      }))

    it.effect("onCreateOf fails as a whole when one reference is not an upload of the principal's", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [cover, g1, attachment, body, notes] = yield* uploads(5)
        const doc = documentWith({
          cover: cover!,
          gallery: [g1!],
          attachment: attachment!,
          body: body!,
          notes: notes!,
          avatar: `pub/${unique("not-uploaded")}.png`
        })
        assert.strictEqual(failureTag(yield* Effect.exit(files.onCreateOf(Document, alice, doc))), "ClaimNotFound")
        const keys = [cover!, g1!, attachment!, body!, notes!]
        assert.deepStrictEqual(yield* claimStates(keys), keys.map(() => "uploaded"))
        assert.deepStrictEqual(yield* claimedEvents(keys), [])
      }))

    it.effect("forSchema: onUpdate diffs two documents, onDelete queues the rest as deleted", () =>
      Effect.gen(function*() {
        const documents = yield* Files.forSchema(Document)
        const [cover, g1, g2, attachment, body, notes, newCover, g3, newNotes] = yield* uploads(9)
        const v1 = documentWith({
          cover: cover!,
          gallery: [g1!, g2!],
          attachment: attachment!,
          body: body!,
          notes: notes!
        })
        yield* documents.onCreate(alice, v1)
        const v2 = documentWith({
          cover: newCover!,
          gallery: [g2!, g3!],
          attachment: attachment!,
          body: body!,
          notes: newNotes!
        })
        yield* documents.onUpdate(alice, v1, v2)
        assert.deepStrictEqual(yield* claimStates([newCover!, g3!, newNotes!]), ["gone", "gone", "gone"])
        assert.deepStrictEqual(yield* claimedEvents([newCover!, g3!, newNotes!]), [newCover, g3, newNotes])
        const everything = [cover!, g1!, g2!, attachment!, body!, notes!, newCover!, g3!, newNotes!]
        assert.deepStrictEqual(
          yield* queued(everything),
          sorted([`${cover}:replaced`, `${g1}:replaced`, `${notes}:replaced`])
        )
        yield* documents.onDelete(v2)
        assert.deepStrictEqual(
          yield* queued(everything),
          sorted([
            `${cover}:replaced`,
            `${g1}:replaced`,
            `${notes}:replaced`,
            ...[newCover!, g2!, g3!, attachment!, body!, newNotes!].map((key) => `${key}:deleted`)
          ])
        )
      }))

    it.effect("onUpdateOf: from undefined is a create, to undefined queues everything as replaced", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [cover, g1, attachment, body, notes] = yield* uploads(5)
        const doc = documentWith({ cover: cover!, gallery: [g1!], attachment: attachment!, body: body!, notes: notes! })
        const keys = [cover!, g1!, attachment!, body!, notes!]
        yield* files.onUpdateOf(Document, alice, undefined, doc)
        assert.deepStrictEqual(yield* claimStates(keys), keys.map(() => "gone"))
        assert.deepStrictEqual(yield* claimedEvents(keys), keys)
        yield* files.onUpdateOf(Document, alice, doc, null)
        assert.deepStrictEqual(yield* queued(keys), sorted(keys.map((key) => `${key}:replaced`)))
      }))

    it.effect("null and undefined documents are no-ops; an unchanged document is a no-op", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [cover, body] = yield* uploads(2)
        const doc = documentWith({ cover: cover!, gallery: [], attachment: "", body: body!, notes: "" })
        yield* files.onCreateOf(Document, { id: "" }, null)
        yield* files.onCreateOf(Document, alice, undefined)
        yield* files.onUpdateOf(Document, { id: "" }, undefined, null)
        yield* files.onDeleteOf(Document, undefined)
        yield* files.onCreateOf(Document, alice, doc)
        yield* Ref.set(yield* RecordedEvents, [])
        yield* files.onUpdateOf(Document, alice, doc, new Document({ ...doc, title: "Renamed" }))
        assert.deepStrictEqual(yield* queued([cover!, body!]), [])
        assert.deepStrictEqual(yield* Ref.get(yield* RecordedEvents), [])
        yield* files.onDeleteOf(Document, doc)
        assert.deepStrictEqual(yield* queued([cover!, body!]), sorted([`${cover}:deleted`, `${body}:deleted`]))
      }))

    it.effect("URLs the mapper rejects are not references; forSchema takes another mapper", () =>
      Effect.gen(function*() {
        const files = yield* Files
        const [key] = yield* uploads(1)
        const Post = Schema.Struct({ html: FileRefs.RichText })
        const post = { html: `<img src="${key}"><a href="https://example.com/${key}">x</a>` }
        // The default proxy mapper sees no proxy URL here: nothing to adopt.
        assert.deepStrictEqual(files.forSchema(Post).keys(post), [])
        yield* files.onCreateOf(Post, alice, post)
        assert.deepStrictEqual(yield* claimStates([key!]), ["uploaded"])
        const verbatim = files.forSchema(Post, { urlKeyMapper: identityUrlKeyMapper })
        assert.deepStrictEqual(verbatim.keys(post), [key])
        yield* verbatim.onCreate(alice, post)
        assert.deepStrictEqual(yield* claimStates([key!]), ["gone"])
        assert.isTrue(Option.isSome(files.urlKeyMapper.urlToKey(url(key!))))
      }))
  }
)
