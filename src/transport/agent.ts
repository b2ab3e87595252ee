import {UsageError} from '../errors.js'
import {type NativeAgentEvent, type NativeTransferAgent, transportBinding} from '../native/transport-binding.js'
import {type Descriptor, isNonNegativeInteger, packDescriptors, toIndices} from './descriptors.js'
import {fromNative, invalidArgument, TransportError} from './errors.js'
import {checkTimeout, type ResolvedAgentOptions, resolveAgentOptions, type TransferAgentOptions} from './options.js'

/** A region of this agent's memory, registered with UCX. */
export interface Region {
  readonly id: number
  readonly sizeBytes: number
  /** true: UCX-allocated shared memory (one-sided reads by same-host peers); false: caller memory. */
  readonly allocated: boolean
  /** See NativeRegion.buffer: detached (byteLength 0) once freed or the agent is closed. */
  readonly buffer: ArrayBuffer
}

export interface Peer {
  readonly id: number
  readonly name: string
  /** Regions of the peer known here (grows when connect() is called again with newer metadata). */
  readonly regions: number
  /** How reads from this peer move bytes: one-sided GETs, or sends the peer serves on request (see ReadProtocol). */
  readonly readProtocol: 'get' | 'served'
}

/** A prepared descriptor list: validated once, then selected by index on the hot path. */
export interface PreparedList {
  readonly id: number
  readonly length: number
  /** 'local' or the peer it reads from. */
  readonly side: 'local' | Peer
}

export interface BatchResult {
  readonly bytes: number
  readonly descriptors: number
  /** GETs after merging adjacent descriptor pairs. */
  readonly runs: number
  /** Post to completion on the progress thread. */
  readonly elapsedMs: number
}

export interface Notification {
  /** Peer id when the sender is connected to this agent. */
  readonly peer: number | undefined
  readonly peerName: string
  readonly payload: Uint8Array
}

/**
 * A served-read grant (TransferAgent.grant()): its `id`, 128 random bits as 32 lowercase hex
 * characters, is the capability. Give it to the one reader it is for, over an authenticated
 * channel; that reader passes it (or just the id) to read().
 */
export interface Grant {
  readonly id: string
}

/** A range of one of this agent's regions that a grant covers. */
export interface GrantRange {
  readonly region: Region | number
  readonly offsetBytes: number
  readonly sizeBytes: number
}

export interface ReadOptions {
  /** Deadline in ms (default: the agent's defaultTimeoutMs). */
  readonly timeoutMs?: number
  /** The owner's grant for this read (served reads; a GET ignores it: nothing checks a one-sided read). */
  readonly grant?: Grant | string
}

const GRANT_ID = /^[0-9a-f]{32}$/u

export interface PeerFailure {
  readonly peer: number
  readonly peerName: string
  readonly operation: string
  readonly error: TransportError
}

const INBOX_LIMIT = 1024

interface Waiter {
  readonly match: (n: Notification) => boolean
  readonly fromPeer: number | undefined
  readonly resolve: (n: Notification) => void
  readonly reject: (e: Error) => void
  readonly timer: NodeJS.Timeout
}

/**
 * The TypeScript face of one native transfer agent (UCP context + worker + progress thread).
 * Every argument is validated here before it crosses into C++; native failures become
 * TransportError (exit 5) naming the agent, the peer and the operation.
 *
 * Not thread-safe: use from one JS thread. Close it (or `using`) to release regions and endpoints.
 */
export class TransferAgent implements Disposable {
  readonly name: string
  readonly options: ResolvedAgentOptions
  private readonly native: NativeTransferAgent
  private readonly peers = new Map<number, Peer>()
  private readonly failures = new Map<number, PeerFailure>()
  private readonly inbox: Notification[] = []
  private readonly waiters = new Set<Waiter>()
  private readonly notificationListeners = new Set<(n: Notification) => void>()
  private readonly failureListeners = new Set<(f: PeerFailure) => void>()
  private isClosed = false

  private constructor(options: ResolvedAgentOptions) {
    this.options = options
    this.name = options.name
    const {TransferAgent: Native} = transportBinding()
    try {
      this.native = new Native(options, (event) => this.onNativeEvent(event))
    } catch (error) {
      throw fromNative(error, {agent: options.name, operation: 'create'})
    }
  }

