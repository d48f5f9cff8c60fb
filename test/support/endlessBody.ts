/**
 * Sends a PUT whose chunked body never ends, as fast as the server takes
 * it, until the server answers (or `limit` bytes went out): answers the raw
 * answer and how many body bytes were sent by then. For checking that an
 * oversized part is cut off early instead of buffered.
 */
import * as net from "node:net"

export const sendEndlessBody = (options: {
  readonly port: number
  readonly path: string
  readonly token: string
  readonly chunkSize: number
  readonly limit: number
}): Promise<{ readonly sent: number; readonly answer: string }> =>
  new Promise((resolve) => {
    const socket = net.connect(options.port, "127.0.0.1")
    let sent = 0
    let answer = ""
    let done = false
    const chunk = Buffer.alloc(options.chunkSize, 7)
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")])
    socket.write(
      `PUT ${options.path} HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${options.token}\r\nTransfer-Encoding: chunked\r\n\r\n`
    )
    const pump = () => {
      while (!done && sent < options.limit) {
        sent += chunk.length
        if (!socket.write(frame)) return void socket.once("drain", pump)
      }
    }
    const finish = () => {
      if (done) return
      done = true
      socket.destroy()
      resolve({ sent, answer })
    }
    socket.on("data", (d) => {
      answer += d
      // The whole (small) JSON answer: headers and a body that closes.
      if (/\r\n\r\n[\s\S]*\}$/.test(answer)) finish()
    })
    socket.on("error", finish)
    socket.on("close", finish)
    pump()
  })
