import {parseEtcdFlag} from '../../cluster/etcd.js'
import {checkClusterName} from '../../cluster/record.js'
import {UsageError} from '../../errors.js'
import {LIST_STRATEGIES, type ListStrategy} from '../../kvlink/index.js'
import {ATTENTION_BACKENDS, type AttentionBackend, MIN_TRANSFER_PROMPT_TOKENS} from '../../layout/index.js'
import {flagDtypeChoice} from '../../model/index.js'
import {CLUSTER_TOKEN_ENV} from '../../serve/auth.js'
import {readSecret} from '../../serve/secrets.js'
import {parseHostPort} from '../../serve/worker-session.js'
import {READ_PROTOCOLS, type ReadProtocol, TRANSPORT_KINDS, type TransportKind} from '../../transport/index.js'
import {BENCH_PATHS, type BenchCluster, type BenchPath, type BenchTransferOptions, INJECTED_FAULTS, type InjectedFault, VERIFY_MODES, type VerifyMode} from './types.js'

/** What the command line gives, before validation. */
export interface BenchTransferFlags {
  readonly model: string
  readonly tp: number
  readonly decodeTp: number | undefined
  readonly promptTokens: string
  readonly requests: number
  readonly transport: string
  readonly tcpSegmentBytes: number
  readonly readProtocol: string
  readonly verify: string
  readonly injectFault: string | undefined
  readonly attentionBackend: string
  /** `auto` or a dtype name (bf16, fp16, fp32, fp8); `auto` under the `cpu` backend is the CPU engine's fp32. */
  readonly kvCacheDtype: string
  /** Conv and SSM state dtypes, the same way (fp8 is refused for state by the layout). Default `auto`. */
  readonly mambaCacheDtype?: string
  readonly mambaSsmDtype?: string
  readonly blockSize: number | undefined
  readonly timeoutMs: number
  readonly path?: string
  readonly lists?: string
  readonly seed?: number
  /** Across hosts: etcd endpoints, cluster, this process's side, where it listens, the token. */
  readonly etcd?: string
  readonly cluster?: string
  readonly role?: string
  readonly listen?: string
  readonly authTokenFile?: string
  readonly insecure?: boolean
  readonly waitMs?: number
}

function bad(flag: string, message: string, hint: string): UsageError {
  return new UsageError('HPD_BENCH_BAD_FLAG', `--${flag} ${message}`, {hint, details: {flag}})
}