  /** Creates the UCP context, worker and progress thread. */
  static create(options: TransferAgentOptions): TransferAgent {
    return new TransferAgent(resolveAgentOptions(options))
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** Allocates `sizeBytes` of UCX memory (shared memory for same-host peers), zero-filled. */
  allocRegion(sizeBytes: number): Region {
    if (!isNonNegativeInteger(sizeBytes) || sizeBytes === 0) throw invalidArgument('sizeBytes', 'a positive integer', sizeBytes)
    return this.call('alloc-region', undefined, () => this.native.allocRegion(sizeBytes))
  }

  /** Registers caller memory. Peers' reads of it are emulated by UCX 1.13 (slower; this agent must progress). */
  registerMemory(buffer: ArrayBuffer): Region {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) throw invalidArgument('buffer', 'a non-empty ArrayBuffer', buffer)
    return this.call('register', undefined, () => this.native.registerMemory(buffer))
  }

  /** Unmaps a region. Same-host readers keep the orphaned pages: tell peers (notify) first. */
  freeRegion(region: Region | number): void {
    const id = typeof region === 'number' ? region : region?.id
    if (!isNonNegativeInteger(id)) throw invalidArgument('region', 'a region or region id', region)
    this.call('free-region', undefined, () => this.native.freeRegion(id))
  }

  /** The blob a peer passes to connect(): worker address, region bases and sizes, packed rkeys. */
  metadata(): Uint8Array {
    return this.call('metadata', undefined, () => this.native.metadata())
  }

  /**
   * Connects to the agent that produced `metadata` (PEER error mode, rkeys unpacked). Calling it
   * again with newer metadata of the same agent adds the regions allocated since.
   */
  connect(metadata: Uint8Array): Peer {
    if (!(metadata instanceof Uint8Array) || metadata.byteLength < 8) throw invalidArgument('metadata', 'an agent metadata blob (Uint8Array)', metadata)
    const peer = this.call('connect', undefined, () => this.native.connect(metadata))
    const out: Peer = {id: peer.id, name: peer.name, regions: peer.regions, readProtocol: peer.readProtocol}
    this.peers.set(out.id, out)
    return out
  }

  disconnect(peer: Peer): void {
    this.checkPeer(peer)
    this.call('disconnect', peer.name, () => this.native.disconnect(peer.id))
    this.peers.delete(peer.id)
  }

  prepareLocal(descs: readonly Descriptor[]): PreparedList {
    const packed = packDescriptors(descs, 'descs')
    const id = this.call('prepare', undefined, () => this.native.prepareLocal(packed.regions, packed.offsetsBytes, packed.sizesBytes))
    return {id, length: descs.length, side: 'local'}
  }

  /** `descs` name the peer's region ids (as listed in its metadata) and offsets inside them. */
  prepareRemote(peer: Peer, descs: readonly Descriptor[]): PreparedList {
    this.checkPeer(peer)
    const packed = packDescriptors(descs, 'descs')
    const id = this.call('prepare', peer.name, () =>
      this.native.prepareRemote(peer.id, packed.regions, packed.offsetsBytes, packed.sizesBytes),
    )
    return {id, length: descs.length, side: peer}
  }

  releaseList(list: PreparedList): void {
    this.call('release-list', undefined, () => this.native.releaseList(list.id))
  }

  /**
   * Grants served reads of `ranges` of this agent's regions (the owner side). A served read that
   * carries the grant is served only if every piece lies wholly inside the union of the ranges;
   * otherwise it is refused whole, before any byte is sent (HPD_NATIVE_PERMISSION_DENIED, naming
   * the piece). The grant dies on revokeGrant(), when a region it names is freed, and on close().
   * GET reads (shared memory, RDMA) are one-sided and never checked: see the README's trust model.
   */
  grant(ranges: readonly GrantRange[]): Grant {
    if (!Array.isArray(ranges) || ranges.length === 0) throw invalidArgument('ranges', 'a non-empty array of {region, offsetBytes, sizeBytes}', ranges)
    const descs = ranges.map((r, i) => {
      const region = typeof r?.region === 'number' ? r.region : r?.region?.id
      if (!isNonNegativeInteger(r?.sizeBytes) || r.sizeBytes === 0) throw invalidArgument(`ranges[${i}].sizeBytes`, 'a positive integer', r?.sizeBytes)
      return {region: region as number, offsetBytes: r.offsetBytes, sizeBytes: r.sizeBytes}
    })
    const packed = packDescriptors(descs, 'ranges')
    const id = this.call('grant', undefined, () => this.native.grant(packed.regions, packed.offsetsBytes, packed.sizesBytes))
    return {id}
  }

