export type BackendProvider = "local" | "containers"

const PROBE_TIMEOUT_MS = 3_000

let chosen: Promise<BackendProvider> | undefined

/**
 * Decided once per process so that every server of a spec file comes from the same place.
 * TEST_BACKENDS=local|containers forces it; otherwise a reachable container engine wins, because it gives the
 * real servers (a real mongod, MySQL 8) that the local provider can only approximate.
 */
export const backendProvider = (): Promise<BackendProvider> => (chosen ??= choose())

const choose = async (): Promise<BackendProvider> => {
  const forced = process.env.TEST_BACKENDS?.trim()
  if (forced === "local" || forced === "containers") return forced
  if (forced) throw new Error(`TEST_BACKENDS must be "local" or "containers", not ${JSON.stringify(forced)}`)
  return (await containerEngineReachable()) ? "containers" : "local"
}

const containerEngineReachable = async (): Promise<boolean> => {
  let timer: NodeJS.Timeout | undefined
  // A DOCKER_HOST that accepts connections but never answers makes the probe hang, hence the race.
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS)
    timer.unref()
  })
  const probe = import("testcontainers").then(
    ({ getContainerRuntimeClient }) => getContainerRuntimeClient(),
    () => undefined
  )
  try {
    return await Promise.race([probe.then((client) => client !== undefined).catch(() => false), timeout])
  } finally {
    clearTimeout(timer)
  }
}
