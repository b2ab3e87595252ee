import {faByteOffset} from './offsets.js'
import {visitPairReads} from './pair-reads.js'
import type {RequestContext} from './request-context.js'
import type {EngineLayout, PageRead, RankPair, TpMapping} from './types.js'

/** Counts of one rank pair's reads, computed without generating them (see `countPairRuns`). */
export interface PairRunCount {
  readonly reads: number
  readonly runs: number
  readonly bytes: number
  /** False when the reads do not come in (tensor, local offset) order: then count from the lists. */
  readonly ordered: boolean
}

/**
 * The reads, runs and bytes `planRequestReads` + `coalesce` give for one rank pair, in time
 * proportional to the number of logical blocks rather than reads (a 128k-token prompt has ~10^5
 * reads per pair). Reads come in the order `visitPairReads` makes them; a stretch of kernel blocks
 * whose ids are consecutive on both sides repeats one page template at a constant stride, so its
 * runs follow from the template alone; only the stretch boundaries (logical block edges on either
 * side) and the Mamba pages are looked at one by one. The property test checks it against the lists.
 *
 * When the kernel blocks differ the page template does not repeat per kernel block, so the reads are
 * streamed one by one through the same counter (time proportional to reads, still no lists).
 */
export function countPairRuns(pair: RankPair, mapping: TpMapping, prefill: EngineLayout, decode: EngineLayout, ctx: RequestContext): PairRunCount {
  if (mapping.attention.readUnit === 'head') return streamPairRuns(pair, mapping, prefill, decode, ctx)
  const fa = pair.pageReads.filter((r) => r.view === 'fa')
  const ssm = pair.pageReads.filter((r) => r.view === 'ssm')
  const counter = new SpanCounter()
  const first = ctx.firstKernelBlock
  const nk = first + ctx.kernelBlocksRead
  const rP = prefill.blocksPerLogical
  const rD = decode.blocksPerLogical
  const pNk = ctx.pNum * rP
  const dNk = ctx.dNum * rD
  const pKp = prefill.kernelPageBytes
  const dKp = decode.kernelPageBytes
  const faBytes = fa.reduce((sum, r) => sum + r.lengthBytes, 0)
  const blocksFirst = decode.kvLayout === 'blocks-first'
  const page = blocksFirst && fa.length > 0 ? pageTemplate(fa, pKp, dKp) : undefined
  let reads = 0
  let bytes = 0
  for (let s = 0; s < decode.numTensors; s++) {
    for (const g of decode.groups) {
      if (g.layers[s] === null) continue
      if (g.kind === 'state') {
        const pBase = ctx.pIds[g.index][0] * prefill.pageBytes
        const dBase = ctx.dIds[g.index][0] * decode.pageBytes
        for (const r of ssm) {
          const l = dBase + r.localOffsetBytes
          counter.span(s, pBase + r.remoteOffsetBytes, l, l, pBase + r.remoteOffsetBytes + r.lengthBytes, l + r.lengthBytes, 1, true)
        }
        reads += ssm.length
        bytes += ssm.reduce((sum, r) => sum + r.lengthBytes, 0)
        continue
      }
      if (fa.length === 0) continue
      reads += ctx.kernelBlocksRead * fa.length
      bytes += ctx.kernelBlocksRead * faBytes
      const pl = ctx.pIds[g.index]
      const dl = ctx.dIds[g.index]
      const pk = (i: number): number => pl[Math.floor(i / rP)] * rP + (i % rP)
      const dk = (i: number): number => dl[Math.floor(i / rD)] * rD + (i % rD)
      const stretches = consecutiveStretches(first, nk, rP, rD, pk, dk)
      if (page) {
        const first = fa[0]
        const last = fa[fa.length - 1]
        for (const [a, b] of stretches) {
          const m = b - a
          const pA = pk(a) * pKp
          const dA = dk(a) * dKp
          const pB = pk(b - 1) * pKp
          const dB = dk(b - 1) * dKp
          const runs = m * page.runsPerPage - (m - 1) * (page.pagesMerge ? 1 : 0)
          counter.span(s, pA + first.remoteOffsetBytes, dA + first.localOffsetBytes, dB + last.localOffsetBytes, pB + last.remoteOffsetBytes + last.lengthBytes, dB + last.localOffsetBytes + last.lengthBytes, runs, page.ordered)
        }
      } else {
        // kv-first: all K blocks, then all V blocks; consecutive blocks sit one K (or V) half apart.
        for (const r of fa) {
          const merge = r.lengthBytes === decode.kvHalfBytes && r.lengthBytes === prefill.kvHalfBytes
          for (const [a, b] of stretches) {
            const m = b - a
            const lB = faByteOffset(decode, dk(b - 1), r.localOffsetBytes, dNk)
            const rB = faByteOffset(prefill, pk(b - 1), r.remoteOffsetBytes, pNk)
            counter.span(s, faByteOffset(prefill, pk(a), r.remoteOffsetBytes, pNk), faByteOffset(decode, dk(a), r.localOffsetBytes, dNk), lB, rB + r.lengthBytes, lB + r.lengthBytes, m - (m - 1) * (merge ? 1 : 0), true)
          }
        }
      }
    }
  }
  return {reads, runs: counter.runs, bytes, ordered: counter.ordered}
}

