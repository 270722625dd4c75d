// The native agent and backend (load/native/*.c): compiled on demand with the machine's C compiler into
// load/native/bin/ (git-ignored), again whenever a source is newer than its binary. `cc -O2`, libc, and for the
// agent OpenSSL's libcrypto (the SCRAM and md5 logins of mode postgres-pooled: native/pglogin.h).
import { execFileSync } from "node:child_process"
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs"
import { delimiter, join } from "node:path"
import { fileURLToPath } from "node:url"

const dir = fileURLToPath(new URL("native/", import.meta.url))
export const nativeBinDir = join(dir, "bin")
/** What the native programs share (bench/native includes it too). */
export const nativeCommonHeader = join(dir, "common.h")
/** The agent's PostgreSQL login (postgres-pooled). */
const pgLoginHeader = join(dir, "pglogin.h")

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

export interface CProgram {
  readonly name: string
  /** Linker flags after the source, e.g. ["-lssl", "-lcrypto"]. */
  readonly libs?: ReadonlyArray<string>
}

/**
 * Compiles `srcDir/NAME.c` into `srcDir/bin/NAME` for every program that is missing or older than its source or one
 * of `headers`. Returns the binaries by name, or a reason they are not there (no compiler, a compile error): the
 * caller falls back to something else, or stops.
 */
export const buildC = (
  srcDir: string,
  programs: ReadonlyArray<CProgram>,
  headers: ReadonlyArray<string>
):
  | { readonly binaries: Readonly<Record<string, string>>; readonly built: ReadonlyArray<string> }
  | { readonly reason: string } => {
  const cc = findCompiler()
  const built: Array<string> = []
  const binaries: Record<string, string> = {}
  const binDir = join(srcDir, "bin")
  for (const { name, libs = [] } of programs) {
    const source = join(srcDir, `${name}.c`)
    const binary = join(binDir, name)
    binaries[name] = binary
    if (mtime(binary) >= Math.max(mtime(source), ...headers.map(mtime))) continue
    if (cc === undefined) return { reason: "no C compiler (cc, gcc or clang) on PATH" }
    mkdirSync(binDir, { recursive: true })
    // Into a temporary name, then renamed: a run never starts a half-written binary.
    const tmp = `${binary}.${process.pid}.tmp`
    const args = ["-O2", "-Wall", "-Wextra", "-o", tmp, source, ...libs]
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
  return { binaries, built }
}

/**
 * Builds what is missing or stale. Returns the binaries, or a reason they are not there (no compiler, a compile
 * error): the caller falls back to the Node agent and backend, or stops.
 */
export const buildNative = (): NativeBinaries | { readonly reason: string } => {
  const r = buildC(
    dir,
    [{ name: "agent", libs: ["-lcrypto"] }, { name: "backend" }],
    [nativeCommonHeader, pgLoginHeader]
  )
  return "reason" in r ? r : { agent: r.binaries.agent!, backend: r.binaries.backend!, built: r.built }
}
