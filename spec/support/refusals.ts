// What a refused client reads against what the proxy logs: the client's text carries a ref and none of the detail;
// the log line with that ref carries the detail (listeners/refusal.ts).
import { expect } from "vitest"
import type { TestProxy } from "./proxy.ts"

/** The ref of a client's refusal text `polyproxy: … (ref <12 hex digits>)`; fails when there is none. */
export const refOf = (text: string): string => {
  const found = /\(ref ([0-9a-f]{12})\)/.exec(text)
  if (found === null) throw new Error(`no ref in ${JSON.stringify(text)}`)
  return found[1]!
}

/** The proxy's log line for the refusal the client was told about in `text`. */
export const refusalLine = (logs: TestProxy["logs"], text: string) => {
  const ref = refOf(text)
  const line = logs.find((l) => l.ref === ref)
  if (line === undefined) throw new Error(`no log line with ref ${ref}`)
  return line
}

/**
 * `text` (what the client shows) names none of `hidden`, and the log line with its ref holds each of them (in its
 * message, or its stack). Returns that line.
 */
export const expectShownOnlyInLog = (
  text: string,
  logs: TestProxy["logs"],
  hidden: ReadonlyArray<string>
): TestProxy["logs"][number] => {
  const line = refusalLine(logs, text)
  for (const h of hidden) {
    expect(text).not.toContain(h)
    expect(`${String(line.message)}\n${String(line.stack ?? "")}`).toContain(h)
  }
  return line
}
