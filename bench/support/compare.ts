// `--compare REV`: another revision's polyproxy run beside the working tree's, for "no regression" checks. Its
// checkout is a git worktree under .tmp/compare/<commit> (made once, reused by later runs, its node_modules a link to
// the repository's), run by the same Node as the working tree's polyproxy: from its dist/cli.js when the run uses
// dist and that worktree has been built, else from its src/cli.ts (the same JavaScript, Node strips the types).
import { execFileSync } from "node:child_process"
import { existsSync, symlinkSync } from "node:fs"
import { join, relative } from "node:path"
import { entryFile, type ProxyEntry, type ProxyForm, repoRoot } from "./polyproxy.ts"

const git = (args: readonly string[], cwd = repoRoot): string =>
  execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim()

/** The commit `rev` names, or undefined when it names none. */
export const resolveCommit = (rev: string): string | undefined => {
  try {
    return git(["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`])
  } catch {
    return undefined
  }
}

/** The checkout of `commit` for `--compare` (made if missing), and what the run should know about it. */
export const comparedEntry = (commit: string, form: ProxyForm): { entry: ProxyEntry; warnings: string[] } => {
  const root = join(repoRoot, ".tmp", "compare", commit)
  if (!existsSync(root)) git(["worktree", "add", "--detach", root, commit])
  // A directory that is not that commit's worktree would be read through the repository's own .git: refuse it.
  else if (!existsSync(join(root, ".git")) || git(["rev-parse", "HEAD"], root) !== commit) {
    throw new Error(
      `${relative(repoRoot, root)} is not a worktree of ${commit}: remove it (git worktree remove --force, or rm -r)`
    )
  }
  if (!existsSync(join(root, "node_modules"))) symlinkSync(join(repoRoot, "node_modules"), join(root, "node_modules"))
  const rev = git(["rev-parse", "--short", commit])
  const entry: ProxyEntry = {
    form: form === "dist" && existsSync(entryFile({ form, root })) ? "dist" : "src",
    root,
    rev
  }
  const warnings: string[] = []
  try {
    git(["diff", "--quiet", commit, "--", "package-lock.json"])
  } catch {
    warnings.push(`package-lock.json differs since ${rev}: that revision runs with the working tree's node_modules`)
  }
  return { entry, warnings }
}
