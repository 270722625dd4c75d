// Unit spec of a cancel's claim on a pooled server connection (src/listeners/pool/connHold.ts): the pool is a stand-in
// that counts holds. The paths the conformance specs cannot reach in a spec's time: a claim nobody ends lapses by
// itself, and a lent claim ends once, by number, whichever way comes first.
import { describe, expect, it } from "vitest"
import { ConnHold, LentClaims, LentTicket } from "../../../src/listeners/pool/connHold.ts"

const pool = () => {
  const holds = new Map<string, number>()
  return {
    holds,
    hold: (c: string) => holds.set(c, (holds.get(c) ?? 0) + 1),
    unhold: (c: string) => holds.set(c, holds.get(c)! - 1)
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("ConnHold", () => {
  it("holds the connection from its making until done, once, and tells who listens", () => {
    const p = pool()
    const claim = new ConnHold(p, "a")
    let ended = 0
    claim.ended = () => ended++
    expect(p.holds.get("a")).toBe(1)
    expect(claim.expired()).toBe(false)
    claim.done()
    claim.done()
    expect(p.holds.get("a")).toBe(0)
    expect(claim.expired()).toBe(true)
    expect(ended).toBe(1)
  })

  it("lapses by itself when nobody ends it: the connection is free again and the request must not be sent", async () => {
    const p = pool()
    const claim = new ConnHold(p, "a", 30)
    await sleep(80)
    expect(p.holds.get("a")).toBe(0)
    expect(claim.expired()).toBe(true)
  })
})

describe("LentClaims", () => {
  it("ends a lent claim by its number, forgets it, and keeps the claim's own ended hook", () => {
    const p = pool()
    const lent = new LentClaims()
    const claim = new ConnHold(p, "a")
    let own = 0
    claim.ended = () => own++
    const n = lent.lend(claim)
    lent.done(n + 1) // another number: nothing
    expect(p.holds.get("a")).toBe(1)
    lent.done(n)
    lent.done(n)
    expect(p.holds.get("a")).toBe(0)
    expect(own).toBe(1)
  })

  it("a lent claim that lapsed leaves no entry behind", async () => {
    const p = pool()
    const lent = new LentClaims()
    const n = lent.lend(new ConnHold(p, "a", 20))
    await sleep(60)
    expect(p.holds.get("a")).toBe(0)
    lent.done(n) // no second unhold
    expect(p.holds.get("a")).toBe(0)
  })
})

describe("LentTicket", () => {
  it("tells the owner once, with the key and the number", () => {
    const told: Array<[string, number]> = []
    const ticket = new LentTicket<string>((key, hold) => told.push([key, hold]), "k", 7)
    expect(ticket.expired()).toBe(false)
    ticket.done()
    ticket.done()
    expect(told).toEqual([["k", 7]])
    expect(ticket.expired()).toBe(true)
  })
})
