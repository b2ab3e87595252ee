import {loadNativeAddon} from './load-addon.js'

/**
 * The typed surface of the native transfer agent (native/src/napi/transport.cc over
 * native/include/hpd/agent.h) and of the verification kernels (native/src/napi/transport_verify.cc
 * over native/include/hpd/digest.h). Use it through src/transport/, which validates arguments
 * before they cross: the native side only checks what keeps the process safe.
 *
 * Errors thrown or rejected here carry `code = "HPD_NATIVE_<STATUS>"` (INVALID_ARGUMENT,
 * OUT_OF_RANGE, NO_MEMORY, TRANSPORT, PEER_UNREACHABLE, TIMEOUT, CLOSED, UNSUPPORTED, INTERNAL,
 * PERMISSION_DENIED);
 * rejected transfers also carry `operation` ("read" | "copy" | "notify") and `peer` (peer id).
 */
export interface NativeAgentOptions {
  readonly name: string
  readonly transport: 'auto' | 'shm' | 'tcp'
  /** UCX TCP TX and RX segment size in bytes; 0 keeps UCX's defaults (8K/64K). */
  readonly tcpSegmentBytes: number
  /** UCX keepalive period in ms (how fast a dead same-host peer is noticed). */
  readonly keepaliveIntervalMs: number
  readonly readProtocol: 'auto' | 'get' | 'served'
  /** As the owner: refuse served reads that carry no grant. Anything but `false` requires one. */
  readonly servedReadsRequireGrant: boolean
  /** UCX_NET_DEVICES (interface names, RDMA ports); empty leaves UCX's choice. Names contain no commas. */
  readonly netDevices: readonly string[]
}

export interface NativeRegion {
  readonly id: number
  readonly sizeBytes: number
  /** true: UCX allocated it (shared memory a same-host peer maps); false: caller memory registered. */
  readonly allocated: boolean
  /**
   * Allocated: an external view of UCX memory owned by the agent, detached (byteLength 0) when the
   * region is freed or the agent closed. Registered: the caller's own buffer, kept alive until then.
   */
  readonly buffer: ArrayBuffer
}

export interface NativePeer {
  readonly id: number
  readonly name: string
  readonly regions: number
  readonly readProtocol: 'get' | 'served'
}

export interface NativeBatchResult {
  readonly bytes: number
  /** Descriptor pairs in the batch. */
  readonly descriptors: number
  /** Contiguous runs after merging adjacent pairs: the number of GETs (before 8 MiB splitting). */
  readonly runs: number
  /** Post to completion, measured on the agent's progress thread. */
  readonly elapsedMs: number
}

export type NativeAgentEvent =
  | {readonly type: 'notification'; readonly peer?: number; readonly peerName: string; readonly payload: Uint8Array}
  | {
      readonly type: 'peer-error'
      readonly peer: number
      readonly peerName: string
      /** What noticed the failure: "keepalive" (UCX error callback) or "timeout" (a deadline passed). */
      readonly operation: string
      readonly code: string
      readonly message: string
    }

/** One agent = one UCP context + worker + progress thread. All methods run on the JS thread. */
export interface NativeTransferAgent {
  allocRegion(sizeBytes: number): NativeRegion
  registerMemory(buffer: ArrayBuffer): NativeRegion
  freeRegion(region: number): void
  metadata(): Uint8Array
  connect(metadata: Uint8Array): NativePeer
  disconnect(peer: number): void
  /** Descriptors as parallel arrays: region ids, offsets and sizes in bytes. Returns a list id. */
  prepareLocal(regions: Uint32Array, offsetsBytes: Float64Array, sizesBytes: Float64Array): number
  prepareRemote(peer: number, regions: Uint32Array, offsetsBytes: Float64Array, sizesBytes: Float64Array): number
  releaseList(list: number): void
  /**
   * A served-read grant over ranges of this agent's regions (parallel arrays, as prepareLocal).
   * Returns its id: 32 lowercase hex characters, 128 bits from getrandom(2).
   */
  grant(regions: Uint32Array, offsetsBytes: Float64Array, sizesBytes: Float64Array): string
  /** false when the grant was already gone (revoked, its region freed, never issued). */
  revokeGrant(grant: string): boolean
  /**
   * READ remote[remoteIdx[i]] into local[localIdx[i]]; timeoutMs 0 = unbounded (never used by hpd).
   * `grant` (an id from the owner's grant()) travels with a served read; GETs ignore it.
   */
  read(localList: number, localIdx: Uint32Array, remoteList: number, remoteIdx: Uint32Array, timeoutMs: number, grant?: string): Promise<NativeBatchResult>
  /** memcpy src[srcIdx[i]] into dst[dstIdx[i]] on the progress thread, merged like read(). */
  copy(dstList: number, dstIdx: Uint32Array, srcList: number, srcIdx: Uint32Array): Promise<NativeBatchResult>
  notify(peer: number, payload: Uint8Array, timeoutMs: number): Promise<NativeBatchResult>
  /** Idempotent; rejects what is in flight with HPD_NATIVE_CLOSED and detaches region buffers. */
  close(): void
}

export interface PatternMismatch {
  /** Index of the part in the batch. */
  readonly part: number
  /** Offset of the first wrong byte inside the part's checked range. */
  readonly byteOffset: number
  readonly expected: number
  readonly actual: number
}

export interface TransportBinding {
  TransferAgent: new (options: NativeAgentOptions, onEvent: (event: NativeAgentEvent) => void) => NativeTransferAgent
  /** Fill buffer ranges with the pattern of `keys` ([part, 6] = engine, request, rank, tensor, block, part) at part offsets. Off-thread. */
  patternFill(buffer: ArrayBuffer, offsetsBytes: Float64Array, sizesBytes: Float64Array, keys: Uint32Array, partOffsetsBytes: Float64Array): Promise<void>
  /** First mismatching byte, or null. Off-thread. */
  patternVerify(buffer: ArrayBuffer, offsetsBytes: Float64Array, sizesBytes: Float64Array, keys: Uint32Array, partOffsetsBytes: Float64Array): Promise<PatternMismatch | null>
  /** One 64-bit digest per range. Off-thread. */
  digest(buffer: ArrayBuffer, offsetsBytes: Float64Array, sizesBytes: Float64Array): Promise<BigUint64Array>
}

let cached: TransportBinding | undefined

/** The transport surface of the addon (loaded on first use; EnvironmentError when the addon is missing). */
export function transportBinding(): TransportBinding {
  if (cached) return cached
  const addon = loadNativeAddon()
  cached = {
    TransferAgent: addon.TransferAgent as TransportBinding['TransferAgent'],
    patternFill: addon.patternFill as TransportBinding['patternFill'],
    patternVerify: addon.patternVerify as TransportBinding['patternVerify'],
    digest: addon.digest as TransportBinding['digest'],
  }
  return cached
}
