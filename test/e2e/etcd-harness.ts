/**
 * A throwaway etcd for a test: Debian's etcd-server on a free port with a temporary data
 * directory, optionally inside a network namespace; stop() kills it, restart() brings it back on
 * the same data (a restart, not a new cluster). Tests that need etcd skip with the reason when
 * the binary is missing.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

export const ETCD_BINARY = '/usr/bin/etcd'

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdMissing(): string | undefined {
  const r = spawnSync(ETCD_BINARY, ['--version'], {encoding: 'utf8'})
  return r.status === 0 ? undefined : `${ETCD_BINARY} is not installed (Debian: apt install etcd-server; scripts/setup.sh does)`
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, host, () => r()))
  const port = (s.address() as {port: number}).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

export interface Etcd {
  readonly url: string
  stop(): Promise<void>
  restart(): Promise<void>
  /** Stops it for good and removes its data. */
  destroy(): Promise<void>
}

/**
 * Starts etcd listening on host:port (a free loopback port by default); `wrap` prefixes the command
 * (e.g. ['ip', 'netns', 'exec', ns]) to run it elsewhere.
 */
export async function startEtcd(o: {host?: string; clientPort?: number; peerPort?: number; wrap?: readonly string[]} = {}): Promise<Etcd> {
  const host = o.host ?? '127.0.0.1'
  const clientPort = o.clientPort ?? (await freePort())
  const peerPort = o.peerPort ?? (await freePort())
  const dataDir = mkdtempSync(join(tmpdir(), 'hpd-etcd-'))
  const url = `http://${host}:${clientPort}`
  let proc: ChildProcess | undefined
  const launch = async () => {
    const args = [
      '--name', 'hpd-test', '--data-dir', dataDir,
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', `http://${host}:${peerPort}`, '--initial-advertise-peer-urls', `http://${host}:${peerPort}`,
      '--initial-cluster', `hpd-test=http://${host}:${peerPort}`,
    ]
    const [cmd, ...rest] = [...(o.wrap ?? []), ETCD_BINARY, ...args]
    proc = spawn(cmd, rest, {stdio: ['ignore', 'ignore', 'pipe']})
    const log: string[] = []
    proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()))
    const deadline = Date.now() + 20_000
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`etcd exited (${proc.exitCode}): ${log.join('').slice(-2000)}`)
      if (log.join('').includes('ready to serve client requests')) return
      if (Date.now() > deadline) throw new Error(`etcd did not start within 20 s: ${log.join('').slice(-2000)}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const stop = async () => {
    const p = proc
    proc = undefined
    if (!p || p.exitCode !== null) return
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGKILL')
    await exited
  }
  await launch()
  return {
    url,
    stop,
    restart: launch,
    destroy: async () => {
      await stop()
      rmSync(dataDir, {recursive: true, force: true})
    },
  }
}