/** Validates flags into options; every error names the flag and the value at fault. */
export function benchTransferOptions(f: BenchTransferFlags): BenchTransferOptions {
  const positive = (flag: string, v: number, max: number): void => {
    if (!Number.isSafeInteger(v) || v < 1 || v > max) throw bad(flag, `must be an integer in [1, ${max}], got ${v}`, `Pass --${flag} 1 or more.`)
  }
  positive('tp', f.tp, 64)
  if (f.decodeTp !== undefined) positive('decode-tp', f.decodeTp, 64)
  positive('requests', f.requests, 100_000)
  positive('timeout-ms', f.timeoutMs, 3_600_000)
  if (f.blockSize !== undefined) positive('block-size', f.blockSize, 1 << 20)
  const promptTokens = f.promptTokens.split(',').map((s) => s.trim())
  const parsed = promptTokens.map(Number)
  // A prompt of N tokens transfers N−1 (src/layout/transferred-tokens.ts): at least one must travel.
  parsed.forEach((n, i) => {
    if (!Number.isSafeInteger(n) || n < MIN_TRANSFER_PROMPT_TOKENS || n > 1_048_576) throw bad('prompt-tokens', `takes a comma-separated list of integers in [${MIN_TRANSFER_PROMPT_TOKENS}, 1048576], got "${promptTokens[i]}"`, 'Example: --prompt-tokens 512,4096,32768')
  })
  if (!TRANSPORT_KINDS.includes(f.transport as TransportKind)) throw bad('transport', `must be one of ${TRANSPORT_KINDS.join('|')}, got "${f.transport}"`, 'auto lets UCX pick shared memory or TCP.')
  if (!VERIFY_MODES.includes(f.verify as VerifyMode)) throw bad('verify', `must be one of ${VERIFY_MODES.join('|')}, got "${f.verify}"`, 'full checks every byte; digest compares per-read digests of both sides.')
  if (f.injectFault !== undefined && !INJECTED_FAULTS.includes(f.injectFault as InjectedFault)) {
    throw bad('inject-fault', `must be one of ${INJECTED_FAULTS.join('|')}, got "${f.injectFault}"`, 'See `hpd bench transfer --help`.')
  }
  if (f.injectFault !== undefined && f.injectFault !== 'kill-peer' && f.verify === 'off') {
    throw bad('inject-fault', `${f.injectFault} needs --verify full or digest to be caught`, 'Drop --verify off.')
  }
  if (!ATTENTION_BACKENDS.includes(f.attentionBackend as AttentionBackend)) {
    throw bad('attention-backend', `must be one of ${ATTENTION_BACKENDS.join('|')}, got "${f.attentionBackend}"`, 'hpd runs its own kernels with `cpu`.')
  }
  if (!Number.isSafeInteger(f.tcpSegmentBytes) || f.tcpSegmentBytes < 0 || (f.tcpSegmentBytes > 0 && f.tcpSegmentBytes < 1024) || f.tcpSegmentBytes > 64 << 20) {
    throw bad('tcp-segment-bytes', `must be 0 (UCX default) or an integer in [1024, 67108864], got ${f.tcpSegmentBytes}`, 'The default 262144 is what hpd tunes TCP to.')
  }
  if (!READ_PROTOCOLS.includes(f.readProtocol as ReadProtocol)) {
    throw bad('read-protocol', `must be one of ${READ_PROTOCOLS.join('|')}, got "${f.readProtocol}"`, 'auto serves reads over TCP and uses one-sided GETs over shared memory and RDMA.')
  }
  const path = (f.path ?? 'case') as BenchPath
  if (!BENCH_PATHS.includes(path)) throw bad('path', `must be one of ${BENCH_PATHS.join('|')}, got "${f.path}"`, 'serve runs serving\'s per-request path; case the transport\'s best case.')
  const lists = (f.lists ?? 'request') as ListStrategy
  if (!LIST_STRATEGIES.includes(lists)) throw bad('lists', `must be one of ${LIST_STRATEGIES.join('|')}, got "${f.lists}"`, 'request: lists per request; pair: per engine pair, as NIXL.')
  if (f.lists !== undefined && path !== 'serve') throw bad('lists', 'applies to --path serve only', '--path case prepares each case\'s lists once.')
  if (f.injectFault === 'short' && path === 'serve') throw bad('inject-fault', 'short is injected on --path case only (it shortens one descriptor of the case\'s lists)', 'Use --path case, or corrupt / stale / kill-peer.')
  const seed = f.seed ?? 1
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw bad('seed', `must be an integer in [0, 4294967295], got ${seed}`, 'Any 32-bit value.')
  const cluster = f.etcd === undefined ? undefined : clusterOptions(f)
  if (cluster === undefined && f.role !== undefined) throw bad('role', 'needs --etcd (the two sides meet there)', 'Pass --etcd URL --cluster NAME --role prefill|decode on each host.')
  if (cluster && f.injectFault === 'kill-peer') throw bad('inject-fault', 'kill-peer needs both sides on this host (it kills the prefill process)', 'Run it without --etcd.')
  return {
    model: f.model,
    prefillTp: f.tp,
    decodeTp: f.decodeTp ?? f.tp,
    promptTokens: parsed,
    requests: f.requests,
    transport: f.transport as TransportKind,
    tcpSegmentBytes: f.tcpSegmentBytes,
    readProtocol: f.readProtocol as ReadProtocol,
    verify: f.verify as VerifyMode,
    attentionBackend: f.attentionBackend as AttentionBackend,
    kvCacheDtype: flagDtypeChoice('kv-cache-dtype', f.kvCacheDtype),
    mambaConvDtype: flagDtypeChoice('mamba-cache-dtype', f.mambaCacheDtype ?? 'auto'),
    mambaSsmDtype: flagDtypeChoice('mamba-ssm-dtype', f.mambaSsmDtype ?? 'auto'),
    ...(f.blockSize === undefined ? {} : {blockSize: f.blockSize}),
    ...(f.injectFault === undefined ? {} : {fault: f.injectFault as InjectedFault}),
    timeoutMs: f.timeoutMs,
    path,
    lists,
    seed,
    ...(cluster ? {cluster} : {}),
  }
}

/** --etcd URL --cluster NAME --role prefill|decode --listen HOST[:PORT], and the cluster token. */
function clusterOptions(f: BenchTransferFlags): BenchCluster {
  const {urls} = parseEtcdFlag(f.etcd!)
  const cluster = checkClusterName(f.cluster ?? 'default')
  if (f.role !== 'prefill' && f.role !== 'decode') throw bad('role', `must be prefill or decode with --etcd, got ${JSON.stringify(f.role ?? '')}`, 'Run `--role prefill` on one host and `--role decode` on the other.')
  if (f.listen === undefined) throw bad('listen', 'is required with --etcd: an address of this host the other side can reach', 'Pass --listen 10.0.0.11 (prefill: also a port, e.g. 10.0.0.11:7400; 0 picks one).')
  const listen = parseHostPort('listen', f.listen.includes(':') && !f.listen.startsWith('[') && f.listen.split(':').length === 2 ? f.listen : `${f.listen.includes(':') && !f.listen.startsWith('[') ? `[${f.listen}]` : f.listen}:0`)
  if (listen.host === '0.0.0.0' || listen.host === '::') throw bad('listen', `${f.listen} is not an address the other side can reach`, 'Pass one address of this host.')
  const waitMs = f.waitMs ?? 120_000
  if (!Number.isSafeInteger(waitMs) || waitMs < 1000 || waitMs > 3_600_000) throw bad('wait-ms', `must be an integer in [1000, 3600000], got ${waitMs}`, 'How long one side waits for the other.')
  const token = readSecret({flag: 'auth-token-file', file: f.authTokenFile, envName: CLUSTER_TOKEN_ENV})
  if (token === undefined && !f.insecure) {
    throw new UsageError('HPD_AUTH_REQUIRED', 'bench transfer across hosts needs the cluster token: its control socket hands out the transfer agents\' metadata', {
      hint: 'Give it with --auth-token-file F (or HPD_AUTH_TOKEN; the same on both hosts), or pass --insecure to run unauthenticated knowingly.',
      details: {flag: 'auth-token-file'},
    })
  }
  return {urls, cluster, role: f.role, host: listen.host, port: listen.port, token, waitMs}
}
