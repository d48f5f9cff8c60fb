/**
 * Reads a byte stream in pieces of chosen lengths, whatever the sizes of the
 * chunks it arrives in: a resumable upload's bytes are cut into parts
 * wherever the client cut its requests.
 *
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { RequestBodyError } from "../schema/Errors.js"

/** @internal */
export interface ByteReader<E> {
  /**
   * The next `length` bytes as a stream, which fails with
   * `RequestBodyError` if the source ends first. Run it to its end before
   * reading on.
   */
  readonly take: (length: number) => Stream.Stream<Uint8Array, E | RequestBodyError>
  /** The next bytes, at most `length` of them (fewer only at the end), in one buffer. */
  readonly readUpTo: (length: number) => Effect.Effect<Uint8Array, E>
  /** Reads whatever is left and answers how many bytes that was. */
  readonly drain: Effect.Effect<number, E>
}

/** @internal */
export const make = <E>(source: Stream.Stream<Uint8Array, E>): Effect.Effect<ByteReader<E>, never, Scope.Scope> =>
  Effect.map(Stream.toPull(source), (pull) => {
    let pending: Uint8Array | undefined
    let chunks: Array<Uint8Array> = []
    let done = false

    /** The next non-empty piece of the source, or none at its end. */
    const next: Effect.Effect<Option.Option<Uint8Array>, E> = Effect.suspend(() => {
      if (pending !== undefined) {
        const piece = pending
        pending = undefined
        return Effect.succeed(Option.some(piece))
      }
      if (chunks.length > 0) return Effect.succeed(Option.some(chunks.shift()!))
      if (done) return Effect.succeed(Option.none())
      return Effect.matchEffect(pull, {
        onFailure: (error) =>
          Option.match(error, {
            onNone: () => {
              done = true
              return Effect.succeed(Option.none<Uint8Array>())
            },
            onSome: Effect.fail
          }),
        onSuccess: (chunk) => {
          chunks = Chunk.toArray(chunk).filter((piece) => piece.byteLength > 0)
          return next
        }
      })
    })

    /** At most `length` bytes of the next piece; the rest is kept for later. */
    const nextUpTo = (length: number) =>
      Effect.map(next, (piece) =>
        Option.map(piece, (bytes) => {
          if (bytes.byteLength <= length) return bytes
          pending = bytes.subarray(length)
          return bytes.subarray(0, length)
        }))

    const take = (length: number): Stream.Stream<Uint8Array, E | RequestBodyError> =>
      Stream.suspend(() => {
        let left = length
        return Stream.repeatEffectOption(
          left === 0 ?
            Effect.fail(Option.none()) :
            Effect.suspend(() =>
              left === 0 ? Effect.fail(Option.none()) : nextUpTo(left).pipe(
                Effect.mapError(Option.some),
                Effect.flatMap(Option.match({
                  onNone: () => Effect.fail(Option.some(new RequestBodyError({ message: "the body ended early" }))),
                  onSome: (bytes) => {
                    left -= bytes.byteLength
                    return Effect.succeed(bytes)
                  }
                }))
              )
            )
        )
      })

    const readUpTo = (length: number): Effect.Effect<Uint8Array, E> =>
      Effect.gen(function*() {
        const pieces: Array<Uint8Array> = []
        let got = 0
        while (got < length) {
          const piece = yield* nextUpTo(length - got)
          if (Option.isNone(piece)) break
          pieces.push(piece.value)
          got += piece.value.byteLength
        }
        return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, got)
      })

    const drain: Effect.Effect<number, E> = Effect.gen(function*() {
      let got = 0
      while (true) {
        const piece = yield* next
        if (Option.isNone(piece)) return got
        got += piece.value.byteLength
      }
    })

    return { take, readUpTo, drain }
  })
