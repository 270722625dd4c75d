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

/** A proxy process the scenario started (or several serving one port: `pids`). */
export const processVariant = <N extends string>(
  name: N,
  port: number,
  process: { readonly pid: number; readonly pids?: readonly number[]; readonly alive: () => boolean },
  label: string,
  description: string
): Variant<N> => ({
  name,
  port,
  pids: process.pids ?? [process.pid],
  alive: process.alive,
  info: { name, label, description }
})

/** Whether a child process still runs. */
export const childAlive =
  (child: { readonly exitCode: number | null; readonly signalCode: NodeJS.Signals | null }) => () =>
    child.exitCode === null && child.signalCode === null

/** A polyproxy variant run from the revision given to `--compare` (bench/support/compare.ts): `polyproxy@5faad42`. */
export type Compared<N extends string> = `${N}@${string}`

export const comparedName = <N extends string>(name: N, rev: string): Compared<N> => `${name}@${rev}`

/** The variant of the working tree that `name` is compared with, if `name` runs another revision. */
export const comparedWith = (name: string): string | undefined =>
  name.includes("@") ? name.slice(0, name.indexOf("@")) : undefined

/** For the log: where the variant `name` listens, and its `--compare` twin if it has one. */
export const startedText = (variants: readonly { readonly name: string; readonly port: number }[], name: string) =>
  variants
    .filter((v) => v.name === name || comparedWith(v.name) === name)
    .map((v) => `${v.name} on 127.0.0.1:${v.port}`)
    .join(", ")

/**
 * What each variant asked for is, in the asked order, each followed by its compared revision's twin if one ran; one
 * that could not be started says so.
 */
export const variantInfos = (
  names: readonly string[],
  started: readonly { readonly name: string; readonly info: VariantInfo }[],
  label: (name: string) => string = (name) => name
): VariantInfo[] =>
  names.flatMap((name) => [
    started.find((v) => v.name === name)?.info ?? { name, label: label(name), description: "could not be started" },
    ...started.filter((v) => comparedWith(v.name) === name).map((v) => v.info)
  ])
