// `make stack`, as a user runs it (stack/stack.ts up … down), with src/cli.ts instead of the built dist/cli.js:
// every tenant of every protocol answers through each of the three instances with real clients, a purge is
// accepted, and `down` leaves no process and no state behind.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { MongoClient } from "mongodb"
import mysql from "mysql2/promise"
import nodemailer from "nodemailer"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { alive, readState, type StackState, tenantIds } from "../../stack/stack.ts"

const root = path.resolve(import.meta.dirname, "../..")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-stack-"))
const stackCli = path.join(root, "stack/stack.ts")

const runStack = (args: string[], timeoutMs: number) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, [stackCli, ...args, "--dir", dir], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    const timer = setTimeout(() => child.kill("SIGINT"), timeoutMs)
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })

let state: StackState
let upOutput = ""

beforeAll(async () => {
  const up = await runStack(["up", "--cli", "src/cli.ts", "--ttl", "300"], 150_000)
  upOutput = up.output
  if (up.code !== 0) throw new Error(`stack up failed (${up.code}):\n${up.output}`)
  state = readState(dir)!
}, 180_000)

afterAll(async () => {
  // Normally the last test has stopped it; otherwise stop it here, and kill its process group if that fails.
  if (readState(dir)) await runStack(["down"], 40_000)
  const pid = state?.pid
  if (pid && alive(pid)) process.kill(-pid, "SIGKILL")
  fs.rmSync(dir, { recursive: true, force: true })
}, 60_000)

const httpGet = (port: number, host: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/hello", headers: { host }, timeout: 5_000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on("error", reject)
  })

describe("make stack (local processes)", () => {
  it("prints the quick-start commands with the ports it bound", () => {
    expect(state.instances.map((i) => i.name)).toEqual(["p1", "p2", "p3"])
    const p1 = state.instances[0]!
    expect(upOutput).toContain(`127.0.0.1:${p1.ports.postgres}/acme_pg`)
    expect(upOutput).toContain(`-P ${p1.ports.mysql} `)
    expect(upOutput).toContain(`--server 127.0.0.1:${p1.ports.smtp}`)
    expect(upOutput).toContain(`http://127.0.0.1:${p1.admin}/readyz`)
    expect(upOutput).toMatch(/psql .*mysql .*mongosh .*swaks .*curl /s)
  })

  it("routes both PostgreSQL tenants through every instance", async () => {
    for (const i of state.instances) {
      for (const database of tenantIds.postgres) {
        const c = new pg.Client({
          host: "127.0.0.1",
          port: i.ports.postgres,
          user: state.postgres.user,
          password: state.postgres.password,
          database
        })
        await c.connect()
        const r = await c.query("select current_database() as db")
        expect(r.rows[0].db).toBe(database)
        await c.end()
      }
    }
  })

  it("routes both MariaDB tenants through every instance", async () => {
    for (const i of state.instances) {
      for (const database of tenantIds.mysql) {
        const c = await mysql.createConnection({
          host: "127.0.0.1",
          port: i.ports.mysql,
          user: state.mariadb.user,
          password: state.mariadb.password,
          database
        })
        const [rows] = await c.query("select database() as db")
        expect((rows as Array<{ db: string }>)[0]!.db).toBe(database)
        await c.end()
      }
    }
  })

  it("routes both MongoDB tenants through every instance", async () => {
    for (const i of state.instances) {
      const client = new MongoClient(`mongodb://127.0.0.1:${i.ports.mongodb}/?directConnection=true`, {
        serverSelectionTimeoutMS: 5_000
      })
      await client.connect()
      try {
        for (const db of tenantIds.mongodb) {
          await client.db(db).collection("visits").insertOne({ via: i.name })
          expect(await client.db(db).collection("visits").countDocuments({ via: i.name })).toBe(1)
        }
      } finally {
        await client.close()
      }
    }
  })

  it("routes both SMTP tenants (by EHLO domain) through every instance to the sink", async () => {
    for (const i of state.instances) {
      for (const domain of tenantIds.smtp) {
        const transport = nodemailer.createTransport({
          host: "127.0.0.1",
          port: i.ports.smtp,
          secure: false,
          ignoreTLS: true,
          name: domain
        })
        await transport.sendMail({ from: `ops@${domain}`, to: `team@${domain}`, subject: i.name, text: "hi" })
        transport.close()
      }
    }
    await expect
      .poll(() => fs.readFileSync(state.smtp.mailLog, "utf8").trim().split("\n").filter(Boolean).length)
      .toBe(6)
    const mail = fs
      .readFileSync(state.smtp.mailLog, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { ehlo: string })
    expect(mail.map((m) => m.ehlo).sort()).toEqual([...tenantIds.smtp, ...tenantIds.smtp, ...tenantIds.smtp].sort())
  })

  it("routes both HTTP tenants (by Host) through every instance", async () => {
    for (const i of state.instances) {
      for (const host of tenantIds.http) {
        const r = await httpGet(i.ports.http, host)
        expect(r.status).toBe(200)
        expect(JSON.parse(r.body)).toMatchObject({ origin: "stack-origin", host, url: "/hello" })
      }
    }
    expect((await httpGet(state.instances[0]!.ports.http, "nobody.localhost")).status).toBe(404)
  })

  it("answers the admin API of each instance, purges included", async () => {
    for (const i of state.instances) {
      expect((await fetch(`http://127.0.0.1:${i.admin}/readyz`)).status).toBe(200)
    }
    const purge = await fetch(`http://127.0.0.1:${state.instances[1]!.admin}/admin/purge?id=acme_pg`, {
      method: "POST"
    })
    expect(await purge.json()).toEqual({ purged: "acme_pg" })
  })

  it("`down` stops every process it started and removes its state", async () => {
    const pids = [state.pid, ...state.instances.map((i) => i.pid)]
    const down = await runStack(["down"], 40_000)
    expect(down.code, down.output).toBe(0)
    expect(down.output).toContain("stack stopped")
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false)
    expect(readState(dir)).toBeUndefined()
    expect(fs.existsSync(path.join(dir, "stack.json"))).toBe(false)
    // Every backend port is closed too.
    for (const port of [state.postgres.port, state.mariadb.port, state.redis.port]) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, "127.0.0.1")
        s.once("connect", () => {
          s.destroy()
          resolve(false)
        })
        s.once("error", () => resolve(true))
      })
      expect(refused, `port ${port}`).toBe(true)
    }
  })
})
