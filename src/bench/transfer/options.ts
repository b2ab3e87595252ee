import {UsageError} from '../../errors.js'
import {ATTENTION_BACKENDS, type AttentionBackend} from '../../layout/index.js'
import {READ_PROTOCOLS, type ReadProtocol, TRANSPORT_KINDS, type TransportKind} from '../../transport/index.js'
import {flagDtypeChoice} from '../../model/index.js'
import {type BenchTransferOptions, INJECTED_FAULTS, type InjectedFault, VERIFY_MODES, type VerifyMode} from './types.js'

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
  /** `auto` or a dtype name (bf16, fp16, fp32, fp8). */
  readonly kvCacheDtype: string
  readonly blockSize: number | undefined
  readonly timeoutMs: number
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
  parsed.forEach((n, i) => {
    if (!Number.isSafeInteger(n) || n < 2 || n > 1_048_576) throw bad('prompt-tokens', `takes a comma-separated list of integers in [2, 1048576], got "${promptTokens[i]}"`, 'Example: --prompt-tokens 512,4096,32768')
  })
  if (!TRANSPORT_KINDS.includes(f.transport as TransportKind)) throw bad('transport', `must be one of ${TRANSPORT_KINDS.join('|')}, got "${f.transport}"`, 'auto lets UCX pick shared memory or TCP.')
  if (!VERIFY_MODES.includes(f.verify as VerifyMode)) throw bad('verify', `must be one of ${VERIFY_MODES.join('|')}, got "${f.verify}"`, 'full checks every byte; digest compares per-block digests.')
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
    ...(f.blockSize === undefined ? {} : {blockSize: f.blockSize}),
    ...(f.injectFault === undefined ? {} : {fault: f.injectFault as InjectedFault}),
    timeoutMs: f.timeoutMs,
  }
}
