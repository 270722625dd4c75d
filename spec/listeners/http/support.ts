// Origins and clients for the HTTP listener's specs: real node:http / ws / raw TCP servers on port 0, and a raw
// client for the bytes no well-behaved library would send.
import { createHash, randomBytes } from "node:crypto"
import * as http from "node:http"
import type * as http2 from "node:http2"
import type * as net from "node:net"
import { createConnection, createServer as createNetServer } from "node:net"
import { WebSocketServer } from "ws"

/** 64 KiB of random bytes: bodies are this block repeated, so both ends can hash them without holding them. */
export const BLOCK = randomBytes(65536)

/** sha256 of `n` bytes of BLOCK repeated. */
export const patternHash = (n: number): string => {
  const h = createHash("sha256")
  let left = n
  while (left > 0) {
    const take = Math.min(left, BLOCK.length)
    h.update(take === BLOCK.length ? BLOCK : BLOCK.subarray(0, take))
    left -= take
  }
  return h.digest("hex")
}

/** A readable of `n` bytes of BLOCK repeated, produced as it is read. */
export async function* pattern(n: number): AsyncGenerator<Buffer> {
  let left = n
  while (left > 0) {
    const take = Math.min(left, BLOCK.length)
    yield take === BLOCK.length ? BLOCK : BLOCK.subarray(0, take)
    left -= take
  }
}

export interface Origin {
  readonly name: string
  readonly port: number
  /** TCP connections accepted so far: proves keep-alive reuse. */
  readonly connections: () => number
  readonly requests: () => number
  readonly continues: () => number
  readonly close: () => Promise<void>
}

const listen = (server: net.Server, port = 0): Promise<number> =>
  new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)))

const handle = (name: string, req: http.IncomingMessage, res: http.ServerResponse) => {
  const url = new URL(req.url ?? "/", "http://x")
  const n = Number(url.searchParams.get("n") ?? 0)
  switch (url.pathname) {
    case "/bytes": {
      if (url.searchParams.get("chunked") === null) res.setHeader("content-length", n)
      res.setHeader("content-type", "application/octet-stream")
      req.resume()
      let left = n
      const pump = () => {
        while (left > 0) {
          const take = Math.min(left, BLOCK.length)
          left -= take
          if (!res.write(take === BLOCK.length ? BLOCK : BLOCK.subarray(0, take))) return void res.once("drain", pump)
        }
        res.end()
      }
      return pump()
    }
    case "/slow":
      req.resume()
      return void setTimeout(() => res.end("slow"), Number(url.searchParams.get("ms") ?? 1000))
    case "/trailers":
      req.resume()
      res.setHeader("trailer", "x-checksum")
      res.write("part one,")
      res.write("part two")
      res.addTrailers({ "x-checksum": "abc123" })
      return void res.end()
    case "/early":
      req.resume()
      res.writeEarlyHints({ link: "</style.css>; rel=preload; as=style" })
      return void res.end("after hints")
    case "/status": {
      req.resume()
      const code = Number(url.searchParams.get("code"))
      res.statusCode = code
      if (code === 304) res.setHeader("etag", '"v1"')
      return void res.end()
    }
    case "/hop":
      req.resume()
      res.setHeader("connection", "x-hop-a")
      res.setHeader("x-hop-a", "1")
      res.setHeader("keep-alive", "timeout=5")
      res.setHeader("proxy-authenticate", "Basic")
      res.setHeader("x-end-to-end", "kept")
      res.setHeader("set-cookie", ["a=1", "b=2"])
      return void res.end("hop")
    case "/close":
      req.resume()
      res.setHeader("connection", "close")
      return void res.end("closing")
  }
  const h = createHash("sha256")
  let length = 0
  req.on("data", (d: Buffer) => {
    length += d.length
    h.update(d)
  })
  req.on("end", () => {
    const body = JSON.stringify({
      origin: name,
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      headers: req.headers,
      trailers: req.trailers,
      length,
      sha256: h.digest("hex")
    })
    res.setHeader("content-type", "application/json")
    res.setHeader("content-length", Buffer.byteLength(body))
    res.end(req.method === "HEAD" ? undefined : body)
  })
}

/** A node:http origin: /echo (default), /bytes?n=&chunked, /slow?ms=, /trailers, /early, /status?code=, /hop, /close. */
/** `at`: a port of its own (a backend that comes up where a route already points); 0 = any free one. */
export const startOrigin = async (name: string, at = 0): Promise<Origin> => {
  let connections = 0
  let requests = 0
  let continues = 0
  const server = http.createServer((req, res) => {
    requests++
    handle(name, req, res)
  })
  server.keepAliveTimeout = 30_000
  server.on("connection", () => connections++)
  server.on("checkContinue", (req, res) => {
    requests++
    continues++
    res.writeContinue()
    handle(name, req, res)
  })
  const port = await listen(server, at)
  return {
    name,
    port,
    connections: () => connections,
    requests: () => requests,
    continues: () => continues,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections()
        server.close(() => r())
      })
  }
}

