#!/usr/bin/env node
// The `polyproxy` command (package bin; `node dist/cli.js` after `npm run build`).
import { createRequire } from "node:module"
import { checkConfig, env, routes, serve, usage } from "./cli/commands.ts"

const [command, ...args] = process.argv.slice(2)

switch (command) {
  case "serve":
    serve(args)
    break
  case "check-config":
    checkConfig(args)
    break
  case "routes":
    routes(args)
    break
  case "env":
    env()
    break
  case "--version":
  case "-v":
    process.stdout.write(`${(createRequire(import.meta.url)("../package.json") as { version: string }).version}\n`)
    break
  case undefined:
  case "--help":
  case "-h":
  case "help":
    process.stdout.write(usage)
    break
  default:
    process.stderr.write(`polyproxy: unknown command "${command}"\n\n${usage}`)
    process.exit(2)
}
