// The Redis protocol for polyproxy's connection pipeline: identify reads the client's commands until its login
// (`AUTH user pass`, `AUTH pass` for the default user, `HELLO 3 AUTH user pass`) and routes by the user name; what
// came before it is answered as a Redis server with passwords would. The login is replayed to the backend, which
// checks the password. A refusal is a Redis error reply, in redis-server's own words where a client can tell.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import {
  type ClientConnection,
  clientText,
  type Identified,
  type Protocol,
  type ProtocolContext,
  type ProxyError,
  proxyError,
  readFrame
} from "../../src/index.ts"
import { type Command, decodeCommand } from "./resp.ts"

/** Bytes of one command before the login at most. */
const maxCommandBytes = 65_536
/** Commands answered NOAUTH before the client is given up on. */
const maxCommandsBeforeLogin = 16

// redis-server's replies to a client that has not logged in (requirepass or ACL users set).
const NOAUTH = "-NOAUTH Authentication required.\r\n"
const HELLO_NOAUTH =
  "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
const WRONGPASS = "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
const SYNTAX = "-ERR syntax error\r\n"
const HELLO_SYNTAX = "-ERR Syntax error in HELLO option 'AUTH'\r\n"

/** A Redis error reply: one line, so nothing a message holds may break it. */
const errorReply = (text: string) => `-ERR ${text.replace(/[\r\n]+/g, " ")}\r\n`

/** What a command from a client not logged in is: a login naming its user, or the server's reply to it. */
type Step = { readonly user: string } | { readonly reply: string; readonly close?: boolean }

const step = (args: Command): Step | undefined => {
  if (args.length === 0) return undefined // a blank inline line: ignored, as Redis does
  const name = args[0]!.toUpperCase()
  if (name === "AUTH") {
    if (args.length === 2) return { user: "default" }
    return args.length === 3 ? { user: args[1]! } : { reply: SYNTAX }
  }
  if (name === "HELLO") {
    const at = args.findIndex((a, i) => i >= 2 && a.toUpperCase() === "AUTH")
    if (at < 0) return { reply: HELLO_NOAUTH }
    return at + 2 < args.length ? { user: args[at + 1]! } : { reply: HELLO_SYNTAX }
  }
  if (name === "QUIT") return { reply: "+OK\r\n", close: true }
  return { reply: NOAUTH }
}

/**
 * identify: the routing key is the login's user. The login is the replay; what the client sent after it (ioredis
 * pipelines CLIENT SETINFO behind its HELLO) goes back into the socket, for the backend once relaying, or for
 * `notLoggedIn` when the login is refused.
 */
const identify = (defaultRoute: string | undefined) =>
  Effect.fnUntraced(function* (conn: ClientConnection) {
    let rest: Buffer | undefined
    for (let answered = 0; ; ) {
      const got = yield* readFrame(conn.client, decodeCommand, maxCommandBytes, rest)
      const next = step(got.value)
      rest = got.rest
      if (next === undefined) continue
      // A client that speaks before logging in: a Redis without passwords behind `defaultRoute` takes it as it is.
      const resourceId = "user" in next ? next.user : defaultRoute
      if (resourceId !== undefined) {
        if (got.rest.length > 0) conn.client.unshift(got.rest)
        return { resourceId, client: conn.client, replay: got.bytes }
      }
      if (!("reply" in next)) continue
      conn.client.write(next.reply)
      if (next.close === true) return yield* proxyError("BAD_REQUEST", "client", "QUIT before login", { quiet: true })
      if (++answered >= maxCommandsBeforeLogin) {
        return yield* proxyError("BAD_REQUEST", "client", `${answered} commands without a login`)
      }
    }
  }) satisfies (conn: ClientConnection) => Effect.Effect<Identified, ProxyError>

/**
 * After a refused login, the connection goes on as redis-server's does: every command is answered as from a client
 * not logged in (clients read their login's refusal only once their pipelined commands are answered), until QUIT or
 * the proxy's grace period ends it. Logging in again needs a new connection: this one has no backend to go to.
 */
const notLoggedIn = (client: net.Socket): void => {
  let buf: Buffer = Buffer.alloc(0)
  /** The reply to the next whole command; undefined while one is incomplete. `end`: the last one. */
  const answer = (): { readonly reply: string; readonly end: boolean } | undefined => {
    const decoded = decodeCommand(buf)
    if (decoded._tag === "Need") {
      return buf.length > maxCommandBytes
        ? { reply: errorReply("Protocol error: too big request"), end: true }
        : undefined
    }
    if (decoded._tag === "Invalid") return { reply: errorReply(`Protocol error: ${decoded.reason}`), end: true }
    buf = buf.subarray(decoded.size)
    const next = step(decoded.value)
    if (next === undefined) return { reply: "", end: false }
    if ("user" in next) return { reply: errorReply("polyproxy: to log in as another user, connect again"), end: true }
    return { reply: next.reply, end: next.close === true }
  }
  client.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    for (let a = answer(); a !== undefined; a = answer()) {
      if (a.end) {
        client.end(a.reply)
        return
      }
      client.write(a.reply)
    }
  })
  client.resume()
}

const refuse = (client: net.Socket, error: ProxyError): void => {
  // An unknown user, or one the Resolver refuses, is what Redis calls a wrong password or a disabled user.
  if (error.reason === "NOT_FOUND" || (error.reason === "FORBIDDEN" && error.source === "resolver")) {
    client.write(WRONGPASS)
    notLoggedIn(client)
  } else if (error.reason === "BAD_REQUEST") client.end(errorReply(`Protocol error: ${error.message}`))
  else client.end(errorReply(clientText(error)))
}

export const redisProtocol = (ctx: ProtocolContext): Protocol => ({
  name: ctx.name,
  readsHandshake: true,
  identify: identify(ctx.listener.defaultRoute),
  refuse
})