/** A ws echo server; it answers with the forwarding headers it saw as its first message. */
export const startWsOrigin = async (): Promise<{ port: number; close: () => Promise<void> }> => {
  const server = http.createServer((_req, res) => res.end("not a websocket"))
  const wss = new WebSocketServer({ server })
  wss.on("connection", (ws, req) => {
    ws.send(JSON.stringify({ xff: req.headers["x-forwarded-for"], host: req.headers.host }))
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  const port = await listen(server)
  return {
    port,
    close: () =>
      new Promise((r) => {
        for (const c of wss.clients) c.terminate()
        wss.close()
        server.close(() => r())
      })
  }
}

/** An origin that answers each request line's path with a scripted, possibly broken, response. */
export const startRawOrigin = async (
  script: Record<string, string | ((socket: net.Socket) => void)>
): Promise<{ port: number; close: () => Promise<void> }> => {
  const sockets = new Set<net.Socket>()
  const server = createNetServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => {})
    let seen = ""
    socket.on("data", (d) => {
      seen += d.toString("latin1")
      const end = seen.indexOf("\r\n\r\n")
      if (end < 0) return
      const path = seen.slice(0, seen.indexOf("\r\n")).split(" ")[1] ?? "/"
      seen = seen.slice(end + 4)
      const answer = script[path]
      if (answer === undefined) socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
      else if (typeof answer === "string") socket.write(answer)
      else answer(socket)
    })
  })
  const port = await listen(server)
  return {
    port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      })
  }
}

/** Sends `bytes` as they are and collects the answer until the proxy closes or goes quiet for `quietMs`. */
export const rawExchange = (
  port: number,
  bytes: string | Buffer | ReadonlyArray<string | Buffer>,
  options: { readonly quietMs?: number; readonly gapMs?: number } = {}
): Promise<{ text: string; closed: boolean }> =>
  new Promise((resolve, reject) => {
    const parts: Array<Buffer> = []
    let timer: NodeJS.Timeout | undefined
    const quiet = options.quietMs ?? 1_500
    const done = (closed: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ text: Buffer.concat(parts).toString("latin1"), closed })
    }
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => done(false), quiet)
    }
    const socket = createConnection(port, "127.0.0.1", async () => {
      const list = Array.isArray(bytes) ? bytes : [bytes]
      for (const b of list) {
        if (socket.destroyed) return
        socket.write(b)
        if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs))
      }
      arm()
    })
    socket.on("data", (d) => {
      parts.push(d)
      arm()
    })
    socket.once("close", () => done(true))
    socket.once("error", reject)
  })

/** Status codes of every response in a raw answer, in order. */
export const statuses = (text: string): Array<number> =>
  [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]))

export interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  readonly trailers: NodeJS.Dict<string>
  readonly informational: Array<{ status: number; headers: http.IncomingHttpHeaders }>
}

/** One request with node:http (which, unlike fetch, lets a spec set Host). */
export const send = (
  port: number,
  options: {
    readonly host: string
    readonly method?: string
    readonly path?: string
    readonly headers?: http.OutgoingHttpHeaders
    readonly body?: string | Buffer | AsyncIterable<Buffer>
    readonly agent?: http.Agent | false
    readonly expectContinue?: boolean
  }
): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const informational: Answer["informational"] = []
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path ?? "/echo",
        headers: { host: options.host, ...options.headers },
        agent: options.agent ?? false
      },
      (res) => {
        const parts: Array<Buffer> = []
        res.on("data", (d: Buffer) => parts.push(d))
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts),
            trailers: res.trailers,
            informational
          })
        )
        res.on("error", reject)
      }
    )
    req.on("information", (info) => informational.push({ status: info.statusCode, headers: info.headers }))
    req.on("error", reject)
    const body = options.body
    const write = async () => {
      if (body === undefined) return req.end()
      if (typeof body === "string" || Buffer.isBuffer(body)) return req.end(body)
      for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once("drain", r))
      req.end()
    }
    if (options.expectContinue) req.once("continue", () => void write())
    else void write()
  })

export const json = (a: Answer): Record<string, unknown> & { headers: Record<string, string> } =>
  JSON.parse(a.body.toString("utf8"))

export const closedPort = async (): Promise<number> => {
  const s = createNetServer()
  const port = await listen(s)
  await new Promise((r) => s.close(r))
  return port
}

export interface H2Answer {
  readonly status: number
  readonly headers: http2.IncomingHttpHeaders
  readonly body: Buffer
  readonly trailers: http2.IncomingHttpHeaders | undefined
}

/** One request on an HTTP/2 session (node:http2), its answer read whole. */
export const h2request = (
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer | ReadonlyArray<Buffer>
): Promise<H2Answer> =>
  new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined })
    const parts: Array<Buffer> = []
    let head: http2.IncomingHttpHeaders = {}
    let trailers: http2.IncomingHttpHeaders | undefined
    req.on("response", (h) => (head = h))
    req.on("trailers", (t) => (trailers = t))
    req.on("data", (d: Buffer) => parts.push(d))
    req.on("end", () =>
      resolve({ status: Number(head[":status"]), headers: head, body: Buffer.concat(parts), trailers })
    )
    req.on("error", reject)
    if (body !== undefined) {
      const list = Buffer.isBuffer(body) ? [body] : body
      for (const b of list) req.write(b)
      req.end()
    }
  })
