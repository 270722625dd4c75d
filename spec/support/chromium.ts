// Debian's Chromium driven by playwright-core, headless, for the dashboard specs. The flags are the ones that keep it
// quiet on a machine without internet (no background networking, updates or sync, each of which would dial out).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type BrowserContext, chromium, type Page } from "playwright-core"

export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

export interface Browser {
  readonly context: BrowserContext
  readonly page: Page
  /** Closes the browser and removes its profile. */
  readonly close: () => Promise<void>
}

/** Starts Chromium with a fresh profile; `args` are added to the quiet defaults. */
export const launchChromium = async (
  options: { readonly args?: ReadonlyArray<string>; readonly viewport?: { width: number; height: number } } = {}
): Promise<Browser> => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-chromium-"))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...(options.args ?? [])
    ],
    ...(options.viewport ? { viewport: options.viewport } : {})
  })
  const page = context.pages()[0] ?? (await context.newPage())
  return {
    context,
    page,
    close: async () => {
      await context.close()
      fs.rmSync(profile, { recursive: true, force: true })
    }
  }
}
