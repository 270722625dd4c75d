// Postfix's SMTP test programs, the smtp scenario's C generator and sink (Debian ships both in the `postfix` package
// itself; scripts/install-bench-deps.sh installs it without configuring or starting Postfix):
// - smtp-sink: one process, one thread, event-driven; takes messages and throws them away, no STARTTLS, PIPELINING
//   offered. `-c` prints its counters ("\rsess=N quit=N mesg=N") as sessions end and messages arrive.
// - smtp-source: N parallel sessions sending M messages in all (HELO with `-M`'s name, then MAIL, RCPT, DATA with a
//   generated body of 78-character lines, `.`; one message per session, or with `-d` all of them over the same
//   sessions); exits 1 with a "fatal:" line at the first reply that is not positive.
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { freePort } from "../../spec/support/backends/local.ts"
import { firstBytes } from "../support/children.ts"
import { onExit, runBounded, sleep, track } from "../support/process.ts"

export const SMTP_SINK = "/usr/sbin/smtp-sink"
export const SMTP_SOURCE = "/usr/sbin/smtp-source"
export const POSTFIX_HINT = "install Debian's postfix package (bash scripts/install-bench-deps.sh)"

/** The tenants: the HELO names smtp-source gives and the routes polyproxy has for them, one smtp-sink each. */
export const TENANTS = ["tenant-a.example", "tenant-b.example"] as const

export interface SmtpSink {
  readonly port: number
  /** The `timeout` wrapper's pid: smtp-sink is its child, so its tree's CPU is the sink's. */
  readonly pid: number
  /** Messages (final `.`) the sink has taken so far, from its last counter line. */
  readonly messages: () => number
  readonly alive: () => boolean
  /** What it said on stderr (its fatal line when it exited). */
  readonly stderr: () => string
  readonly stop: () => void
}

/** Messages all of `sinks` have taken so far. */
export const sinkMessages = (sinks: readonly SmtpSink[]): number => sinks.reduce((n, s) => n + s.messages(), 0)

/**
 * Resolves with the sinks' message count once it reaches `count` (the counter lines arrive through a pipe, a moment
 * after the replies); rejects after `timeoutMs` or when a sink exits.
 */
export const sinksReach = async (sinks: readonly SmtpSink[], count: number, timeoutMs = 5_000): Promise<number> => {
  const until = Date.now() + timeoutMs
  for (;;) {
    const got = sinkMessages(sinks)
    if (got >= count) return got
    const dead = sinks.find((s) => !s.alive())
    if (dead) throw new Error(`smtp-sink on port ${dead.port} exited: ${dead.stderr() || "(no output)"}`)
    if (Date.now() > until) throw new Error(`the smtp-sinks counted ${got} messages, expected ${count}`)
    await sleep(10)
  }
}

/** Kills the `timeout` wrapper's process group: timeout makes itself a group leader, smtp-sink is in its group. */
const killGroup = (child: ChildProcess): void => {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
  } catch {}
}

const launchSink = (port: number, lifetimeSeconds: number) => {
  // smtp-sink refuses to run as root without -u (it drops to that user after binding); as anyone else -u would fail.
  const user = process.getuid?.() === 0 ? ["-u", "nobody"] : []
  // GNU timeout bounds its life even if the bench is SIGKILLed and cannot clean up.
  const child = track(
    spawn(
      "timeout",
      ["-s", "KILL", String(Math.ceil(lifetimeSeconds)), SMTP_SINK, "-c", ...user, `127.0.0.1:${port}`, "1024"],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
  )
  onExit(() => killGroup(child))
  let tail = ""
  let stderr = ""
  let messages = 0
  child.stdout?.setEncoding("latin1").on("data", (s: string) => {
    tail = (tail + s).slice(-256)
    const all = [...tail.matchAll(/mesg=(\d+)/g)]
    const last = all.at(-1)?.[1]
    if (last !== undefined) messages = Math.max(messages, Number(last))
  })
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr = (stderr + s).slice(-4096)
  })
  const exited = new Promise<void>((resolve) => {
    child.once("error", (error) => {
      stderr += `${error.message}\n`
      resolve()
    })
    child.once("exit", () => resolve())
  })
  const alive = () => child.exitCode === null && child.signalCode === null
  return { child, exited, alive, messages: () => messages, stderr: () => stderr.trim() }
}

/** smtp-sink on a free port of 127.0.0.1 (another one if the first was taken), ready once it greets. */
export const startSmtpSink = async (lifetimeSeconds: number): Promise<SmtpSink> => {
  for (const file of [SMTP_SINK, SMTP_SOURCE]) if (!existsSync(file)) throw new Error(`no ${file}: ${POSTFIX_HINT}`)
  let lastError = ""
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const sink = launchSink(port, lifetimeSeconds)
    const deadline = Date.now() + 10_000
    while (sink.alive() && Date.now() < deadline) {
      const greeting = await firstBytes(port, 1_000).catch(() => undefined)
      if (greeting?.toString("latin1").startsWith("220 ")) {
        return {
          port,
          pid: sink.child.pid!,
          messages: sink.messages,
          alive: sink.alive,
          stderr: sink.stderr,
          stop: () => killGroup(sink.child)
        }
      }
      await sleep(50)
    }
    killGroup(sink.child)
    await sink.exited
    lastError = sink.stderr() || "it did not greet within 10 s"
    if (!/address already in use/i.test(lastError)) break
  }
  throw new Error(`smtp-sink did not start: ${lastError}`)
}

export interface SourceRun {
  /** Messages in all, spread over the sessions. */
  readonly messages: number
  /** Sessions in parallel. */
  readonly sessions: number
  /** Body bytes per message (smtp-source adds a few header lines). */
  readonly size: number
  /** Each session sends message after message (`-d`); without it every message has a session of its own. */
  readonly keepSessions: boolean
  /** The HELO name, also the sender's and the recipient's domain. */
  readonly helo: string
}

export const smtpSourceArgs = (port: number, r: SourceRun): string[] => {
  const helo = r.helo
  return [
    "-s",
    String(r.sessions),
    "-m",
    String(r.messages),
    "-l",
    String(r.size),
    ...(r.keepSessions ? ["-d"] : []),
    "-M",
    helo,
    "-f",
    `bench@${helo}`,
    "-t",
    `sink@${helo}`,
    "-S",
    "bench",
    `127.0.0.1:${port}`
  ]
}

/** One smtp-source run to its end: its wall time (spawn to exit); throws with its fatal line unless it exits 0. */
export const runSmtpSource = async (
  port: number,
  r: SourceRun,
  timeoutMs: number
): Promise<{ seconds: number; args: string[] }> => {
  const args = smtpSourceArgs(port, r)
  const t0 = process.hrtime.bigint()
  const out = await runBounded(SMTP_SOURCE, args, { env: { PATH: "/usr/sbin:/usr/bin:/bin", LANG: "C" }, timeoutMs })
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (out.code !== 0) {
    const why = out.timedOut ? `timed out after ${timeoutMs / 1000} s` : `exit code ${out.code ?? out.signal}`
    throw new Error(`smtp-source ${why}: ${out.stderr.trim().split("\n").slice(-2).join(" / ") || "(no output)"}`)
  }
  return { seconds, args }
}
