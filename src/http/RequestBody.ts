/**
 * How the upload handlers read a request body as a stream.
 *
 * The platform's own `request.stream` ends a body that is cut short (a part
 * longer than its size) by destroying the request, and on Node that
 * destroys the socket: the client never sees the 413 that says why. The Node
 * reader here stops reading instead and leaves the rest unread, so the error
 * answer goes out; the server's request timeout closes the connection if
 * the client keeps sending.
 *
 * @since 0.1.0
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { Readable } from "node:stream"
import { RequestBodyError } from "../schema/Errors.js"

/**
 * Reads request bodies.
 *
 * @since 0.1.0
 * @category tags
 */
export class RequestBody extends Context.Tag("effect-storage/RequestBody")<RequestBody, {
  /** The body of a request, once. */
  readonly stream: (request: HttpServerRequest.HttpServerRequest) => Stream.Stream<Uint8Array, RequestBodyError>
}>() {}

/**
 * The platform's own reader: works on every platform; a body cut short
 * closes the connection.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPlatform: Layer.Layer<RequestBody> = Layer.succeed(RequestBody, {
  stream: (request) => request.stream.pipe(Stream.mapError(() => new RequestBodyError()))
})

/**
 * The Node reader: a body cut short leaves the connection open for the
 * error answer. Other requests fall back to the platform's reader.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNode: Layer.Layer<RequestBody> = Layer.succeed(RequestBody, {
  stream: (request) => {
    const source = request.source
    return source instanceof Readable
      ? NodeStream.fromReadable(() => source, () => new RequestBodyError(), { closeOnDone: false })
      : request.stream.pipe(Stream.mapError(() => new RequestBodyError()))
  }
})
