import {invalidArgument} from './errors.js'
import {type NetworkFacts, resolveNetDevices} from './net-devices.js'

export type TransportKind = 'auto' | 'shm' | 'tcp'
export const TRANSPORT_KINDS: readonly TransportKind[] = ['auto', 'shm', 'tcp']
export type ReadProtocol = 'auto' | 'get' | 'served'
export const READ_PROTOCOLS: readonly ReadProtocol[] = ['auto', 'get', 'served']

export interface TransferAgentOptions {
  /** Shown to peers in their errors ("prefill-r0"). */
  readonly name: string
  /**
   * auto: UCX picks (shared memory to same-host peers, RDMA or TCP otherwise); shm: shared memory
   * only; tcp: TCP only. Env HPD_TRANSPORT.
   */
  readonly transport?: TransportKind
  /**
   * UCX TCP segment size in bytes (TX and RX). Default 256 KiB: UCX's 8K/64K defaults leave ~4x
   * throughput on the table (platform-notes.md). 0 keeps UCX's defaults. Both ends must agree
   * (connect() refuses otherwise). Ignored when the user set UCX_TCP_TX_SEG_SIZE. Env
   * HPD_TCP_SEGMENT_BYTES.
   */
  readonly tcpSegmentBytes?: number
  /**
   * How read() moves bytes. get: UCX GET (a memcpy from the owner's mapped pages over shared
   * memory, one-sided over RDMA; over TCP UCX 1.13 emulates it, copying every byte four times).
   * served: the owner sends the runs on request into receives posted on our memory (UCX's
   * zero-copy rendezvous over TCP; served_read.h). auto
   * (default): served over TCP-only agents and to peers on another host without RDMA here, GET
   * otherwise. The owner needs nothing: every agent serves. Env HPD_READ_PROTOCOL.
   */
  readonly readProtocol?: ReadProtocol
  /** UCX keepalive period; bounds dead-peer detection on shared memory (default 500 ms → < 2 s). */
  readonly keepaliveIntervalMs?: number
  /** Default deadline of read()/notify() when the call gives none (default 30 s). */
  readonly defaultTimeoutMs?: number
  /**
   * As the owner of served reads: refuse every served read that carries no grant (see
   * TransferAgent.grant()). Default true. false serves ungranted reads of any region (a read
   * that carries a grant is still held to it). GET reads (shared memory, RDMA) are one-sided:
   * nothing checks them, whatever this says.
   */
  readonly servedReadsRequireGrant?: boolean
  /**
   * Where UCX may listen and connect over the network: an IP address of this machine (or
   * 'localhost'), resolved to the interface(s) carrying it ('127.0.0.1' → lo); '0.0.0.0' or '::'
   * for every interface. Default: loopback, unless UCX_NET_DEVICES is set in the environment.
   * Shared memory is never affected. See net-devices.ts.
   */
  readonly bindAddress?: string
  /** Instead of bindAddress: the device names themselves ('lo', 'eth0', RDMA ports 'mlx5_0:1'). */
  readonly netDevices?: readonly string[]
}

export const DEFAULT_TCP_SEGMENT_BYTES = 256 * 1024
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 500
export const DEFAULT_TIMEOUT_MS = 30_000

export interface ResolvedAgentOptions {
  readonly name: string
  readonly transport: TransportKind
  readonly tcpSegmentBytes: number
  readonly keepaliveIntervalMs: number
  readonly readProtocol: ReadProtocol
  readonly defaultTimeoutMs: number
  readonly servedReadsRequireGrant: boolean
  /** UCX_NET_DEVICES as resolved from bindAddress/netDevices; empty: UCX's own choice. */
  readonly netDevices: readonly string[]
}

export function resolveAgentOptions(options: TransferAgentOptions, env: NodeJS.ProcessEnv = process.env, facts?: NetworkFacts): ResolvedAgentOptions {
  if (typeof options?.name !== 'string' || options.name.length === 0 || options.name.length > 200) {
    throw invalidArgument('name', 'a non-empty agent name of at most 200 characters', options?.name)
  }
  const transport = options.transport ?? (env.HPD_TRANSPORT as TransportKind | undefined) ?? 'auto'
  if (!TRANSPORT_KINDS.includes(transport)) throw invalidArgument('transport', `one of ${TRANSPORT_KINDS.join('|')}`, transport)
  const envSeg = env.HPD_TCP_SEGMENT_BYTES === undefined ? undefined : Number(env.HPD_TCP_SEGMENT_BYTES)
  const tcpSegmentBytes = options.tcpSegmentBytes ?? envSeg ?? DEFAULT_TCP_SEGMENT_BYTES
  if (!Number.isSafeInteger(tcpSegmentBytes) || tcpSegmentBytes < 0 || (tcpSegmentBytes > 0 && tcpSegmentBytes < 1024) || tcpSegmentBytes > 64 * 1024 * 1024) {
    throw invalidArgument('tcpSegmentBytes', '0 (UCX default) or an integer in [1024, 64 MiB]', tcpSegmentBytes)
  }
  const keepaliveIntervalMs = options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS
  if (!Number.isSafeInteger(keepaliveIntervalMs) || keepaliveIntervalMs < 10 || keepaliveIntervalMs > 600_000) {
    throw invalidArgument('keepaliveIntervalMs', 'an integer in [10, 600000]', keepaliveIntervalMs)
  }
  const readProtocol = options.readProtocol ?? (env.HPD_READ_PROTOCOL as ReadProtocol | undefined) ?? 'auto'
  if (!READ_PROTOCOLS.includes(readProtocol)) throw invalidArgument('readProtocol', `one of ${READ_PROTOCOLS.join('|')}`, readProtocol)
  const defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS
  checkTimeout(defaultTimeoutMs, 'defaultTimeoutMs')
  const servedReadsRequireGrant = options.servedReadsRequireGrant ?? true
  if (typeof servedReadsRequireGrant !== 'boolean') throw invalidArgument('servedReadsRequireGrant', 'a boolean', servedReadsRequireGrant)
  const netDevices = resolveNetDevices({bindAddress: options.bindAddress, netDevices: options.netDevices}, env, facts)
  return {name: options.name, transport, tcpSegmentBytes, keepaliveIntervalMs, readProtocol, defaultTimeoutMs, servedReadsRequireGrant, netDevices}
}

export function checkTimeout(timeoutMs: unknown, what = 'timeoutMs'): number {
  if (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 3_600_000) {
    throw invalidArgument(what, 'an integer number of milliseconds in [1, 3600000]', timeoutMs)
  }
  return timeoutMs
}
