// Config specs: the ConfigError a decode refuses with, so a spec can assert its key and words.
import { ConfigError } from "../../src/config/decode.ts"

/** Runs `f`, which must throw a ConfigError; returns it (any other throw, or none, fails the spec). */
export const configErrorOf = (f: () => unknown): ConfigError => {
  try {
    f()
  } catch (e) {
    if (e instanceof ConfigError) return e
    throw e
  }
  throw new Error("expected a ConfigError")
}
