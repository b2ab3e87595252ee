/**
 * A process's listening TCP sockets, read from the kernel: /proc/<pid>/fd names its socket inodes,
 * /proc/net/tcp{,6} their state and address. Shared by the transport and serve e2e tests.
 */
import {readdirSync, readFileSync, readlinkSync} from 'node:fs'

export interface Listener {
  readonly address: string
  readonly port: number
}

const TCP_LISTEN = '0A'

/** /proc/net/tcp6 prints an address as four 32-bit words, each in host (little-endian) order. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/gu)!.map((w) => w.match(/../gu)!.reverse().join(''))
  if (words.length === 1) return words[0].match(/../gu)!.map((b) => parseInt(b, 16)).join('.')
  const groups = words.join('').match(/.{4}/gu)!.map((g) => parseInt(g, 16).toString(16))
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const v4 = words[3].match(/../gu)!.map((b) => parseInt(b, 16))
    return `::ffff:${v4.join('.')}`
  }
  return groups.join(':')
}

export function listeners(pid: number): Listener[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/u.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1])
    } catch {
      // closed between readdir and readlink
    }
  }
  const out: Listener[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/u)
      if (cols.length < 10 || cols[3] !== TCP_LISTEN || !inodes.has(cols[9])) continue
      const [addr, port] = cols[1].split(':')
      out.push({address: decodeAddress(addr), port: parseInt(port, 16)})
    }
  }
  return out
}

export const isLoopback = (address: string): boolean => address.startsWith('127.') || address === '0:0:0:0:0:0:0:1' || address.startsWith('::ffff:127.')

