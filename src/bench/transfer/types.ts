import type {ListStrategy} from '../../kvlink/index.js'
import type {AttentionBackend, AttentionRunShape} from '../../layout/index.js'
import type {DtypeChoice} from '../../model/index.js'
import type {ReadProtocol, TransportKind} from '../../transport/index.js'

export type VerifyMode = 'full' | 'digest' | 'off'
export const VERIFY_MODES: readonly VerifyMode[] = ['full', 'digest', 'off']
export type InjectedFault = 'corrupt' | 'stale' | 'short' | 'kill-peer'
export const INJECTED_FAULTS: readonly InjectedFault[] = ['corrupt', 'stale', 'short', 'kill-peer']

/**
 * Which path a request takes:
 * - `case`: one agent per TP rank, every request of a case over the same contiguous block ids and
 *   lists prepared once per case (the transport's best case);
 * - `serve`: serving's exact per-request path: one agent per worker process, block ids allocated
 *   per request from a shuffled pool, the read planned and its lists made per request (`--lists
 *   request`) or selected from per-engine-pair lists (`--lists pair`, as NIXL prepares them).
 */
export type BenchPath = 'case' | 'serve'
export const BENCH_PATHS: readonly BenchPath[] = ['case', 'serve']

/** Across hosts: this process runs one side and meets the other through etcd (`--etcd`, `--role`). */
export interface BenchCluster {
  readonly urls: readonly string[]
  readonly cluster: string
  readonly role: 'prefill' | 'decode'
  /** Where this side's control socket (prefill) and transfer agents listen: an address of this host. */
  readonly host: string
  readonly port: number
  /** The cluster token: the control socket admits only a peer that proves it. Undefined: --insecure. */
  readonly token: string | undefined
  /** How long the decode side waits for the prefill side to appear in etcd (and it for the run). */
  readonly waitMs: number
}

export interface BenchTransferOptions {
  /** Preset name, config.json path or model directory (as `--model`). */
  readonly model: string
  readonly prefillTp: number
  readonly decodeTp: number
  /** One case per prompt length. */
  readonly promptTokens: readonly number[]
  /** Measured requests per case (one unmeasured warm-up request precedes them). */
  readonly requests: number
  readonly transport: TransportKind
  /** 0 = UCX's default TCP segments (the comparison point for the tuned default). */
  readonly tcpSegmentBytes?: number
  /** How the decode side reads (TransferAgentOptions.readProtocol); auto when omitted. */
  readonly readProtocol?: ReadProtocol
  readonly verify: VerifyMode
  readonly attentionBackend: AttentionBackend
  /** K/V, conv and SSM state dtypes of both sides (`auto`: src/layout's `resolveDtypes`; fp32 under the `cpu` backend, as the engine). */
  readonly kvCacheDtype?: DtypeChoice
  readonly mambaConvDtype?: DtypeChoice
  readonly mambaSsmDtype?: DtypeChoice
  /** Requested logical block size of both sides (hybrids grow it per TP size, see src/layout). */
  readonly blockSize?: number
  readonly fault?: InjectedFault
  /** Deadline of every step (read, notification, worker answer). */
  readonly timeoutMs: number
  readonly path: BenchPath
  /** --path serve: how descriptor lists are made (src/kvlink/lists.ts). */
  readonly lists: ListStrategy
  /** Seed of the serve path's pool shuffle (both sides derive their pools from it). */
  readonly seed: number
  /** Across hosts through etcd; absent: both sides are child processes of this one. */
  readonly cluster?: BenchCluster
}

/** One (prompt length) case, measured. Bytes are per request, summed over all rank pairs. */
export interface TransferCaseResult {
  readonly promptTokens: number
  readonly requests: number
  readonly bytesPerRequest: number
  readonly faBytesPerRequest: number
  readonly ssmBytesPerRequest: number
  /** Planned reads (descriptor pairs) per request, all pairs. */
  readonly readsPerRequest: number
  /** GETs after the agent merged adjacent pairs, per request. */
  readonly runsPerRequest: number
  /** The layout's own coalesced run count (cross-check of the agent's merging). */
  readonly plannedRunsPerRequest: number
  readonly rankPairs: number
  /** Bytes / time on the agents' progress threads (post to completion), over all measured requests. */
  readonly gbPerSecond: number
  /** Request latency as a caller of read() sees it (wall time, all rank pairs). */
  readonly p50Ms: number
  readonly p99Ms: number
  /** The same descriptor pairs as a local memcpy on the same threads, same run. */
  readonly memcpyGbPerSecond: number
  /** Median over requests of (memcpy time / read time) of the same bytes, measured back to back. */
  readonly ratioToMemcpy: number
  /** Fastest request: bytes / min read time, and the same for the memcpy reference (robust to preemption on shared hosts). */
  readonly bestGbPerSecond: number
  readonly bestMemcpyGbPerSecond: number
  /** bestGbPerSecond / bestMemcpyGbPerSecond. */
  readonly ratioBestToMemcpy: number
  /** The first (unmeasured) request: endpoint wire-up, segment attach, page faults. */
  readonly warmupMs: number
  /** --path case: preparing the case's lists, once. --path serve: p50 of planning + preparing per request. */
  readonly prepareMs: number
  readonly verify: VerifyMode
  readonly verifiedBytes: number
  /** --verify digest: p50 per request of digesting both sides and comparing (the KV link's check, as --verify-transfers runs it). */
  readonly verifyMsP50?: number
}

export interface BenchTransferResult {
  readonly model: string
  readonly prefillTp: number
  readonly decodeTp: number
  /** The K/V cache dtype the layout used. */
  readonly kvCacheDtype: string
  /** The conv and SSM state dtypes the layout used (models with Mamba / GDN state only). */
  readonly mambaCacheDtype?: string
  readonly mambaSsmDtype?: string
  /** Kernel blocks of both sides and how attention reads were cut (one head × gcd tokens when they differ). */
  readonly attention: AttentionRunShape
  readonly transport: TransportKind
  readonly tcpSegmentBytes: number
  /** What the decode ranks' reads actually used: UCX GETs, or PUTs served by the prefill side. */
  readonly readProtocol: 'get' | 'served' | 'mixed'
  readonly verify: VerifyMode
  /** Max over both sides: allocating (registering) every rank's tensors with UCX. */
  readonly registrationMs: number
  /** Decode side: connecting every decode rank to its prefill ranks (metadata → endpoints, rkeys). */
  readonly firstHandshakeMs: number
  readonly path: BenchPath
  /** --path serve: the list strategy, the pool size per rank, and lists (re)prepared by per-pair caches in the whole run. */
  readonly lists?: ListStrategy
  readonly poolBlocks?: number
  readonly pairListPrepares?: number
  /** Across hosts: where the two sides ran. */
  readonly hosts?: {readonly prefill: string; readonly decode: string}
  readonly cases: readonly TransferCaseResult[]
}

export type BenchEvent =
  | {readonly type: 'setup'; readonly registrationMs: number; readonly firstHandshakeMs: number; readonly processes: number}
  | {readonly type: 'case-start'; readonly index: number; readonly promptTokens: number; readonly requests: number}
  | {readonly type: 'progress'; readonly index: number; readonly done: number; readonly requests: number; readonly latencyMs: number}
  | {readonly type: 'case-done'; readonly index: number; readonly result: TransferCaseResult}
  | {readonly type: 'summary'; readonly result: BenchTransferResult}
