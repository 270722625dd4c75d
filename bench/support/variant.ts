// One contestant of an interleaved scenario (direct, polyproxy, HAProxy, nginx): where the load goes, whose CPU counts.
import type { VariantInfo } from "./interleave.ts"

export interface Variant<N extends string = string> {
  readonly name: N
  readonly port: number
  /** Processes whose CPU is the proxy's (with their descendants: cluster workers, nginx's worker). */
  readonly pids: readonly number[]
  readonly alive: () => boolean
  readonly info: VariantInfo
}

/** The backend itself, no proxy in between (nothing's CPU to count). */
export const directVariant = <N extends string>(name: N, port: number, description: string): Variant<N> => ({
  name,
  port,
  pids: [],
  alive: () => true,
  info: { name, label: "direct", description }
})

/** A proxy process the scenario started. */
export const processVariant = <N extends string>(
  name: N,
  port: number,
  process: { readonly pid: number; readonly alive: () => boolean },
  label: string,
  description: string
): Variant<N> => ({ name, port, pids: [process.pid], alive: process.alive, info: { name, label, description } })

/** Whether a child process still runs. */
export const childAlive =
  (child: { readonly exitCode: number | null; readonly signalCode: NodeJS.Signals | null }) => () =>
    child.exitCode === null && child.signalCode === null

/** What each variant asked for is, in the asked order; one that could not be started says so. */
export const variantInfos = (
  names: readonly string[],
  started: readonly { readonly name: string; readonly info: VariantInfo }[]
): VariantInfo[] =>
  names.map(
    (name) => started.find((v) => v.name === name)?.info ?? { name, label: name, description: "could not be started" }
  )
