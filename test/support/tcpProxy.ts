/**
 * A TCP proxy that a test can cut: while cut, every open connection is
 * destroyed and new ones are refused, as when a database server goes away.
 */
import { connect, createServer, type Server, type Socket } from "node:net"

export interface TcpProxy {
  readonly port: number
  /** Destroys all connections and refuses new ones. */
  readonly cut: () => Promise<void>
  /** Accepts connections again, on the same port. */
  readonly restore: () => Promise<void>
  readonly close: () => Promise<void>
}

export const startTcpProxy = async (targetHost: string, targetPort: number): Promise<TcpProxy> => {
  const sockets = new Set<Socket>()
  const handle = (client: Socket) => {
    const upstream = connect(targetPort, targetHost)
    sockets.add(client).add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on("error", drop).on("close", drop)
    upstream.on("error", drop).on("close", drop)
    client.pipe(upstream).pipe(client)
  }
  let server: Server = createServer(handle)
  const listen = (port: number) =>
    new Promise<number>((ok) => {
      server.listen(port, "127.0.0.1", () => ok((server.address() as { port: number }).port))
    })
  const port = await listen(0)
  const stop = () =>
    new Promise<void>((ok) => {
      for (const socket of sockets) socket.destroy()
      sockets.clear()
      server.close(() => ok())
    })
  return {
    port,
    cut: stop,
    restore: async () => {
      server = createServer(handle)
      await listen(port)
    },
    close: stop
  }
}