  /**
   * Revokes a grant: reads that carry it from now on are refused; pieces of a read already
   * posted still arrive, the rest of that read is refused. Returns false when the grant was
   * already gone (revoked, its region freed, or not issued by this agent).
   */
  revokeGrant(grant: Grant | string): boolean {
    const id = grantId(grant, 'grant')
    return this.call('revoke-grant', undefined, () => this.native.revokeGrant(id))
  }

  /**
   * One batched READ: remote[remoteIndices[i]] → local[localIndices[i]] for every i (sizes must
   * match pairwise); pairs adjacent on both sides are merged into one GET. Resolves once every
   * byte is local; rejects with TransportError (HPD_NATIVE_PEER_UNREACHABLE, HPD_NATIVE_TIMEOUT,
   * HPD_NATIVE_PERMISSION_DENIED when the owner refused a served read) otherwise. A timeout
   * force-closes the endpoint (UCX cannot cancel a read): reconnect after.
   */
  async read(
    local: PreparedList,
    localIndices: Uint32Array | readonly number[],
    remote: PreparedList,
    remoteIndices: Uint32Array | readonly number[],
    options: ReadOptions = {},
  ): Promise<BatchResult> {
    if (local?.side !== 'local') throw invalidArgument('local', 'a list from prepareLocal()', local?.side)
    if (remote?.side === 'local' || remote === undefined) throw invalidArgument('remote', 'a list from prepareRemote()', remote?.side)
    const li = toIndices(localIndices, local.length, 'localIndices')
    const ri = toIndices(remoteIndices, remote.length, 'remoteIndices')
    if (li.length !== ri.length) throw invalidArgument('remoteIndices.length', `${li.length} (as many as localIndices)`, ri.length)
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.options.defaultTimeoutMs)
    const grant = options.grant === undefined ? undefined : grantId(options.grant, 'options.grant')
    const peer = remote.side
    return this.callAsync('read', peer.name, () => this.native.read(local.id, li, remote.id, ri, timeoutMs, grant))
  }

  /** The same pairing and merging as read(), as a local memcpy: the reference for bandwidth ratios. */
  async copy(
    dst: PreparedList,
    dstIndices: Uint32Array | readonly number[],
    src: PreparedList,
    srcIndices: Uint32Array | readonly number[],
  ): Promise<BatchResult> {
    if (dst?.side !== 'local' || src?.side !== 'local') throw invalidArgument('dst/src', 'lists from prepareLocal()', 'a remote list')
    const di = toIndices(dstIndices, dst.length, 'dstIndices')
    const si = toIndices(srcIndices, src.length, 'srcIndices')
    if (di.length !== si.length) throw invalidArgument('srcIndices.length', `${di.length} (as many as dstIndices)`, si.length)
    return this.callAsync('copy', undefined, () => this.native.copy(dst.id, di, src.id, si))
  }

  /** Sends a small message (<= 4096 bytes) the peer receives as a notification. */
  async notify(peer: Peer, payload: Uint8Array | string, options: {readonly timeoutMs?: number} = {}): Promise<void> {
    this.checkPeer(peer)
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload
    if (!(bytes instanceof Uint8Array) || bytes.byteLength > 4096) throw invalidArgument('payload', 'a string or Uint8Array of at most 4096 bytes', payload)
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.options.defaultTimeoutMs)
    await this.callAsync('notify', peer.name, () => this.native.notify(peer.id, bytes, timeoutMs))
  }

  /**
   * The next notification (oldest first) matching `match` and, if given, sent by `from`; waits at
   * most `timeoutMs`. Rejects at once if `from` has failed or fails while waiting.
   */
  nextNotification(options: {readonly from?: Peer; readonly match?: (n: Notification) => boolean; readonly timeoutMs: number}): Promise<Notification> {
    const timeoutMs = checkTimeout(options.timeoutMs)
    const match = options.match ?? (() => true)
    const fromPeer = options.from?.id
    const accepts = (n: Notification): boolean => (fromPeer === undefined || n.peer === fromPeer) && match(n)
    const index = this.inbox.findIndex(accepts)
    if (index >= 0) return Promise.resolve(this.inbox.splice(index, 1)[0])
    if (fromPeer !== undefined && this.failures.has(fromPeer)) return Promise.reject(this.failures.get(fromPeer)!.error)
    if (this.isClosed) return Promise.reject(this.closedError('wait'))
    return new Promise<Notification>((resolve, reject) => {
      const waiter: Waiter = {
        match: accepts,
        fromPeer,
        resolve: (n) => {
          clearTimeout(waiter.timer)
          this.waiters.delete(waiter)
          resolve(n)
        },
        reject: (e) => {
          clearTimeout(waiter.timer)
          this.waiters.delete(waiter)
          reject(e)
        },
        timer: setTimeout(() => {
          waiter.reject(
            new TransportError(
              'HPD_NATIVE_TIMEOUT',
              `${this.name}: no notification${options.from ? ` from peer '${options.from.name}'` : ''} within ${timeoutMs} ms`,
              {agent: this.name, operation: 'wait-notification', ...(options.from ? {peer: options.from.name} : {})},
            ),
          )
        }, timeoutMs),
      }
      this.waiters.add(waiter)
    })
  }

  /** Every notification, as it arrives (also kept for nextNotification()). Returns an unsubscribe. */
  onNotification(listener: (n: Notification) => void): () => void {
    this.notificationListeners.add(listener)
    return () => this.notificationListeners.delete(listener)
  }

  /** A peer failed (died, vanished, or a deadline passed). Returns an unsubscribe. */
  onPeerFailure(listener: (f: PeerFailure) => void): () => void {
    this.failureListeners.add(listener)
    return () => this.failureListeners.delete(listener)
  }

  /** The failure of a peer, if it has failed. */
  peerFailure(peer: Peer): PeerFailure | undefined {
    return this.failures.get(peer.id)
  }

  /** Stops progress, rejects what is in flight (HPD_NATIVE_CLOSED), closes endpoints, unmaps regions. Idempotent. */
  close(): void {
    if (this.isClosed) return
    this.isClosed = true
    this.native.close()
    for (const w of [...this.waiters]) w.reject(this.closedError('wait'))
  }

  [Symbol.dispose](): void {
    this.close()
  }

  private onNativeEvent(event: NativeAgentEvent): void {
    if (event.type === 'notification') {
      const n: Notification = {peer: event.peer, peerName: event.peerName, payload: event.payload}
      for (const l of this.notificationListeners) l(n)
      for (const w of this.waiters) {
        if (w.match(n)) {
          w.resolve(n)
          return
        }
      }
      this.inbox.push(n)
      if (this.inbox.length > INBOX_LIMIT) this.inbox.shift()
      return
    }
    const error = new TransportError(event.code, `${this.name}: ${event.message}`, {
      agent: this.name,
      peer: event.peerName,
      operation: event.operation,
    })
    const failure: PeerFailure = {peer: event.peer, peerName: event.peerName, operation: event.operation, error}
    this.failures.set(event.peer, failure)
    for (const w of [...this.waiters]) if (w.fromPeer === event.peer) w.reject(error)
    for (const l of this.failureListeners) l(failure)
  }

  private checkPeer(peer: Peer): void {
    if (!peer || !isNonNegativeInteger(peer.id) || !this.peers.has(peer.id)) {
      throw invalidArgument('peer', 'a peer returned by connect() on this agent', peer?.name ?? peer)
    }
  }

  private closedError(operation: string): TransportError {
    return new TransportError('HPD_NATIVE_CLOSED', `${this.name}: the agent is closed`, {agent: this.name, operation})
  }

  private call<T>(operation: string, peer: string | undefined, fn: () => T): T {
    if (this.isClosed) throw this.closedError(operation)
    try {
      return fn()
    } catch (error) {
      throw fromNative(error, {agent: this.name, operation, ...(peer ? {peer} : {})})
    }
  }

  private async callAsync<T>(operation: string, peer: string | undefined, fn: () => Promise<T>): Promise<T> {
    const callSite = new Error('call site')
    if (this.isClosed) throw this.closedError(operation)
    try {
      return await fn()
    } catch (error) {
      throw fromNative(error, {agent: this.name, operation, ...(peer ? {peer} : {})}, callSite)
    }
  }
}

function grantId(grant: Grant | string, what: string): string {
  const id = typeof grant === 'string' ? grant : grant?.id
  if (typeof id === 'string' && GRANT_ID.test(id)) return id
  // A malformed id is not echoed: it may be a mangled copy of a real one.
  const got = typeof id === 'string' ? `a string of ${id.length} characters` : `${String(id)} (${typeof id})`
  throw new UsageError('HPD_TRANSPORT_INVALID_ARGUMENT', `expected a grant (or its id: 32 lowercase hex characters) for ${what}, got ${got}`, {
    hint: 'Pass the Grant returned by the owner\'s grant(), or its id as received.',
  })
}
