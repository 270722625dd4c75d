import { describe, expect, it } from "vitest"
import { Command, MAX_PACKET_PAYLOAD, Status } from "../../../src/codec/mysql/index.ts"
import { ResponseEnd } from "../../../src/codec/mysql/ResponseEnd.ts"
import {
  binaryRow,
  columnCount,
  columnDefinition,
  eof,
  err,
  expectEndAtLast,
  frame,
  localInfile,
  ok,
  okEof,
  prepareOk,
  progress,
  resultSet,
  textRow,
  wireParts
} from "./responses.ts"

const AUTOCOMMIT = Status.AUTOCOMMIT
const MORE = Status.MORE_RESULTS_EXISTS

const started = (command: number, deprecateEof: boolean): ResponseEnd => {
  const end = new ResponseEnd()
  expect(end.begin(command, deprecateEof)).toBe("response")
  expect(end.turn).toBe("server")
  return end
}

describe("ResponseEnd", () => {
  describe.each([false, true])("CLIENT_DEPRECATE_EOF %s", (deprecateEof) => {
    it("ends a COM_QUERY at its OK and keeps its status and insert id", () => {
      const end = started(Command.QUERY, deprecateEof)
      expect(end.serverPacket(ok(Status.IN_TRANS | AUTOCOMMIT, { affected: 300, insertId: 70_000 }))).toBe("done")
      expect(end).toMatchObject({ status: Status.IN_TRANS | AUTOCOMMIT, failed: false, lastInsertId: 70_000 })
      expect(end.turn).toBe("idle")
    })

    it("ends at an ERR and says so, keeping the last known status", () => {
      const end = new ResponseEnd(Status.IN_TRANS)
      end.begin(Command.QUERY, deprecateEof)
      expect(end.serverPacket(err())).toBe("done")
      expect(end).toMatchObject({ failed: true, status: Status.IN_TRANS })
      end.begin(Command.QUERY, deprecateEof)
      expect(end.failed).toBe(false)
    })

    it.each([0, 1, 3, 300])("ends a text result set of %i rows at its terminator, not before", (rows) => {
      const end = started(Command.QUERY, deprecateEof)
      expectEndAtLast(end, resultSet(rows, deprecateEof, AUTOCOMMIT, { columns: 3 }))
      expect(end.status).toBe(AUTOCOMMIT)
    })

    it("reads rows that start with 0xFB (NULL), 0x00 (empty) or 0xFC/0xFD (long values) as rows", () => {
      const end = started(Command.QUERY, deprecateEof)
      const rows = [textRow([null]), textRow([""]), textRow(["x".repeat(300)]), textRow(["x".repeat(70_000)])]
      const head = [columnCount(1), columnDefinition("c"), ...(deprecateEof ? [] : [eof(2)])]
      expectEndAtLast(end, [...head, ...rows, deprecateEof ? okEof(2) : eof(2)])
    })

    it("goes on after a terminator with SERVER_MORE_RESULTS_EXISTS (multi-statements, CALL)", () => {
      const end = started(Command.QUERY, deprecateEof)
      expectEndAtLast(end, [
        ...resultSet(2, deprecateEof, AUTOCOMMIT | MORE),
        ok(AUTOCOMMIT | MORE, { affected: 1 }),
        ...resultSet(1, deprecateEof, AUTOCOMMIT | MORE, { columns: 2 }),
        ok(AUTOCOMMIT)
      ])
    })

    it("ends a multi-statement at the ERR that stops it", () => {
      const end = started(Command.QUERY, deprecateEof)
      expectEndAtLast(end, [...resultSet(1, deprecateEof, AUTOCOMMIT | MORE), err()])
      expect(end.failed).toBe(true)
    })

    it("ends at an ERR sent in place of the rows' terminator", () => {
      const end = started(Command.QUERY, deprecateEof)
      expectEndAtLast(end, [...resultSet(5, deprecateEof, AUTOCOMMIT).slice(0, -1), err(1317, "Query interrupted")])
      expect(end.failed).toBe(true)
    })

    it("ignores MariaDB progress reports", () => {
      const end = started(Command.QUERY, deprecateEof)
      expectEndAtLast(end, [progress(), progress(), ok(AUTOCOMMIT)])
      expect(end.failed).toBe(false)
    })

    it("hands the turn to the client on LOCAL INFILE until its empty packet, then waits for the server's OK", () => {
      const end = started(Command.QUERY, deprecateEof)
      expect(end.serverPacket(localInfile("/tmp/data.csv"))).toBe("infile")
      expect(end.turn).toBe("client")
      expect(end.clientPacket(Buffer.from("1,a\n2,b\n"))).toBe(false)
      // A 0xFFFFFF chunk continues in the next packet: the empty one after it is not the end of the file.
      expect(end.clientPacket(Buffer.alloc(MAX_PACKET_PAYLOAD))).toBe(false)
      expect(end.clientPacket(Buffer.alloc(0))).toBe(false)
      expect(end.turn).toBe("client")
      expect(end.clientPacket(Buffer.alloc(0))).toBe(true)
      expect(end.turn).toBe("server")
      expect(end.serverPacket(ok(AUTOCOMMIT, { affected: 2 }))).toBe("done")
    })

    it("goes on after a LOCAL INFILE whose OK says more results follow", () => {
      const end = started(Command.QUERY, deprecateEof)
      expect(end.serverPacket(localInfile("f"))).toBe("infile")
      expect(end.clientPacket(Buffer.alloc(0))).toBe(true)
      expectEndAtLast(end, [ok(AUTOCOMMIT | MORE), ...resultSet(1, deprecateEof, AUTOCOMMIT)])
    })

    it("reads COM_STMT_PREPARE's parameter and column blocks", () => {
      const eofs = (n: number) => (deprecateEof ? [] : Array.from({ length: n }, () => eof(AUTOCOMMIT)))
      const defs = (n: number) => Array.from({ length: n }, (_, i) => columnDefinition(`d${i}`))
      for (const [columns, params] of [
        [2, 3],
        [0, 2],
        [4, 0]
      ] as const) {
        const end = started(Command.STMT_PREPARE, deprecateEof)
        const packets = [prepareOk(columns, params)]
        if (params > 0) packets.push(...defs(params), ...eofs(1))
        if (columns > 0) packets.push(...defs(columns), ...eofs(1))
        expectEndAtLast(end, packets)
      }
      const none = started(Command.STMT_PREPARE, deprecateEof)
      expect(none.serverPacket(prepareOk(0, 0))).toBe("done")
      const failed = started(Command.STMT_PREPARE, deprecateEof)
      expect(failed.serverPacket(err(1146))).toBe("done")
      expect(failed.failed).toBe(true)
    })

    it("ends a COM_STMT_EXECUTE that opened a cursor after its column definitions; COM_STMT_FETCH brings the rows", () => {
      const cursor = AUTOCOMMIT | Status.CURSOR_EXISTS
      const end = started(Command.STMT_EXECUTE, deprecateEof)
      expectEndAtLast(end, [columnCount(1), columnDefinition("n"), deprecateEof ? okEof(cursor) : eof(cursor)])
      expect(end.status & Status.CURSOR_EXISTS).not.toBe(0)
      end.begin(Command.STMT_FETCH, deprecateEof)
      const last = cursor | Status.LAST_ROW_SENT
      expectEndAtLast(end, [binaryRow(1), binaryRow(2), deprecateEof ? okEof(last) : eof(last)])
    })

    it("reads binary result sets of COM_STMT_EXECUTE, with several results from a CALL", () => {
      const end = started(Command.STMT_EXECUTE, deprecateEof)
      const head = [columnCount(1), columnDefinition("n"), ...(deprecateEof ? [] : [eof(AUTOCOMMIT)])]
      const terminator = (s: number) => (deprecateEof ? okEof(s) : eof(s))
      expectEndAtLast(end, [
        ...head,
        binaryRow(1),
        terminator(AUTOCOMMIT | MORE),
        ...head,
        terminator(AUTOCOMMIT | MORE),
        ok(AUTOCOMMIT)
      ])
    })

    it("skips the column definitions when the metadata-follows byte says 0 (MARIADB_CLIENT_CACHE_METADATA)", () => {
      const end = started(Command.STMT_EXECUTE, deprecateEof)
      expectEndAtLast(end, resultSet(2, deprecateEof, AUTOCOMMIT, { columns: 3, metadata: false }))
      end.begin(Command.STMT_EXECUTE, deprecateEof)
      expectEndAtLast(end, resultSet(2, deprecateEof, AUTOCOMMIT, { columns: 3, metadata: true }))
    })

    it("ends COM_FIELD_LIST at its terminator", () => {
      const end = started(Command.FIELD_LIST, deprecateEof)
      expectEndAtLast(end, [columnDefinition("a"), columnDefinition("b"), deprecateEof ? okEof(2) : eof(2)])
    })

    it.each([
      ["COM_PING", Command.PING, ok(AUTOCOMMIT)],
      ["COM_INIT_DB", Command.INIT_DB, ok(AUTOCOMMIT)],
      ["COM_RESET_CONNECTION", Command.RESET_CONNECTION, ok(AUTOCOMMIT)],
      ["COM_SET_OPTION", Command.SET_OPTION, eof(AUTOCOMMIT)],
      ["COM_STMT_RESET", Command.STMT_RESET, ok(AUTOCOMMIT)],
      ["COM_STATISTICS", Command.STATISTICS, Buffer.from("Uptime: 12  Threads: 1  Questions: 3")],
      ["an unknown command", 0x40, err(1047, "Unknown command")]
    ])("ends %s at its one packet", (_, command, packet) => {
      expect(started(command, deprecateEof).serverPacket(packet)).toBe("done")
    })

    it("follows a COM_CHANGE_USER's auth switch", () => {
      const end = started(Command.CHANGE_USER, deprecateEof)
      const change = Buffer.concat([Buffer.from([0xfe]), Buffer.from("mysql_native_password\0"), Buffer.alloc(21)])
      expect(end.serverPacket(change)).toBe("infile")
      expect(end.turn).toBe("client")
      expect(end.clientPacket(Buffer.alloc(20))).toBe(true)
      expect(end.serverPacket(Buffer.from([0x01, 0x03]))).toBe("more")
      expect(end.serverPacket(ok(AUTOCOMMIT))).toBe("done")
    })
  })

  it.each([
    ["COM_QUIT", Command.QUIT],
    ["COM_STMT_CLOSE", Command.STMT_CLOSE],
    ["COM_STMT_SEND_LONG_DATA", Command.STMT_SEND_LONG_DATA]
  ])("expects no response to %s", (_, command) => {
    const end = new ResponseEnd()
    expect(end.begin(command, true)).toBe("none")
    expect(end.turn).toBe("idle")
  })

  it("takes a 0xFE row of 2^24 bytes or more, split across packets, as a row (CLIENT_DEPRECATE_EOF)", () => {
    const big = Buffer.concat([Buffer.from([0xfe]), Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]), Buffer.alloc(1 << 24, 0x61)])
    const end = started(Command.QUERY, true)
    const parts = wireParts(big)
    expect(parts.map((p) => p.length)).toEqual([MAX_PACKET_PAYLOAD, big.length - MAX_PACKET_PAYLOAD])
    expectEndAtLast(end, [columnCount(1), columnDefinition("blob"), ...parts, okEof(AUTOCOMMIT)])
  })

  it("reads the packet after a 0xFFFFFF one as its continuation, even when it is empty or looks like an end", () => {
    const end = started(Command.QUERY, false)
    const row = textRow(["y".repeat(MAX_PACKET_PAYLOAD - 4)])
    expect(row.length).toBe(MAX_PACKET_PAYLOAD)
    expectEndAtLast(end, [columnCount(1), columnDefinition("c"), eof(2), row, Buffer.alloc(0), eof(2)])
    end.begin(Command.QUERY, false)
    expectEndAtLast(end, [columnCount(1), columnDefinition("c"), eof(2), row, eof(2), eof(2)])
  })

  /** Feeds `bytes` in chunks of `size` to serverBytes; where the response ended in `bytes`, or -1. */
  const endIn = (end: ResponseEnd, bytes: Buffer, size: number): number => {
    for (let at = 0; at < bytes.length; at += size) {
      const i = end.serverBytes(bytes.subarray(at, at + size))
      if (i >= 0) return at + i
    }
    return -1
  }

  it("finds the same ends in raw bytes, whatever the chunks", () => {
    const response = frame([...resultSet(3, false, AUTOCOMMIT | MORE, { columns: 2 }), ok(AUTOCOMMIT)])
    const bytes = Buffer.concat([response, frame([ok(0)])])
    for (let size = 1; size <= 9; size++) {
      const end = started(Command.QUERY, false)
      expect(endIn(end, bytes, size)).toBe(response.length)
      expect(end.turn).toBe("idle")
    }
  })

  it("finds the end past rows of 2^24 bytes and more in raw bytes", () => {
    const big = textRow(["z".repeat(MAX_PACKET_PAYLOAD + 10)])
    const response = frame([...resultSet(2, true, AUTOCOMMIT | MORE).slice(0, -1), big, okEof(AUTOCOMMIT | MORE)])
    const second = frame([ok(AUTOCOMMIT)], 9)
    const bytes = Buffer.concat([response, second, frame([ok(0)])])
    for (const size of [4093, 1 << 16, bytes.length]) {
      expect(endIn(started(Command.QUERY, true), bytes, size)).toBe(response.length + second.length)
    }
  })

  it("walks a LOCAL INFILE exchange in raw bytes on both sides", () => {
    const end = started(Command.QUERY, false)
    const request = frame([localInfile("data.csv")])
    const answer = frame([ok(AUTOCOMMIT, { affected: 3 })], 5)
    const server = Buffer.concat([request, answer])
    expect(end.serverBytes(server)).toBe(request.length)
    expect(end.turn).toBe("client")
    const file = frame([Buffer.from("a\nb\n"), Buffer.alloc(MAX_PACKET_PAYLOAD, 0x41), Buffer.alloc(0)], 2)
    const data = file.subarray(0, file.length)
    expect(end.clientBytes(data.subarray(0, 10))).toBe(-1)
    expect(end.clientBytes(data, 10)).toBe(data.length)
    expect(end.serverBytes(server, request.length)).toBe(server.length)
    expect(end).toMatchObject({ failed: false, status: AUTOCOMMIT })
  })
})
