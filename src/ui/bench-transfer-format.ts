import type {BenchTransferResult, TransferCaseResult} from '../bench/transfer/types.js'

/** Formatting of `hpd bench transfer` rows and tables (pure; shared by the Ink view and plain output). */
export function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KiB`
  return `${bytes} B`
}

export const CASE_HEADER = ['prompt', 'bytes/req', 'FA', 'SSM', 'reads', 'runs', 'GB/s', 'p50 ms', 'p99 ms', 'memcpy GB/s', 'ratio', 'best ratio', 'warm-up ms', 'verified'] as const

export function caseCells(c: TransferCaseResult): string[] {
  return [
    String(c.promptTokens),
    formatBytes(c.bytesPerRequest),
    formatBytes(c.faBytesPerRequest),
    formatBytes(c.ssmBytesPerRequest),
    String(c.readsPerRequest),
    String(c.runsPerRequest),
    c.gbPerSecond.toFixed(2),
    c.p50Ms.toFixed(2),
    c.p99Ms.toFixed(2),
    c.memcpyGbPerSecond.toFixed(2),
    `${c.ratioToMemcpy.toFixed(2)}x`,
    `${c.ratioBestToMemcpy.toFixed(2)}x`,
    c.warmupMs.toFixed(1),
    c.verify === 'off' ? 'off' : `${c.verify} ${formatBytes(c.verifiedBytes)}`,
  ]
}

export function table(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ')
  return [line(header), ...rows.map(line)].join('\n')
}

/** One plain line per finished case (stderr when not on a terminal). */
export function caseLine(c: TransferCaseResult): string {
  return `prompt ${c.promptTokens}: ${formatBytes(c.bytesPerRequest)}/request (FA ${formatBytes(c.faBytesPerRequest)}, SSM ${formatBytes(c.ssmBytesPerRequest)}), ${c.readsPerRequest} reads → ${c.runsPerRequest} runs, ${c.gbPerSecond.toFixed(2)} GB/s, p50 ${c.p50Ms.toFixed(2)} ms, p99 ${c.p99Ms.toFixed(2)} ms, memcpy ${c.memcpyGbPerSecond.toFixed(2)} GB/s (${c.ratioToMemcpy.toFixed(2)}x)`
}

export function resultText(r: BenchTransferResult): string {
  const head = `${r.model}: prefill TP ${r.prefillTp} → decode TP ${r.decodeTp}, transport ${r.transport}${r.transport !== 'shm' ? ` (TCP segments ${r.tcpSegmentBytes === 0 ? 'UCX default' : formatBytes(r.tcpSegmentBytes)})` : ''}, reads ${r.readProtocol === 'served' ? 'served (owner sends)' : r.readProtocol === 'get' ? 'GET' : 'mixed GET/served'}, verify ${r.verify}; registration ${r.registrationMs.toFixed(1)} ms, first handshake ${r.firstHandshakeMs.toFixed(1)} ms`
  const dtypes = `caches: KV ${r.kvCacheDtype}${r.mambaCacheDtype === undefined ? '' : `, conv ${r.mambaCacheDtype}, SSM ${r.mambaSsmDtype}`}`
  const where = r.path === 'serve' ? `path serve (serving's per-request path: pool of ${r.poolBlocks} blocks, lists per ${r.lists === 'pair' ? `engine pair, ${r.pairListPrepares ?? 0} prepares in all` : 'request'})` : 'path case (lists prepared once per case)'
  const hosts = r.hosts ? `; prefill on ${r.hosts.prefill}, decode on ${r.hosts.decode}` : ''
  const extras = r.cases
    .filter((c) => r.path === 'serve' || c.verifyMsP50 !== undefined)
    .map((c) => `prompt ${c.promptTokens}: ${r.path === 'serve' ? `plan + lists p50 ${c.prepareMs.toFixed(3)} ms` : ''}${r.path === 'serve' && c.verifyMsP50 !== undefined ? ', ' : ''}${c.verifyMsP50 === undefined ? '' : `verify (digests of both sides) p50 ${c.verifyMsP50.toFixed(3)} ms`}`)
  return `${head}\n${dtypes}; ${where}${hosts}\n${table(CASE_HEADER, r.cases.map(caseCells))}\n${extras.map((l) => `${l}\n`).join('')}`
}
