// What a pooled session writes is not written amid the reads that produced it: it waits for the end of the event
// loop's poll phase (setImmediate), and every such write of that pass goes out then, in order, as Redis writes its
// replies before it polls again. Two kinds, the server connections' first:
// - the bytes for a server connection (pooledSession.ts `forward`): the proxy reads every socket that is ready
//   before it wakes any PostgreSQL or MySQL backend with the work read, instead of being preempted by the backend it
//   woke between two reads on these shared cores. Consecutive small writes to one connection go as one. pgbench
//   through a pool of 10 (bench/README.md "What each cut bought"): -S c=100 1.08× TPS at 0.91× the CPU, TPC-B-like
//   c=50 1.03× at 0.97×;
// - the last reply of a pooled transaction (the one after which its server connection went back to the pool,
//   pooledSession.ts `replyUnheld`): a client process driving many connections (pgbench's threads, an application's
//   pool) then finds several replies ready per wakeup instead of being woken once per reply. pgbench -S c=100 through a
//   pool of 10: pgbench's CPU per transaction ≈ 15–20 % lower, TPS ≈ 1.1×.
// Nothing waits past the pass: the write for a lone client goes out as soon as its read callback returns. Anything
// else bound for one of those sockets, or a connection changing hands, flushes every waiting write first
// (`flushWrites`), so bytes keep their order.

/** A session with a write waiting here. */
export interface DeferredWriter {
  /** The end of a transaction's reply, for its client. */
  writeDeferred(reply: Buffer): void
  /** Bytes for the server connection that `link` holds (or held: a link let go since flushed them first). */
  writeServerDeferred(link: unknown, bytes: Buffer): void
}

/** Writers, links and bytes for server connections, in threes; writers and replies, in twos. Each swapped with a spare at a flush. */
let servers: Array<unknown> = []
let spareServers: Array<unknown> = []
let replies: Array<DeferredWriter | Buffer> = []
let spareReplies: Array<DeferredWriter | Buffer> = []
let scheduled = false

const schedule = (): void => {
  if (!scheduled) {
    scheduled = true
    setImmediate(flushWrites)
  }
}

/** Writes everything waiting, the server connections' bytes first, each kind oldest first. */
export const flushWrites = (): void => {
  scheduled = false
  const toServers = servers
  if (toServers.length > 0) {
    servers = spareServers
    for (let i = 0; i < toServers.length; i += 3) {
      ;(toServers[i] as DeferredWriter).writeServerDeferred(toServers[i + 1], toServers[i + 2] as Buffer)
    }
    toServers.length = 0
    spareServers = toServers
  }
  const toClients = replies
  if (toClients.length > 0) {
    replies = spareReplies
    for (let i = 0; i < toClients.length; i += 2) {
      ;(toClients[i] as DeferredWriter).writeDeferred(toClients[i + 1] as Buffer)
    }
    toClients.length = 0
    spareReplies = toClients
  }
}

/**
 * Up to this much, bytes waiting for one connection are joined into one write. Past it each goes as it came: a bulk
 * stream (a COPY: libuv reads a busy socket up to 32 times per pass) would otherwise be copied again at every read.
 */
const joinLimit = 16 * 1024

/** `bytes` go to `writer.writeServerDeferred` at the end of this poll phase, after what waits for `link` already. */
export const deferServerWrite = (writer: DeferredWriter, link: unknown, bytes: Buffer): void => {
  const n = servers.length
  if (n > 0 && servers[n - 2] === link) {
    const last = servers[n - 1] as Buffer
    if (last.length + bytes.length <= joinLimit) {
      // The last write waiting is this connection's: one write of both.
      servers[n - 1] = Buffer.concat([last, bytes])
      return
    }
  }
  servers.push(writer, link, bytes)
  schedule()
}

/** `reply` goes to `writer.writeDeferred` at the end of this poll phase (or at the next `flushWrites`). */
export const deferReply = (writer: DeferredWriter, reply: Buffer): void => {
  replies.push(writer, reply)
  schedule()
}
