import {ToolOutput, ToolRunner} from '../tools.js'

/**
 * What UCX on the probed machine can do, parsed from `ucx_info -v` and `ucx_info -d`
 * (formats of 1.13 and of >= 1.14; see shared ucx-notes.md "Parsing ucx_info").
 */
export interface UcxVersionInfo {
  /** '1.13.1' */
  readonly version: string
  /** Options from "Configured with:" (e.g. '--with-cuda=/usr/local/cuda', '--with-verbs'). */
  readonly configureFlags: readonly string[]
}

export interface UcxTransport {
  /** 'tcp', 'posix', 'rc_mlx5', 'cuda_copy' ... */
  readonly name: string
  readonly devices: readonly string[]
}

export interface UcxDevicesInfo {
  readonly memoryDomains: readonly string[]
  readonly transports: readonly UcxTransport[]
  /** An MD line lists "dmabuf" (UCX >= 1.14 with a dma-buf capable driver). */
  readonly dmabuf: boolean
  /** tcp am_bcopy limit = UCX_TCP_TX_SEG_SIZE in effect where `ucx_info -d` ran; undefined without tcp. */
  readonly tcpTxSegBytes: number | undefined
  /** tcp am_zcopy limit = UCX_TCP_RX_SEG_SIZE in effect. */
  readonly tcpRxSegBytes: number | undefined
  /** '< failed to open connection manager rdmacm >' and the like. */
  readonly failures: readonly string[]
}

export type Probed<T> = {readonly ok: true; readonly value: T; readonly source: string} | {readonly ok: false; readonly reason: string}

export interface UcxFacts {
  readonly version: Probed<UcxVersionInfo>
  readonly devices: Probed<UcxDevicesInfo>
}

/** UCX 1.13 defaults (unchanged on master): 8 KiB TX and 64 KiB RX segments. */
export const UCX_TCP_DEFAULT_TX_SEG_BYTES = 8 * 1024
export const UCX_TCP_DEFAULT_RX_SEG_BYTES = 64 * 1024

export async function probeUcx(tools: ToolRunner): Promise<UcxFacts> {
  const [v, d] = await Promise.all([tools.run('ucx_info-v'), tools.run('ucx_info-d')])
  return {version: parsed(v, parseUcxVersion), devices: parsed(d, parseUcxDevices)}
}

function parsed<T>(out: ToolOutput, parse: (text: string) => T | undefined): Probed<T> {
  if (out.kind === 'unavailable') return {ok: false, reason: out.reason}
  const value = parse(out.stdout)
  return value === undefined ? {ok: false, reason: `could not parse the output of ${out.source}`} : {ok: true, value, source: out.source}
}

/** Accepts '# Version 1.13.1' (1.13) and '# Library version: 1.16.0' (>= 1.14). */
export function parseUcxVersion(text: string): UcxVersionInfo | undefined {
  const version = /^#\s*(?:Library version:|Version)\s*(\d+\.\d+(?:\.\d+)?)/mu.exec(text)?.[1]
  if (!version) return undefined
  const configured = /^#\s*Configured with:\s*(.*)$/mu.exec(text)?.[1] ?? ''
  return {version, configureFlags: configured.split(/\s+/u).filter((f) => f.startsWith('--'))}
}

export function parseUcxDevices(text: string): UcxDevicesInfo | undefined {
  const memoryDomains: string[] = []
  const transports = new Map<string, string[]>()
  const failures: string[] = []
  let dmabuf = false
  let transport: string | undefined
  let tcpTx: number | undefined
  let tcpRx: number | undefined
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^#/u, '').trim()
    if (line.startsWith('<') && line.endsWith('>')) {
      failures.push(line.slice(1, -1).trim())
      continue
    }
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const key = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    if (key === 'Memory domain') {
      memoryDomains.push(value)
      transport = undefined
    } else if (key === 'Transport') {
      transport = value
      if (!transports.has(value)) transports.set(value, [])
    } else if (key === 'Device' && transport) {
      transports.get(transport)?.push(value)
    } else if (/dmabuf/u.test(value) && (key === 'memory types' || key === 'register' || key === 'allocate')) {
      dmabuf = true
    } else if (transport === 'tcp' && key === 'am_bcopy') {
      tcpTx ??= parseUcxSize(value)
    } else if (transport === 'tcp' && key === 'am_zcopy') {
      tcpRx ??= parseUcxSize(value)
    }
  }
  if (memoryDomains.length === 0 && transports.size === 0) return undefined
  return {
    memoryDomains,
    transports: [...transports].map(([name, devices]) => ({name, devices})),
    dmabuf,
    tcpTxSegBytes: tcpTx,
    tcpRxSegBytes: tcpRx,
    failures,
  }
}

/** '<= 8K' → 8192, '<= 64K, up to 6 iov' → 65536, '<= 8256' → 8256, 'unlimited' → Infinity. */
export function parseUcxSize(value: string): number | undefined {
  if (value.startsWith('unlimited')) return Number.POSITIVE_INFINITY
  const m = /^<=\s*(\d+(?:\.\d+)?)([KMG]?)\b/u.exec(value)
  if (!m) return undefined
  const unit = {'': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3}[m[2] as '' | 'K' | 'M' | 'G']
  return Math.round(Number(m[1]) * unit)
}

/** '1.13.1' ≥ '1.14'? */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split('.').map(Number)
  const b = min.split('.').map(Number)
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    if (x !== y) return x > y
  }
  return true
}
