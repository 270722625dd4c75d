// Reads a config file (YAML or JSON: YAML is a superset), applies the environment, validates.
import * as fs from "node:fs"
import * as path from "node:path"
import { parse } from "yaml"
import type { Config } from "./Config.ts"
import { ConfigError, decodeConfig } from "./decode.ts"
import { applyEnv } from "./env.ts"

export const parseConfigText = (text: string, file: string): unknown => {
  try {
    return parse(text, { prettyErrors: true, uniqueKeys: true }) ?? {}
  } catch (e) {
    throw new ConfigError("", `${file}: not valid YAML/JSON: ${(e as Error).message.split("\n")[0]}`)
  }
}

/** Loads FILE (or only the environment when FILE is undefined). Throws ConfigError with the bad key and why. */
export const loadConfig = (
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd: string = process.cwd()
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
  return decodeConfig(applyEnv(raw, env, cwd), baseDir)
}
