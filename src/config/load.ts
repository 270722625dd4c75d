// Reads a config file (YAML or JSON: YAML is a superset), applies the environment, validates.
import * as fs from "node:fs"
import * as path from "node:path"
import { parse, YAMLParseError } from "yaml"
import type { Config } from "./Config.ts"
import { ConfigError, type DecodeOptions, decodeConfig } from "./decode.ts"
import { applyEnv } from "./env.ts"
import { isObj, show } from "./fields.ts"

/**
 * The parser's message as "FILE:LINE:COLUMN: why", then its code frame (the lines around the error and a caret under
 * it), indented; without the frame, "at line 3, column 1:" would point at nothing.
 */
const yamlError = (e: unknown, file: string): string => {
  if (!(e instanceof YAMLParseError)) return `${file}: ${(e as Error).message}`
  const [first = "", ...frame] = e.message.split("\n")
  const at = e.linePos?.[0]
  const what = first.replace(/ at line \d+, column \d+:?$/, "")
  while (frame.length > 0 && frame[0]!.trim() === "") frame.shift()
  while (frame.length > 0 && frame[frame.length - 1]!.trim() === "") frame.pop()
  const where = at === undefined ? file : `${file}:${at.line}:${at.col}`
  return `${where}: ${what}${frame.map((l) => `\n    ${l}`).join("")}`
}

/** The file's top-level mapping; an empty file (or only comments) is an empty one, which the environment may fill. */
export const parseConfigText = (text: string, file: string): Record<string, unknown> => {
  let raw: unknown
  try {
    raw = parse(text, { prettyErrors: true, uniqueKeys: true })
  } catch (e) {
    throw new ConfigError("", `not valid YAML/JSON: ${yamlError(e, file)}`)
  }
  if (raw === null || raw === undefined) return {}
  if (!isObj(raw)) {
    const got = Array.isArray(raw) ? "a list" : `${typeof raw} ${show(raw)}`
    throw new ConfigError("", `${file}: the top level must be a mapping of keys (listeners:, routes:, …), got ${got}`)
  }
  return raw
}

/**
 * Loads FILE (or only the environment when FILE is undefined). Throws ConfigError with the bad key and why. `options`:
 * listener types of your own (pass the same to runProxy).
 */
export const loadConfig = (
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd: string = process.cwd(),
  options: DecodeOptions = {}
): Config => {
  let raw: unknown = {}
  let baseDir = cwd
  if (file !== undefined) {
    const full = path.resolve(cwd, file)
    let text: string
    try {
      text = fs.readFileSync(full, "utf8")
    } catch (e) {
      throw new ConfigError("", `cannot read config file ${full}: ${(e as NodeJS.ErrnoException).code ?? e}`)
    }
    raw = parseConfigText(text, full)
    baseDir = path.dirname(full)
  }
  return decodeConfig(applyEnv(raw, env, cwd), baseDir, options)
}
