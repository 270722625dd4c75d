// Prints the bench rows of the README's Performance table from a results file of bench/run.ts, with the targets'
// verdicts under it and a warning when the run was not publishable.
//   node bench/readme.ts [bench/results/latest.json]
import { readFileSync } from "node:fs"
import { join } from "node:path"
import type { ScenarioResult } from "./support/interleave.ts"
import { repoRoot } from "./support/polyproxy.ts"
import { readmeTable, renderTargets, targets } from "./support/targets.ts"

const file = process.argv[2] ?? join(repoRoot, "bench", "results", "latest.json")
const results = JSON.parse(readFileSync(file, "utf8")) as {
  meta: { command: string; publishable?: boolean; notPublishableBecause?: string[]; machine: { date: string } }
  scenarios: Record<string, ScenarioResult>
}
if (results.meta.publishable !== true) {
  process.stderr.write(
    `warning: ${file} is NOT PUBLISHABLE: ${(results.meta.notPublishableBecause ?? ["made before the noise rule"]).join("; ")}\n`
  )
}
process.stdout.write(
  [
    ...readmeTable(results.scenarios),
    "",
    `From \`${results.meta.command}\` on ${results.meta.machine.date.slice(0, 10)}; medians over interleaved rounds, ` +
      'ratios paired by round; "bound": the generator or the origin was the limit (bench/README.md).',
    "",
    ...renderTargets(targets(results.scenarios)),
    ""
  ].join("\n")
)
