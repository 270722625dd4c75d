// Node reverse proxies the HTTP bench compares polyproxy with, each the plainest keep-alive setup of its library:
//   node bench/http/proxies.ts http-proxy|fastify|undici|agent|raw TARGET_PORT
// `undici`, `agent` and `raw` are the same node:http server with three upstream clients (undici Pool.dispatch,
// http.Agent, one pooled socket per request written by hand): the study behind polyproxy's choice of client.
// Prints {"port":N} once listening; exits when stdin closes or on SIGTERM.
import { fstatSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import httpProxy from "http-proxy"
import { Pool } from "undici"

const [kind, targetArg] = process.argv.slice(2)
const target = Number(targetArg)
const origin = `http://127.0.0.1:${target}`
const ready = (server: net.Server) =>
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`)
const listen = (server: http.Server) =>
  server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => ready(server))
const bad = (res: http.ServerResponse) => {
  if (!res.headersSent) res.writeHead(502)
  res.end()
}

const hopByHop = new Set(["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"])

switch (kind) {
  case "http-proxy": {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
    const proxy = httpProxy.createProxyServer({ target: origin, agent, xfwd: true })
    proxy.on("error", (_e, _req, res) => bad(res as http.ServerResponse))
    listen(http.createServer((req, res) => proxy.web(req, res)))
    break
  }
  case "fastify": {
    const { default: Fastify } = await import("fastify")
    const { default: proxy } = await import("@fastify/http-proxy")
    const app = Fastify({ logger: false })
    await app.register(proxy, { upstream: origin })
    await app.listen({ host: "127.0.0.1", port: 0 })
    ready(app.server)
    break
  }
  case "undici": {
    const pool = new Pool(origin, { connections: 256, pipelining: 1 })
    listen(
      http.createServer((req, res) => {
        const headers: Array<string> = []
        const raw = req.rawHeaders
        for (let i = 0; i < raw.length; i += 2) {
          if (!hopByHop.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!)
        }
        headers.push("x-forwarded-for", req.socket.remoteAddress ?? "")
        const bodyless = req.method === "GET" || req.method === "HEAD"
        pool.dispatch(
          { method: req.method!, path: req.url!, headers, body: bodyless ? null : req },
          {
            onRequestStart() {},
            onResponseStart(_c, status, h) {
              res.writeHead(status, h as http.OutgoingHttpHeaders)
            },
            onResponseData(c, chunk) {
              if (!res.write(chunk)) {
                c.pause()
                res.once("drain", () => c.resume())
              }
            },
            onResponseEnd() {
              res.end()
            },
            onResponseError() {
              bad(res)
            }
          }
        )
        if (bodyless) req.resume()
      })
    )
    break
  }
  case "agent": {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
    listen(
      http.createServer((req, res) => {
        const up = http.request(
          { host: "127.0.0.1", port: target, method: req.method, path: req.url, headers: req.headers, agent },
          (ur) => {
            res.writeHead(ur.statusCode ?? 502, ur.headers)
            ur.pipe(res)
          }
        )
        up.on("error", () => bad(res))
        req.pipe(up)
      })
    )
    break
  }
  case "raw": {
    // Content-Length responses only: enough for the bench's origin, and the whole cost of a hand-written client.
    const idle: Array<net.Socket> = []
    const take = (cb: (s: net.Socket) => void) => {
      const s = idle.pop()
      if (s !== undefined) return cb(s)
      const fresh = net.connect({ host: "127.0.0.1", port: target, noDelay: true }, () => cb(fresh))
    }
    listen(
      http.createServer((req, res) => {
        let head = `${req.method} ${req.url} HTTP/1.1\r\n`
        const raw = req.rawHeaders
        for (let i = 0; i < raw.length; i += 2) {
          if (!hopByHop.has(raw[i]!.toLowerCase())) head += `${raw[i]}: ${raw[i + 1]}\r\n`
        }
        head += `x-forwarded-for: ${req.socket.remoteAddress}\r\n\r\n`
        req.resume()
        take((s) => {
          s.write(head, "latin1")
          let got: Buffer | null = null
          const onData = (d: Buffer) => {
            got = got === null ? d : Buffer.concat([got, d])
            const end = got.indexOf("\r\n\r\n")
            if (end < 0) return
            const text = got.toString("latin1", 0, end)
            const length = Number(/content-length:\s*(\d+)/i.exec(text)?.[1] ?? 0)
            if (got.length - end - 4 < length) return
            s.off("data", onData)
            idle.push(s)
            const lines = text.split("\r\n")
            const fields: Array<string> = []
            for (let i = 1; i < lines.length; i++) {
              const colon = lines[i]!.indexOf(":")
              const name = lines[i]!.slice(0, colon)
              if (!hopByHop.has(name.toLowerCase())) fields.push(name, lines[i]!.slice(colon + 1).trim())
            }
            res.writeHead(Number(lines[0]!.slice(9, 12)), fields)
            res.end(got.subarray(end + 4))
          }
          s.on("data", onData)
        })
      })
    )
    break
  }
  default:
    process.stderr.write(`unknown proxy kind ${kind}\n`)
    process.exit(2)
}

const quit = () => process.exit(0)
const stdin = fstatSync(0)
if (stdin.isFIFO() || stdin.isSocket()) {
  process.stdin.on("end", quit)
  process.stdin.on("close", quit)
  process.stdin.resume()
}
process.on("SIGTERM", quit)
