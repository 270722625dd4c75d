// Prints vitest's JSON report as one plain line, "tests: N passed, N failed, N skipped", for CI logs.
import { readFileSync } from "node:fs"

const report = JSON.parse(readFileSync(process.argv[2] ?? ".tmp/vitest.json", "utf8"))
const passed = report.numPassedTests ?? 0
const failed = report.numFailedTests ?? 0
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`)
