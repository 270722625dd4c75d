// A pooled session's writes wait for the end of the poll phase and then go out together: the server connections'
// bytes first, then the replies ending transactions, each in the order they were deferred; consecutive bytes for one
// connection as one write; an early flush (something else bound for one of those sockets) writes them all first.
import { setImmediate as immediate } from "node:timers/promises"
import { describe, expect, it } from "vitest"
import {
  type DeferredWriter,
  deferReply,
  deferServerWrite,
  flushWrites
} from "../../../src/listeners/pool/deferredWrites.ts"

const writer = (log: string[], name: string, onReply?: () => void): DeferredWriter => ({
  writeDeferred: (reply: Buffer) => {
    log.push(`${name}:${reply.toString()}`)
    onReply?.()
  },
  writeServerDeferred: (link: unknown, bytes: Buffer) => void log.push(`${name}>${String(link)}:${bytes.toString()}`)
})

describe("deferred writes", () => {
  it("writes nothing at once, then every reply of the pass in order once the poll phase is over", async () => {
    const log: string[] = []
    const [a, b] = [writer(log, "a"), writer(log, "b")]
    deferReply(a, Buffer.from("1"))
    deferReply(b, Buffer.from("2"))
    deferReply(a, Buffer.from("3"))
    expect(log).toEqual([])
    await immediate()
    expect(log).toEqual(["a:1", "b:2", "a:3"])
  })

  it("writes the server connections' bytes before the replies, in order, one write per run for one connection", async () => {
    const log: string[] = []
    const [a, b] = [writer(log, "a"), writer(log, "b")]
    deferReply(a, Buffer.from("end"))
    deferServerWrite(a, "s1", Buffer.from("x"))
    deferServerWrite(a, "s1", Buffer.from("y"))
    deferServerWrite(b, "s2", Buffer.from("z"))
    deferServerWrite(a, "s1", Buffer.from("w"))
    expect(log).toEqual([])
    await immediate()
    expect(log).toEqual(["a>s1:xy", "b>s2:z", "a>s1:w", "a:end"])
  })

  it("joins a connection's waiting bytes only up to 16 KB: a bulk stream goes as it came", async () => {
    const sizes: number[] = []
    const w: DeferredWriter = {
      writeDeferred: () => {},
      writeServerDeferred: (_, bytes) => void sizes.push(bytes.length)
    }
    for (let i = 0; i < 4; i++) deferServerWrite(w, "copy", Buffer.alloc(8 * 1024))
    deferServerWrite(w, "copy", Buffer.alloc(64 * 1024))
    await immediate()
    expect(sizes).toEqual([16 * 1024, 16 * 1024, 64 * 1024])
  })

  it("flushes early when asked, and the scheduled pass then finds nothing left to write twice", async () => {
    const log: string[] = []
    const [a, b] = [writer(log, "a"), writer(log, "b")]
    deferReply(a, Buffer.from("1"))
    deferServerWrite(a, "s1", Buffer.from("q"))
    flushWrites()
    expect(log).toEqual(["a>s1:q", "a:1"])
    deferReply(b, Buffer.from("2"))
    await immediate()
    await immediate()
    expect(log).toEqual(["a>s1:q", "a:1", "b:2"])
  })

  it("keeps what is deferred while it flushes for the next pass", async () => {
    const log: string[] = []
    const later = writer(log, "later")
    // A writer that defers again while being written: that one waits for the next pass, not this loop.
    const again = writer(log, "again", () => deferServerWrite(later, "s3", Buffer.from("y")))
    deferReply(again, Buffer.from("x"))
    flushWrites()
    expect(log).toEqual(["again:x"])
    await immediate()
    await immediate()
    expect(log).toEqual(["again:x", "later>s3:y"])
  })
})
