// The last replies of pooled transactions wait for the end of the poll phase and then go out together, in the order
// they were deferred; an early flush (something else bound for one of those clients) writes them all first.
import { setImmediate as immediate } from "node:timers/promises"
import { describe, expect, it } from "vitest"
import { type DeferredWriter, deferReply, flushReplies } from "../../../src/listeners/pool/deferredReplies.ts"

const writers = (log: string[], ...names: string[]): DeferredWriter[] =>
  names.map((name) => ({ writeDeferred: (reply: Buffer) => void log.push(`${name}:${reply.toString()}`) }))

describe("deferred replies", () => {
  it("writes nothing at once, then every reply of the pass in order once the poll phase is over", async () => {
    const log: string[] = []
    const [a, b] = writers(log, "a", "b")
    deferReply(a!, Buffer.from("1"))
    deferReply(b!, Buffer.from("2"))
    deferReply(a!, Buffer.from("3"))
    expect(log).toEqual([])
    await immediate()
    expect(log).toEqual(["a:1", "b:2", "a:3"])
  })

  it("flushes early when asked, and the scheduled pass then finds nothing left to write twice", async () => {
    const log: string[] = []
    const [a, b] = writers(log, "a", "b")
    deferReply(a!, Buffer.from("1"))
    flushReplies()
    expect(log).toEqual(["a:1"])
    deferReply(b!, Buffer.from("2"))
    await immediate()
    await immediate()
    expect(log).toEqual(["a:1", "b:2"])
  })

  it("keeps a reply deferred while it flushes for the next pass", async () => {
    const log: string[] = []
    const later: DeferredWriter = { writeDeferred: (r) => void log.push(`later:${r.toString()}`) }
    // A writer that defers again while being written: that one waits for the next pass, not this loop.
    const again: DeferredWriter = {
      writeDeferred: (r) => {
        log.push(`again:${r.toString()}`)
        deferReply(later, Buffer.from("y"))
      }
    }
    deferReply(again, Buffer.from("x"))
    flushReplies()
    expect(log).toEqual(["again:x"])
    await immediate()
    await immediate()
    expect(log).toEqual(["again:x", "later:y"])
  })
})
