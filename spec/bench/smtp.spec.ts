// The smtp scenario's C programs (Postfix's smtp-source and smtp-sink, driven through bench/smtp/postfix.ts as the
// runner drives them) work through polyproxy's `smtp` listener: every message smtp-source sends is counted by
// smtp-sink, the sessions are routed by smtp-source's HELO name, and a name without a route makes smtp-source fail
// with nothing delivered. Functional only: no figure here is compared with a speed.
import { existsSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  POSTFIX_HINT,
  runSmtpSource,
  SMTP_SINK,
  SMTP_SOURCE,
  type SmtpSink,
  startSmtpSink,
  TENANT
} from "../../bench/smtp/postfix.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

// Postfix comes with the bench's packages (scripts/install-bench-deps.sh), not with the test servers'.
const postfix = existsSync(SMTP_SOURCE) && existsSync(SMTP_SINK)
if (!postfix) console.warn(`spec/bench/smtp.spec.ts skipped: no ${SMTP_SOURCE} or ${SMTP_SINK}: ${POSTFIX_HINT}`)

describe.skipIf(!postfix)("bench/smtp: smtp-source → polyproxy smtp listener → smtp-sink", () => {
  let sink: SmtpSink
  let proxy: TestProxy

  beforeAll(async () => {
    sink = await startSmtpSink(300)
    proxy = await startTestProxy({
      listeners: { smtp: { host: "127.0.0.1", port: 0 } },
      routes: { [TENANT]: `127.0.0.1:${sink.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
  })
  afterAll(async () => {
    await proxy?.stop()
    sink?.stop()
  })

  /** Delivers `messages` through `port` and returns how many more smtp-sink counted. */
  const delivered = async (port: number, run: Parameters<typeof runSmtpSource>[1]) => {
    const before = sink.messages()
    await runSmtpSource(port, run, 30_000)
    return (await sink.waitFor(before + run.messages)) - before
  }

  it("smtp-sink counts what smtp-source sends it directly", async () => {
    expect(await delivered(sink.port, { messages: 12, sessions: 3, size: 1024, keepSessions: true })).toBe(12)
  })

  it("carries 64 KB messages over kept sessions, routed by the HELO name", async () => {
    const port = proxy.port("smtp")
    const run = { messages: 24, sessions: 4, size: 64 * 1024, keepSessions: true }
    expect(await delivered(port, run)).toBe(24)
    // Four sessions, each routed to the tenant, carrying every body through the relay (smtp-source closes each with
    // a reset: SO_LINGER 0, so that its sessions leave no TIME_WAIT behind).
    const closed = () =>
      proxy.logs.filter((l) => l.event === "connection closed" && l.resource === TENANT && l.listener === "smtp")
    await eventually(() => closed().length === 4)
    const bytes = closed().reduce((n, l) => n + Number(l.bytesFromClient), 0)
    expect(bytes).toBeGreaterThan(run.messages * run.size)
  })

  it("carries messages that each have a session of their own", async () => {
    expect(await delivered(proxy.port("smtp"), { messages: 15, sessions: 5, size: 1024, keepSessions: false })).toBe(15)
  })

  it("refuses a HELO name it has no route for: smtp-source fails and nothing reaches the sink", async () => {
    const before = sink.messages()
    await expect(
      runSmtpSource(
        proxy.port("smtp"),
        { messages: 3, sessions: 1, size: 1024, keepSessions: true, helo: "unknown.example" },
        30_000
      )
    ).rejects.toThrow(/smtp-source exit code 1: .*fatal: .*HELO.*\b5\d\d\b/)
    expect(sink.messages()).toBe(before)
  })
})
