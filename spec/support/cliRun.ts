// The `polyproxy` command run as a user runs it: a child process, in this environment minus polyproxy's own variables
// (which would override the files under test), its exit code and what it printed.
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export const cliPath = path.resolve("src/cli.ts")

/** This process's environment without POLYPROXY_* and PROXY_TLS_*, plus `extra`. */
export const cleanEnv = (extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("POLYPROXY_") && !k.startsWith("PROXY_TLS_")) env[k] = v
  return { ...env, ...extra }
}

export interface CliRun {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export const runCli = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}): Promise<CliRun> =>
  new Promise((resolve) =>
    execFile(process.execPath, [cliPath, ...args], { env: cleanEnv(env), timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
    )
  )

/** A temp folder for a spec's config files: `write(name, text)` returns the file's path. */
export const configFolder = (prefix: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `polyproxy-${prefix}-`))
  const write = (name: string, text: string): string => {
    const file = path.join(dir, name)
    fs.writeFileSync(file, text)
    return file
  }
  return { dir, write }
}
