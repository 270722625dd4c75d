// Structured logs: one line per event, JSON when stdout is not a TTY. Plain functions so Node callbacks can log
// without running an Effect.
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type { LogLevel } from "../config/Config.ts"

export type Fields = Readonly<Record<string, unknown>>

export interface LogShape {
  readonly debug: (event: string, fields?: Fields) => void
  readonly info: (event: string, fields?: Fields) => void
  readonly warn: (event: string, fields?: Fields) => void
  readonly error: (event: string, fields?: Fields) => void
  readonly enabled: (level: LogLevel) => boolean
}

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface LogOptions {
  readonly level: LogLevel
  readonly format: "auto" | "json" | "pretty"
  /** Where lines go; defaults to stdout. Tests capture them. */
  readonly write?: (line: string) => void
  readonly isTty?: boolean
}

const pretty = (level: LogLevel, event: string, fields: Fields | undefined): string => {
  const time = new Date().toISOString().slice(11, 23)
  const rest =
    fields === undefined
      ? ""
      : Object.entries(fields)
          .map(([k, v]) => ` ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
          .join("")
  return `${time} ${level.toUpperCase().padEnd(5)} ${event}${rest}\n`
}

const json = (level: LogLevel, event: string, fields: Fields | undefined): string =>
  `${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }, (_k, v) =>
    v instanceof Error ? v.message : typeof v === "bigint" ? String(v) : v
  )}\n`

export const makeLog = (options: LogOptions): LogShape => {
  const write = options.write ?? ((line: string) => process.stdout.write(line))
  const tty = options.isTty ?? process.stdout.isTTY === true
  const render = options.format === "json" || (options.format === "auto" && !tty) ? json : pretty
  const min = rank[options.level]
  const at = (level: LogLevel) =>
    rank[level] < min ? () => {} : (event: string, fields?: Fields) => write(render(level, event, fields))
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    enabled: (level) => rank[level] >= min
  }
}

export class Log extends Context.Service<Log, LogShape>()("polyproxy/Log") {
  static readonly layer = (options: LogOptions) => Layer.sync(Log, () => makeLog(options))
  /** Collects lines in memory for assertions. */
  static readonly layerTest = (lines: Array<Fields & { level: string; event: string }>) =>
    Layer.sync(Log, () => {
      const push = (level: LogLevel) => (event: string, fields?: Fields) => lines.push({ level, event, ...fields })
      return { debug: push("debug"), info: push("info"), warn: push("warn"), error: push("error"), enabled: () => true }
    })
}
