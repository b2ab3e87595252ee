// Shared by the transfer agent e2e tests: forks transfer-agent-peer.ts (one TransferAgent in
// its own process, driven over the Node IPC channel) and cleans up after each test.
import {type ChildProcess, fork} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {afterEach} from 'vitest'

import {TransferAgent, type TransferAgentOptions} from '../../src/transport/index.js'

const here = dirname(fileURLToPath(import.meta.url))

export interface Ready {
  pid: number
  metadata: string
  /** The peer's grant over its whole region (served reads need one; GETs ignore it). */
  grant: string
  region: {id: number; sizeBytes: number; allocated: boolean}
}

const children: ChildProcess[] = []
const agents: TransferAgent[] = []

/** Call once per test file: closes the agents and kills the peers each test made. */
export function cleanUpAfterEach(): void {
  afterEach(() => {
    for (const a of agents.splice(0)) a.close()
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
  })
}

export function nextMessage<T>(child: ChildProcess, accept: (m: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('peer process did not answer in time')), timeoutMs)
    const onMessage = (m: unknown): void => {
      if (!accept(m as Record<string, unknown>)) return
      clearTimeout(timer)
      child.off('message', onMessage)
      resolve(m as T)
    }
    child.on('message', onMessage)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`peer process exited (${code})`))
    })
  })
}

/** Sends `command` and waits for the peer's reply to it. */
export function ask<T>(child: ChildProcess, command: {op: string; [key: string]: unknown}, timeoutMs = 20_000): Promise<T> {
  const reply = nextMessage<T>(child, (m) => m.reply === command.op, timeoutMs)
  child.send(command)
  return reply
}

/** env: PEER_NAME, PEER_TRANSPORT, PEER_REGION_BYTES, PEER_REGISTER, PEER_REQUIRE_GRANT, PEER_BIND_ADDRESS, ... */
export async function startPeer(env: Record<string, string>): Promise<{child: ChildProcess; ready: Ready}> {
  const child = fork(join(here, 'transfer-agent-peer.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: {...process.env, ...env},
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.push(child)
  const ready = await nextMessage<Ready>(child, (m) => m.ready === true)
  return {child, ready}
}

export function makeAgent(name: string, options: Omit<TransferAgentOptions, 'name'> = {}): TransferAgent {
  const agent = TransferAgent.create({name, ...options})
  agents.push(agent)
  return agent
}
