// The field decoders every config section uses: each takes the raw value and the key path, and either returns the
// value (or its default) or throws a ConfigError naming the key and why.

export class ConfigError extends Error {
  readonly key: string
  constructor(key: string, why: string) {
    super(key === "" ? why : `${key}: ${why}`)
    this.key = key
    this.name = "ConfigError"
  }
}

export type Obj = Record<string, unknown>
export const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)
export const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(JSON.stringify(v) ?? v))

export const object = (v: unknown, key: string, known: ReadonlyArray<string>): Obj => {
  if (!isObj(v)) throw new ConfigError(key, `expected a mapping, got ${show(v)}`)
  for (const k of Object.keys(v)) {
    if (!known.includes(k))
      throw new ConfigError(key === "" ? k : `${key}.${k}`, `unknown key (known: ${known.join(", ")})`)
  }
  return v
}

export const int = (v: unknown, key: string, min: number, max: number, fallback?: number): number => {
  if (v === undefined && fallback !== undefined) return fallback
  if (v === undefined) throw new ConfigError(key, `required: an integer from ${min} to ${max}`)
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(key, `expected an integer from ${min} to ${max}, got ${show(v)}`)
  }
  return v
}

export const seconds = (v: unknown, key: string, fallback: number): number => {
  if (v === undefined) return fallback
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 86_400) {
    throw new ConfigError(key, `expected a number of seconds from 0 to 86400, got ${show(v)}`)
  }
  return v
}

export const fraction = (v: unknown, key: string, fallback: number): number => {
  if (v === undefined) return fallback
  if (typeof v !== "number" || !(v >= 0 && v <= 1))
    throw new ConfigError(key, `expected a number from 0 to 1, got ${show(v)}`)
  return v
}

export const str = (v: unknown, key: string, fallback?: string): string => {
  if (v === undefined && fallback !== undefined) return fallback
  if (typeof v !== "string" || v.length === 0) throw new ConfigError(key, `expected a non-empty string, got ${show(v)}`)
  return v
}

export const bool = (v: unknown, key: string, fallback: boolean): boolean => {
  if (v === undefined) return fallback
  if (typeof v !== "boolean") throw new ConfigError(key, `expected true or false, got ${show(v)}`)
  return v
}

export const oneOf = <A extends string>(v: unknown, key: string, options: ReadonlyArray<A>, fallback: A): A => {
  if (v === undefined) return fallback
  if (typeof v !== "string" || !options.includes(v as A)) {
    throw new ConfigError(key, `expected one of ${options.join(", ")}, got ${show(v)}`)
  }
  return v as A
}
