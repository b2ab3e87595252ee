/**
 * Hosts for cross-host tests, made of Linux network namespaces (as root, with iproute2): one
 * "switch" namespace holding a bridge, and per host a namespace whose eth0 is a veth into that
 * bridge, addressed from the benchmarking range 198.18.0.0/15 (RFC 2544: never routed on the
 * internet). The test process itself joins the switch with one more veth, so it can talk to the
 * hosts (the openai client sends its requests from here). Every namespace and link is deleted by
 * destroy(), and namespaces left by a crashed earlier run (their pid gone) are deleted at start.
 *
 * Shared memory is not isolated by network namespaces: cross-host tests run their workers with
 * `--transport tcp`, as two real hosts without RDMA would end up using.
 */
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {createInterface} from 'node:readline'

const PREFIX = 'hpde2e'

export interface NetHost {
  readonly name: string
  readonly ns: string
  /** This host's address on the test network. */
  readonly address: string
  /** Starts `argv` inside the host; stderr/stdout lines are collected. */
  spawn(argv: readonly string[], env?: Record<string, string>): HostProcess
  /** Takes the host off the network (its link down), or puts it back. */
  link(up: boolean): void
}

export interface HostProcess {
  readonly proc: ChildProcess
  readonly lines: string[]
  /** Resolves with the first line matching `test` (bounded). */
  waitFor(test: (line: string) => boolean, timeoutMs?: number): Promise<string>
  stop(): Promise<void>
}

export interface TestNetwork {
  readonly hosts: ReadonlyMap<string, NetHost>
  /** The test process's own address on the network. */
  readonly localAddress: string
  destroy(): Promise<void>
}

/** Why namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)'
  const r = spawnSync('ip', ['netns', 'list'], {encoding: 'utf8'})
  if (r.status !== 0) return `\`ip netns\` is unavailable: ${(r.stderr || r.error?.message || '').trim().slice(0, 200)}`
  const probe = `${PREFIX}probe${process.pid}`
  const add = spawnSync('ip', ['netns', 'add', probe], {encoding: 'utf8'})
  if (add.status !== 0) return `cannot create a network namespace: ${add.stderr.trim().slice(0, 200)}`
  spawnSync('ip', ['netns', 'del', probe])
  return undefined
}

function ip(...args: string[]): void {
  execFileSync('ip', args, {stdio: ['ignore', 'ignore', 'pipe']})
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Deletes namespaces of earlier runs whose process is gone (a crash skips destroy()). */
function sweepStale(): void {
  const list = spawnSync('ip', ['netns', 'list'], {encoding: 'utf8'}).stdout ?? ''
  for (const line of list.split('\n')) {
    const m = new RegExp(`^(${PREFIX}(\\d+)x\\d+\\S*)`).exec(line.trim())
    if (m && !alive(Number(m[2]))) spawnSync('ip', ['netns', 'del', m[1]])
  }
}

let networks = 0

/** A /24 of 198.18.0.0/15 no route of this machine uses yet (the test process joins it). */
function freeSubnet(): string {
  const routes = spawnSync('ip', ['-4', 'route', 'show'], {encoding: 'utf8'}).stdout ?? ''
  for (let k = (process.pid + networks * 7) % 500; ; k = (k + 1) % 500) {
    const net = `198.${18 + Math.floor(k / 250)}.${k % 250}`
    if (!routes.includes(`${net}.0/24`)) return net
  }
}

export async function createNetwork(hostNames: readonly string[]): Promise<TestNetwork> {
  sweepStale()
  const id = `${PREFIX}${process.pid}x${networks++}`
  const switchNs = `${id}sw`
  const subnet = freeSubnet()
  const created: string[] = []
  const processes = new Set<HostProcess>()
  const destroy = async () => {
    await Promise.all([...processes].map((p) => p.stop()))
    for (const ns of created.reverse()) spawnSync('ip', ['netns', 'del', ns])
  }
  try {
    ip('netns', 'add', switchNs)
    created.push(switchNs)
    ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', switchNs, 'link', 'set', 'br0', 'up')
    // Interface names are at most 15 characters: short per-network tags.
    const tag = `h${(process.pid % 10000).toString(36)}${networks.toString(36)}`
    const plug = (index: number, into: string | undefined, address: string) => {
      const a = `${tag}a${index}`
      const b = `${tag}b${index}`
      ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b)
      ip('link', 'set', b, 'netns', switchNs)
      ip('-n', switchNs, 'link', 'set', b, 'master', 'br0', 'up')
      if (into) {
        ip('link', 'set', a, 'netns', into, 'name', 'eth0')
        ip('-n', into, 'addr', 'add', `${address}/24`, 'dev', 'eth0')
        ip('-n', into, 'link', 'set', 'eth0', 'up')
        ip('-n', into, 'link', 'set', 'lo', 'up')
      } else {
        ip('addr', 'add', `${address}/24`, 'dev', a)
        ip('link', 'set', a, 'up')
      }
    }
    const hosts = new Map<string, NetHost>()
    hostNames.forEach((name, i) => {
      const ns = `${id}${name}`.slice(0, 60)
      ip('netns', 'add', ns)
      created.push(ns)
      const address = `${subnet}.${i + 1}`
      plug(i + 1, ns, address)
      hosts.set(name, {
        name,
        ns,
        address,
        spawn: (argv, env = {}) => {
          const p = hostProcess(spawn('ip', ['netns', 'exec', ns, ...argv], {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']}))
          processes.add(p)
          return p
        },
        link: (up) => ip('-n', ns, 'link', 'set', 'eth0', up ? 'up' : 'down'),
      })
    })
    const localAddress = `${subnet}.254`
    plug(0, undefined, localAddress)
    return {hosts, localAddress, destroy}
  } catch (error) {
    await destroy()
    throw error
  }
}

function hostProcess(proc: ChildProcess): HostProcess {
  const lines: string[] = []
  const listeners = new Set<() => void>()
  const onLine = (line: string) => {
    lines.push(line)
    for (const l of listeners) l()
  }
  createInterface({input: proc.stdout!}).on('line', onLine)
  createInterface({input: proc.stderr!}).on('line', onLine)
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  return {
    proc,
    lines,
    waitFor: (test, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching line within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`)), timeoutMs)
        const check = () => {
          const hit = lines.find(test)
          if (hit !== undefined) {
            clearTimeout(timer)
            listeners.delete(check)
            resolve(hit)
          }
        }
        listeners.add(check)
        void exited.then(() => {
          check()
          if (listeners.has(check)) {
            clearTimeout(timer)
            listeners.delete(check)
            reject(new Error(`the process exited (${proc.exitCode ?? proc.signalCode}) first; last lines:\n${lines.slice(-15).join('\n')}`))
          }
        })
        check()
      }),
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGTERM')
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(killer)
    },
  }
}
