// The bench's C programs, compiled on demand with the machine's C compiler (as the load harness's, load/native.ts):
// bench/native/loadgen.c and tls-origin.c into bench/native/bin/ (git-ignored), again whenever a source or the
// shared header is newer than its binary; the echo backend is the load harness's (load/native/backend.c, tcp mode).
// They need libc and OpenSSL's libssl/libcrypto (scripts/install-bench-deps.sh installs gcc and libssl-dev).
import { fileURLToPath } from "node:url"
import { buildC, buildNative, nativeCommonHeader } from "../../load/native.ts"

const dir = fileURLToPath(new URL("../native/", import.meta.url))

export interface BenchBinaries {
  /** bench/native/loadgen.c: conn, echo, bulk, latency and tls loops. */
  readonly loadgen: string
  /** bench/native/tls-origin.c: answers "ok\n" after each TLS handshake. */
  readonly tlsOrigin: string
  /** load/native/backend.c: the echo backend (`--mode tcp`). */
  readonly echo: string
  /** Compiler command lines run now (empty when every binary was up to date). */
  readonly built: ReadonlyArray<string>
}

let cached: BenchBinaries | undefined

/** Builds what is missing or stale; throws with the compiler's reason when it cannot (the bench has no fallback). */
export const benchBinaries = (): BenchBinaries => {
  if (cached !== undefined) return cached
  const load = buildNative()
  if ("reason" in load) throw new Error(`load/native: ${load.reason} (bash scripts/install-bench-deps.sh)`)
  const ssl = ["-lssl", "-lcrypto"]
  const own = buildC(
    dir,
    [
      { name: "loadgen", libs: ssl },
      { name: "tls-origin", libs: ssl }
    ],
    [nativeCommonHeader]
  )
  if ("reason" in own) throw new Error(`bench/native: ${own.reason} (bash scripts/install-bench-deps.sh)`)
  cached = {
    loadgen: own.binaries.loadgen!,
    tlsOrigin: own.binaries["tls-origin"]!,
    echo: load.backend,
    built: [...load.built, ...own.built]
  }
  return cached
}