/** countPairRuns by visiting every read (no lists kept). */
function streamPairRuns(pair: RankPair, mapping: TpMapping, prefill: EngineLayout, decode: EngineLayout, ctx: RequestContext): PairRunCount {
  const counter = new SpanCounter()
  let reads = 0
  let bytes = 0
  visitPairReads(pair, mapping, prefill, decode, ctx, {
    add(tensorIndex, _group, _layer, _part, remote, local, length) {
      reads++
      bytes += length
      counter.span(tensorIndex, remote, local, local, remote + length, local + length, 1, true)
    },
  })
  return {reads, runs: counter.runs, bytes, ordered: counter.ordered}
}

/** What one kernel page template contributes: runs inside a page, whether page i+1 continues page i's last run. */
function pageTemplate(fa: readonly PageRead[], pKp: number, dKp: number): {runsPerPage: number; pagesMerge: boolean; ordered: boolean} {
  let runsPerPage = fa.length === 0 ? 0 : 1
  let ordered = true
  for (let j = 1; j < fa.length; j++) {
    const prev = fa[j - 1]
    const next = fa[j]
    if (next.localOffsetBytes < prev.localOffsetBytes) ordered = false
    if (!(next.localOffsetBytes === prev.localOffsetBytes + prev.lengthBytes && next.remoteOffsetBytes === prev.remoteOffsetBytes + prev.lengthBytes)) runsPerPage++
  }
  const first = fa[0]
  const last = fa[fa.length - 1]
  const pagesMerge = first.localOffsetBytes + dKp === last.localOffsetBytes + last.lengthBytes && first.remoteOffsetBytes + pKp === last.remoteOffsetBytes + last.lengthBytes
  return {runsPerPage, pagesMerge, ordered}
}

/**
 * [a, b) ranges of request kernel blocks in [first, nk) whose kernel ids are consecutive on both
 * sides. Ids can only jump where a logical block starts on either side (i a multiple of rP or rD),
 * so only those positions are examined.
 */
function consecutiveStretches(first: number, nk: number, rP: number, rD: number, pk: (i: number) => number, dk: (i: number) => number): [number, number][] {
  const out: [number, number][] = []
  let start = first
  let nextP = (Math.floor(first / rP) + 1) * rP
  let nextD = (Math.floor(first / rD) + 1) * rD
  for (;;) {
    const c = Math.min(nextP, nextD)
    if (c >= nk) break
    if (c === nextP) nextP += rP
    if (c === nextD) nextD += rD
    if (pk(c) !== pk(c - 1) + 1 || dk(c) !== dk(c - 1) + 1) {
      out.push([start, c])
      start = c
    }
  }
  if (nk > start) out.push([start, nk])
  return out
}

/** Streaming `coalesce` over spans of reads (a span is a stretch with a known number of runs inside). */
class SpanCounter {
  runs = 0
  ordered = true
  private tensor = -1
  private lastLocal = -1
  private localEnd = -1
  private remoteEnd = -1

  /**
   * A stretch of reads in stream order: its first read starts at (remote0, local0), its last read
   * starts at lastLocal and ends at (remoteEnd, localEnd), and it holds innerRuns runs on its own.
   */
  span(tensor: number, remote0: number, local0: number, lastLocal: number, remoteEnd: number, localEnd: number, innerRuns: number, innerOrdered: boolean): void {
    if (!innerOrdered || tensor < this.tensor || (tensor === this.tensor && local0 < this.lastLocal)) this.ordered = false
    const continues = tensor === this.tensor && local0 === this.localEnd && remote0 === this.remoteEnd
    this.runs += innerRuns - (continues ? 1 : 0)
    this.tensor = tensor
    this.lastLocal = lastLocal
    this.localEnd = localEnd
    this.remoteEnd = remoteEnd
  }
}
