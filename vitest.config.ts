import { defineConfig } from "vitest/config"

// Conformance specs start real servers; give them room on a 2-core machine.
export default defineConfig({
  test: {
    include: ["spec/**/*.spec.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"]
  }
})
