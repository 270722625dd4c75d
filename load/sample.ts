// What a step measures: process memory from /proc/PID/status and smaps_rollup, kernel socket memory from
// /proc/net/sockstat, /proc/meminfo and /proc/slabinfo (root only), and the proxy's own /metrics.
import { readdirSync, readFileSync } from "node:fs"

export interface ProcMemory {
  readonly pid: number
  /** Resident set: what `ps` and the budget count. Pages shared between workers (the node binary) are
   * counted once per process. */
  readonly rss: number
  /** RSS of anonymous memory (heap, buffers): the part that grows with connections. */
  readonly rssAnon: number
  /** Proportional set size: shared pages split between the processes that map them. */
  readonly pss: number
  /** Open file descriptors: each proxied connection holds two in the worker that has it (limit here: 20,000). */
  readonly fds: number
}

const kb = (text: string, key: string): number => {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)
  return m === null ? 0 : Number(m[1]) * 1024
}

export const procMemory = (pid: number): ProcMemory | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    let pss = 0
    try {
      pss = kb(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"), "Pss")
    } catch {}
    let fds = 0
    try {
      fds = readdirSync(`/proc/${pid}/fd`).length
    } catch {}
    return { pid, rss: kb(status, "VmRSS"), rssAnon: kb(status, "RssAnon"), pss, fds }
  } catch {
    return undefined
  }
}

export interface KernelMemory {
  /** /proc/net/sockstat: TCP sockets in use, in TIME_WAIT, and pages of socket buffers. */
  readonly tcpInuse: number
  readonly tcpTimeWait: number
  readonly tcpBufferBytes: number
  /** /proc/meminfo Slab (all kernel object caches), bytes. */
  readonly slabBytes: number
  /** /proc/slabinfo (root): bytes held by the caches that grow with sockets; empty when unreadable. */
  readonly caches: Readonly<Record<string, number>>
  readonly conntrack: number | undefined
}

/** The slab caches a TCP socket (with its file, inode, dentry and epoll entry) lives in. */
const socketCaches = [
  "TCP",
  "request_sock_TCP",
  "sock_inode_cache",
  "dentry",
  "filp",
  "eventpoll_epi",
  "skbuff_head_cache"
]

const pageSize = 4096

export const kernelMemory = (): KernelMemory => {
  const sockstat = readFileSync("/proc/net/sockstat", "utf8")
  const tcp = /^TCP: inuse (\d+) orphan \d+ tw (\d+) alloc \d+ mem (\d+)/m.exec(sockstat)
  const meminfo = readFileSync("/proc/meminfo", "utf8")
  const caches: Record<string, number> = {}
  try {
    for (const line of readFileSync("/proc/slabinfo", "utf8").split("\n")) {
      const f = line.split(/\s+/)
      const name = f[0] ?? ""
      if (socketCaches.includes(name)) caches[name] = Number(f[1]) * Number(f[3])
    }
  } catch {}
  let conntrack: number | undefined
  try {
    conntrack = Number(readFileSync("/proc/sys/net/netfilter/nf_conntrack_count", "utf8"))
  } catch {}
  return {
    tcpInuse: Number(tcp?.[1] ?? 0),
    tcpTimeWait: Number(tcp?.[2] ?? 0),
    tcpBufferBytes: Number(tcp?.[3] ?? 0) * pageSize,
    slabBytes: kb(meminfo, "Slab"),
    caches,
    conntrack
  }
}

export const memAvailable = (): number => kb(readFileSync("/proc/meminfo", "utf8"), "MemAvailable")

/** Sums the samples of a Prometheus metric whose labels include every `labels` pair. */
export const metricValue = (text: string, name: string, labels: Readonly<Record<string, string>> = {}): number => {
  let sum = 0
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue
    const value = Number(line.slice(line.lastIndexOf(" ") + 1))
    if (Number.isFinite(value)) sum += value
  }
  return sum
}

/** Every sample of `name`, keyed by its label text (for the errors breakdown). */
export const metricSamples = (text: string, name: string): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue
    const value = Number(line.slice(line.lastIndexOf(" ") + 1))
    out[line.slice(name.length, line.lastIndexOf(" "))] = value
  }
  return out
}

export const sysctl = (name: string): string => {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim()
  } catch {
    return ""
  }
}

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. USER_HZ is 100 on Linux. */
export const cpuSeconds = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return 0
  }
}

/** Packets dropped because a CPU's input backlog was full (net.core.netdev_max_backlog), all CPUs: the second column
 * of /proc/net/softnet_stat (hex). On loopback every packet of every socket here passes through that backlog. */
export const softnetDrops = (): number => {
  try {
    return readFileSync("/proc/net/softnet_stat", "utf8")
      .trim()
      .split("\n")
      .reduce((sum, line) => sum + Number.parseInt(line.split(/\s+/)[1] ?? "0", 16), 0)
  } catch {
    return 0
  }
}

/** TCP counters of the whole machine (/proc/net/netstat TcpExt and /proc/net/snmp Tcp) that explain lost or refused
 * connections: listen-queue overflows, resets, aborts, keep-alive probes sent, SYN cookies; and SoftnetDrops (above).
 * Differences between two samples are what count (other work on the machine moves them too). */
export const tcpCounters = (): Record<string, number> => {
  const wanted = [
    "ListenOverflows",
    "ListenDrops",
    "TCPAbortOnData",
    "TCPAbortOnClose",
    "TCPAbortOnMemory",
    "TCPAbortOnTimeout",
    "TCPAbortFailed",
    "TCPKeepAlive",
    "TCPMemoryPressures",
    "TCPChallengeACK",
    "TCPSYNChallenge",
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "PAWSEstab",
    "TCPBacklogDrop",
    "TCPTimeWaitOverflow",
    "EstabResets",
    "AttemptFails",
    "OutRsts",
    "InErrs"
  ]
  const out: Record<string, number> = { SoftnetDrops: softnetDrops() }
  for (const file of ["/proc/net/netstat", "/proc/net/snmp"]) {
    let lines: Array<string> = []
    try {
      lines = readFileSync(file, "utf8").split("\n")
    } catch {}
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const keys = lines[i]!.split(/\s+/)
      const values = lines[i + 1]!.split(/\s+/)
      if (keys[0] !== "TcpExt:" && keys[0] !== "Tcp:") continue
      keys.forEach((k, j) => {
        if (wanted.includes(k)) out[k] = Number(values[j])
      })
    }
  }
  return out
}
