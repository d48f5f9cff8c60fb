/**
 * Who holds something on a volume shared by several processes, possibly on
 * several hosts: a short token naming this process (host, boot, pid, start
 * time) and the moment it took hold, and the test of whether such an owner
 * is gone.
 *
 * The token goes into a file name (the filesystem backend's taken-aside
 * sessions), so that it is recorded by the very rename that takes hold:
 * there is no moment when the thing is held with no owner written down.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { hostname } from "node:os"

/** A holder of something, as recorded in its token. @internal */
export interface Owner {
  /** The first 16 hex digits of the SHA-256 of the host name (short, and safe in a file name). */
  readonly host: string
  /** The first 8 hex digits of the SHA-256 of the kernel's boot id: changes when the machine restarts. */
  readonly boot: string
  readonly pid: number
  /** The process's start time in clock ticks since boot (`/proc/<pid>/stat`); 0 where unknown. */
  readonly start: number
  /** When it took hold, in milliseconds since the epoch. */
  readonly at: number
}

/** The token of an owner: `<host>-<boot>-<pid>-<start>-<at in base 36>`, file-name safe. @internal */
export const ownerToken = (owner: Owner): string =>
  `${owner.host}-${owner.boot}-${owner.pid}-${owner.start}-${owner.at.toString(36)}`

/** The pattern of a token, for parsing it out of a longer name. @internal */
export const ownerTokenPattern = "[0-9a-f]{16}-[0-9a-f]{8}-\\d+-\\d+-[0-9a-z]+"

/** Reads a token back; `undefined` when it is not one. @internal */
export const parseOwnerToken = (token: string): Owner | undefined => {
  const match = /^([0-9a-f]{16})-([0-9a-f]{8})-(\d+)-(\d+)-([0-9a-z]+)$/.exec(token)
  if (match === null) return undefined
  return {
    host: match[1]!,
    boot: match[2]!,
    pid: Number(match[3]),
    start: Number(match[4]),
    at: parseInt(match[5]!, 36)
  }
}

/** This process as an owner taking hold at `at`. @internal */
export const currentOwner = (at: number): Owner => ({ ...thisProcess(), at })

/**
 * Whether `owner` can no longer be holding anything:
 * - on this host: the machine restarted since (another boot id), or its pid
 *   is dead, a zombie, or now a different process (another start time);
 *   this very process is never gone;
 * - on another host, where nothing can be checked: it took hold more than
 *   `foreignAge` milliseconds before `now`.
 *
 * @internal
 */
export const ownerGone = (owner: Owner, now: number, foreignAge: number): boolean => {
  const self = thisProcess()
  if (owner.host !== self.host) return now - owner.at > foreignAge
  if (owner.boot !== self.boot) return true
  if (owner.pid === self.pid) return owner.start !== self.start
  if (!pidExists(owner.pid)) return true
  const stat = procStat(owner.pid)
  if (stat === undefined) return false // no /proc: the pid is alive, that is all one can tell
  return stat.state === "Z" || (owner.start !== 0 && stat.start !== owner.start)
}

// ---- internal ----

const shortHash = (text: string, digits: number) => createHash("sha256").update(text).digest("hex").slice(0, digits)

let cached: Omit<Owner, "at"> | undefined

const thisProcess = (): Omit<Owner, "at"> => {
  if (cached === undefined || cached.pid !== process.pid) {
    cached = {
      host: shortHash(hostname(), 16),
      boot: shortHash(readText("/proc/sys/kernel/random/boot_id")?.trim() ?? "", 8),
      pid: process.pid,
      start: procStat(process.pid)?.start ?? 0
    }
  }
  return cached
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return undefined
  }
}

/**
 * A process's state and start time from `/proc/<pid>/stat` (Linux). The
 * command name (field 2) may hold spaces and parentheses, so the fields
 * are counted from the last `)`: state is field 3, start time field 22.
 */
const procStat = (pid: number): { readonly state: string; readonly start: number } | undefined => {
  const text = readText(`/proc/${pid}/stat`)
  if (text === undefined) return undefined
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  const start = Number(fields[19])
  return Number.isSafeInteger(start) ? { state: fields[0] ?? "", start } : undefined
}

/** Signal 0 tests a pid without touching it; EPERM means it exists but belongs to another user. */
const pidExists = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}
