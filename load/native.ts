// The native agent and backend (load/native/*.c): compiled on demand with the machine's C compiler into
// load/native/bin/ (git-ignored), again whenever a source is newer than its binary. Nothing but libc: `cc -O2`.
import { execFileSync } from "node:child_process"
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs"
import { delimiter, join } from "node:path"
import { fileURLToPath } from "node:url"

const dir = fileURLToPath(new URL("native/", import.meta.url))
export const nativeBinDir = join(dir, "bin")

export interface NativeBinaries {
  readonly agent: string
  readonly backend: string
  /** What was compiled now (empty when both binaries were up to date), for the log. */
  readonly built: ReadonlyArray<string>
}

/** $CC, else the first of cc, gcc, clang on PATH. */
export const findCompiler = (): string | undefined => {
  const wanted = process.env.CC !== undefined && process.env.CC !== "" ? [process.env.CC] : ["cc", "gcc", "clang"]
  for (const name of wanted) {
    if (name.includes("/")) {
      if (existsSync(name)) return name
      continue
    }
    for (const d of (process.env.PATH ?? "").split(delimiter)) {
      const file = join(d, name)
      try {
        accessSync(file, constants.X_OK)
        return file
      } catch {}
    }
  }
  return undefined
}

const mtime = (file: string) => {
  try {
    return statSync(file).mtimeMs
  } catch {
    return -1
  }
}

/**
 * Builds what is missing or stale. Returns the binaries, or a reason they are not there (no compiler, a compile
 * error): the caller falls back to the Node agent and backend, or stops.
 */
export const buildNative = (): NativeBinaries | { readonly reason: string } => {
  const cc = findCompiler()
  const header = join(dir, "common.h")
  const built: Array<string> = []
  const out: Record<string, string> = {}
  for (const name of ["agent", "backend"]) {
    const source = join(dir, `${name}.c`)
    const binary = join(nativeBinDir, name)
    out[name] = binary
    if (mtime(binary) >= Math.max(mtime(source), mtime(header))) continue
    if (cc === undefined) return { reason: "no C compiler (cc, gcc or clang) on PATH" }
    mkdirSync(nativeBinDir, { recursive: true })
    // Into a temporary name, then renamed: a run never starts a half-written binary.
    const tmp = `${binary}.${process.pid}.tmp`
    const args = ["-O2", "-Wall", "-Wextra", "-o", tmp, source]
    try {
      execFileSync(cc, args, { stdio: ["ignore", "pipe", "pipe"] })
      renameSync(tmp, binary)
      built.push(`${cc} ${args.join(" ").replace(tmp, binary)}`)
    } catch (e) {
      rmSync(tmp, { force: true })
      const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? (e as Error).message
      return { reason: `${cc} failed on ${name}.c: ${stderr.split("\n").slice(0, 5).join(" | ")}` }
    }
  }
  return { agent: out.agent!, backend: out.backend!, built }
}
