// ResponseEnd under generated input (fast-check): valid responses of every shape end exactly at their last packet,
// through whole packets and through raw bytes cut anywhere; arbitrary bytes never make it throw.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Command, Status } from "../../../src/codec/mysql/index.ts"
import { ResponseEnd } from "../../../src/codec/mysql/ResponseEnd.ts"
import {
  binaryRow,
  columnCount,
  columnDefinition,
  eof,
  err,
  frame,
  localInfile,
  ok,
  okEof,
  prepareOk,
  progress,
  textRow,
  wireParts
} from "./responses.ts"

const MORE = Status.MORE_RESULTS_EXISTS

/** One exchange: server payloads, and after an "infile" one, the client's file packets. */
type Step = { readonly server: Buffer; readonly infile?: true } | { readonly client: readonly Buffer[] }

interface Exchange {
  readonly command: number
  readonly deprecateEof: boolean
  readonly steps: readonly Step[]
}

const value = fc.oneof(
  fc.constant(null),
  fc.string({ maxLength: 12 }),
  fc.constantFrom("", "x".repeat(251), "y".repeat(70_000))
)

/** One result of a query: OK, a result set (maybe with metadata skipped) or LOCAL INFILE then its OK. */
const result = (deprecateEof: boolean, binary: boolean) =>
  fc
    .oneof(
      fc.record({ kind: fc.constant("ok" as const), status: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({
        kind: fc.constant("rows" as const),
        columns: fc.integer({ min: 1, max: 3 }),
        rows: fc.array(fc.array(value, { minLength: 3, maxLength: 3 }), { maxLength: 6 }),
        metadata: fc.constantFrom(undefined, true, false),
        progress: fc.boolean(),
        // An OK standing for the EOF says how many rows it sent: 9 bytes and more from 251 rows on.
        found: fc.constantFrom(0, 251, 70_000)
      }),
      fc.record({
        kind: fc.constant("infile" as const),
        chunks: fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 3 })
      })
    )
    .map((r) => ({ ...r, deprecateEof, binary }))

type Result = ReturnType<typeof result> extends fc.Arbitrary<infer R> ? R : never

const resultSteps = (r: Result, last: boolean): Step[] => {
  const more = last ? 0 : MORE
  const terminator = (status: number) => (r.deprecateEof ? okEof(status, r.kind === "rows" ? r.found : 0) : eof(status))
  switch (r.kind) {
    case "ok":
      return [{ server: ok(((r.status & ~MORE) | more) & ~Status.CURSOR_EXISTS) }]
    case "infile":
      return [
        { server: localInfile("data.csv"), infile: true },
        { client: [...r.chunks.map((c) => Buffer.from(c)), Buffer.alloc(0)] },
        { server: ok(Status.AUTOCOMMIT | more) }
      ]
    case "rows": {
      const steps: Step[] = r.progress ? [{ server: progress() }] : []
      steps.push({ server: columnCount(r.columns, r.metadata) })
      if (r.metadata !== false) {
        for (let i = 0; i < r.columns; i++) steps.push({ server: columnDefinition(`c${i}`) })
      }
      if (!r.deprecateEof) steps.push({ server: eof(Status.AUTOCOMMIT) })
      for (const row of r.rows) {
        steps.push({ server: r.binary ? binaryRow(row.length) : textRow(row.slice(0, r.columns)) })
      }
      steps.push({ server: terminator(Status.AUTOCOMMIT | more) })
      return steps
    }
  }
}

const queryExchange = fc.boolean().chain((deprecateEof) =>
  fc
    .record({
      binary: fc.boolean(),
      results: fc.array(result(deprecateEof, false), { minLength: 1, maxLength: 4 }),
      error: fc.boolean()
    })
    .map(({ binary, results, error }): Exchange => {
      const steps = results.flatMap((r, i) =>
        resultSteps({ ...r, binary: binary && r.kind !== "infile" }, i === results.length - 1 && !error)
      )
      if (error) steps.push({ server: err() })
      return { command: binary ? Command.STMT_EXECUTE : Command.QUERY, deprecateEof, steps }
    })
)

const prepareExchange = fc
  .record({ deprecateEof: fc.boolean(), columns: fc.nat(4), params: fc.nat(4) })
  .map(({ deprecateEof, columns, params }): Exchange => {
    const steps: Step[] = [{ server: prepareOk(columns, params) }]
    for (const n of [params, columns]) {
      if (n === 0) continue
      for (let i = 0; i < n; i++) steps.push({ server: columnDefinition(`p${i}`) })
      if (!deprecateEof) steps.push({ server: eof(Status.AUTOCOMMIT) })
    }
    return { command: Command.STMT_PREPARE, deprecateEof, steps }
  })

