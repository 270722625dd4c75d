// The smtp scenario's C programs (Postfix's smtp-source and smtp-sink, driven through bench/smtp/ as the runner drives
// them) work through polyproxy's `smtp` listener: every message smtp-source sends is counted by the sink of its
// tenant, each session routed by smtp-source's HELO name, and a name without a route makes smtp-source fail with
// nothing delivered. The minimal Node relay hands sessions to both sinks in turn. Functional only: no figure here is
// compared with a speed.
import { existsSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { deliver, type SmtpWorkload } from "../../bench/smtp/delivery.ts"
import {
  POSTFIX_HINT,
  runSmtpSource,
  SMTP_SINK,
  SMTP_SOURCE,
  type SmtpSink,
  startSmtpSink,
  TENANTS
} from "../../bench/smtp/postfix.ts"
import { type ReadyChild, startNodeRelay } from "../../bench/support/children.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

// Postfix comes with the bench's packages (scripts/install-bench-deps.sh), not with the test servers'.
const postfix = existsSync(SMTP_SOURCE) && existsSync(SMTP_SINK)
if (!postfix) console.warn(`spec/bench/smtp.spec.ts skipped: no ${SMTP_SOURCE} or ${SMTP_SINK}: ${POSTFIX_HINT}`)

type Run = SmtpWorkload["run"]

describe.skipIf(!postfix)("bench/smtp: smtp-source → polyproxy smtp listener → smtp-sink", () => {
  const sinks: SmtpSink[] = []
  let proxy: TestProxy
  let relay: ReadyChild<number> | undefined

  beforeAll(async () => {
    for (const _ of TENANTS) sinks.push(await startSmtpSink(300))
    proxy = await startTestProxy({
      listeners: { smtp: { host: "127.0.0.1", port: 0 } },
      routes: Object.fromEntries(TENANTS.map((t, i) => [t, `127.0.0.1:${sinks[i]!.port}`])),
      ssrf: { allow: ["127.0.0.0/8"] }
    })
  })
  afterAll(async () => {
    relay?.stop()
    await proxy?.stop()
    for (const s of sinks) s.stop()
  })

  /** Sends `messages` for both tenants through `port` (each sink's own port when absent); each sink's new count. */
  const send = async (run: Run, messages: number, port?: number) => {
    const before = sinks.map((s) => s.messages())
    const ports = sinks.map((s) => port ?? s.port)
    await deliver({ sinks, ports }, run, messages, 30_000)
    return sinks.map((s, i) => s.messages() - before[i]!)
  }

  it("smtp-sink counts what smtp-source sends it directly, each tenant to its own sink", async () => {
    expect(await send({ sessions: 4, size: 1024, keepSessions: true }, 12)).toEqual([6, 6])
  })

  it("routes each session by its HELO name and carries 64 KB messages over kept sessions", async () => {
    // 3 sessions for the first tenant (15 messages), 2 for the second (10): the split shows which sink got which.
    expect(await send({ sessions: 5, size: 64 * 1024, keepSessions: true }, 25, proxy.port("smtp"))).toEqual([15, 10])
    const closed = (tenant: string) =>
      proxy.logs.filter((l) => l.event === "connection closed" && l.listener === "smtp" && l.resource === tenant)
    await eventually(() => closed(TENANTS[0]).length === 3 && closed(TENANTS[1]).length === 2)
    // Every body went through the relay (smtp-source closes each session with a reset: SO_LINGER 0, no TIME_WAIT).
    const bytes = closed(TENANTS[0]).reduce((n, l) => n + Number(l.bytesFromClient), 0)
    expect(bytes).toBeGreaterThan(15 * 64 * 1024)
  })

  it("carries messages that each have a session of their own", async () => {
    expect(await send({ sessions: 6, size: 1024, keepSessions: false }, 18, proxy.port("smtp"))).toEqual([9, 9])
  })

  it("refuses a HELO name it has no route for: smtp-source fails and nothing reaches a sink", async () => {
    const before = sinks.map((s) => s.messages())
    const run = { messages: 3, sessions: 1, size: 1024, keepSessions: true, helo: "unknown.example" }
    await expect(runSmtpSource(proxy.port("smtp"), run, 30_000)).rejects.toThrow(
      /smtp-source exit code 1: .*fatal: .*HELO.*\b5\d\d\b/
    )
    expect(sinks.map((s) => s.messages())).toEqual(before)
  })

  it("goes through the minimal Node relay, which hands sessions to the sinks in turn", async () => {
    relay = await startNodeRelay(sinks.map((s) => s.port))
    // One session per message: 20 connections alternate between the sinks, whichever smtp-source opened them.
    expect(await send({ sessions: 2, size: 1024, keepSessions: false }, 20, relay.info)).toEqual([10, 10])
  })
})
