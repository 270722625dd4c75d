// The fenced code blocks of a Markdown file, so specs can check that what the README shows still works.
// A block's info string is its language and optional words after it: "```yaml fragment" marks a config excerpt that
// is not a complete file (checked by nothing).

export interface CodeBlock {
  /** The language word of the info string ("ts", "yaml", "sh"; "" when none). */
  readonly lang: string
  /** The words after the language. */
  readonly flags: ReadonlyArray<string>
  /** 1-based line of the opening fence, for messages that point into the README. */
  readonly line: number
  readonly code: string
}

export const codeBlocks = (markdown: string): Array<CodeBlock> => {
  const lines = markdown.split("\n")
  const blocks: Array<CodeBlock> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!)
    if (open === null) continue
    const [lang = "", ...flags] = open[1]!.trim().split(/\s+/).filter(Boolean)
    const start = i
    let end = i + 1
    while (end < lines.length && !lines[end]!.startsWith("```")) end++
    if (end === lines.length) throw new Error(`unclosed code block at line ${start + 1}`)
    blocks.push({ lang, flags, line: start + 1, code: `${lines.slice(start + 1, end).join("\n")}\n` })
    i = end
  }
  return blocks
}

/** Blocks of `lang` that are complete (not marked `fragment`). */
export const completeBlocks = (markdown: string, lang: string): Array<CodeBlock> =>
  codeBlocks(markdown).filter((b) => b.lang === lang && !b.flags.includes("fragment"))