const fetchExchange = fc
  .record({ deprecateEof: fc.boolean(), rows: fc.nat(5), fieldList: fc.boolean() })
  .map(({ deprecateEof, rows, fieldList }): Exchange => {
    const status = Status.AUTOCOMMIT | Status.CURSOR_EXISTS
    const steps: Step[] = Array.from({ length: rows }, (_, i) => ({
      server: fieldList ? columnDefinition(`f${i}`) : binaryRow(i)
    }))
    steps.push({ server: deprecateEof ? okEof(status) : eof(status) })
    return { command: fieldList ? Command.FIELD_LIST : Command.STMT_FETCH, deprecateEof, steps }
  })

const exchanges = fc.oneof(queryExchange, prepareExchange, fetchExchange)

/** The end offsets, in the framed server bytes, of each server turn (after "infile" and after "done"). */
const framed = (e: Exchange) => {
  let seq = 1
  const server: Buffer[] = []
  const client: Buffer[] = []
  const turns: number[] = []
  let length = 0
  for (const step of e.steps) {
    if ("server" in step) {
      const bytes = frame([step.server], seq)
      seq += wireParts(step.server).length
      server.push(bytes)
      length += bytes.length
      if (step.infile) turns.push(length)
    } else {
      client.push(frame(step.client as Buffer[], seq))
      seq += step.client.length
    }
  }
  turns.push(length)
  return { server: Buffer.concat(server), client, turns }
}

describe("ResponseEnd on generated responses (fast-check)", () => {
  it("answers more, more, …, done packet by packet (infile where the client speaks)", () => {
    fc.assert(
      fc.property(exchanges, (e) => {
        const end = new ResponseEnd()
        expect(end.begin(e.command, e.deprecateEof)).toBe("response")
        const serverSteps = e.steps.filter((s) => "server" in s).length
        let seen = 0
        for (const step of e.steps) {
          if ("client" in step) {
            const over = step.client.map((p) => end.clientPacket(p))
            expect(over).toEqual(step.client.map((_, i) => i === step.client.length - 1))
            continue
          }
          seen++
          const expected = step.infile ? "infile" : seen === serverSteps ? "done" : "more"
          const parts = wireParts(step.server)
          const got = parts.map((p) => end.serverPacket(p))
          expect(got).toEqual(parts.map((_, i) => (i === parts.length - 1 ? expected : "more")))
        }
        expect(end.turn).toBe("idle")
      }),
      { numRuns: 400 }
    )
  })

  it("finds the same turns in raw bytes cut at random places", () => {
    fc.assert(
      fc.property(exchanges, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), (e, sizes) => {
        const { server, client, turns } = framed(e)
        // Trailing bytes of the next response: the scan must stop before them.
        const bytes = Buffer.concat([server, frame([ok(0)])])
        const end = new ResponseEnd()
        end.begin(e.command, e.deprecateEof)
        const found: number[] = []
        let at = 0
        let k = 0
        while (at < bytes.length && found.length < turns.length) {
          const size = sizes[k++ % sizes.length]!
          const chunk = bytes.subarray(at, Math.min(bytes.length, at + size))
          const i = end.serverBytes(chunk)
          if (i < 0) {
            at += chunk.length
            continue
          }
          at += i
          found.push(at)
          if (end.turn === "client") {
            const data = client[found.length - 1]!
            expect(end.clientBytes(data.subarray(0, data.length - 1))).toBe(-1)
            expect(end.clientBytes(data, data.length - 1)).toBe(data.length)
          }
        }
        expect(found).toEqual(turns)
        expect(end.turn).toBe("idle")
      }),
      { numRuns: 400 }
    )
  })

  const commands = [...Object.values(Command), 0x40, 0xfe]

  it("never throws on arbitrary payloads, and always answers a verdict", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...commands),
        fc.boolean(),
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 30 }),
        (command, deprecateEof, payloads) => {
          const end = new ResponseEnd()
          end.begin(command, deprecateEof)
          for (const p of payloads) {
            const payload = Buffer.from(p)
            if (end.turn === "client") expect(typeof end.clientPacket(payload)).toBe("boolean")
            else expect(["more", "done", "infile"]).toContain(end.serverPacket(payload))
            expect(Number.isInteger(end.status) && end.status >= 0 && end.status <= 0xffff).toBe(true)
          }
        }
      ),
      { numRuns: 2000 }
    )
  })

  it("never throws on arbitrary raw bytes, and answers an offset inside the chunk or -1", () => {
    fc.assert(
      fc.property(fc.constantFrom(...commands), fc.boolean(), fc.uint8Array({ maxLength: 400 }), (command, d, raw) => {
        const end = new ResponseEnd()
        end.begin(command, d)
        const bytes = Buffer.from(raw)
        let at = 0
        while (at < bytes.length) {
          const i = end.turn === "client" ? end.clientBytes(bytes, at) : end.serverBytes(bytes, at)
          if (i < 0) break
          expect(i).toBeGreaterThan(at)
          expect(i).toBeLessThanOrEqual(bytes.length)
          at = i
          if (end.turn === "idle") end.begin(command, d)
        }
      }),
      { numRuns: 2000 }
    )
  })
})
