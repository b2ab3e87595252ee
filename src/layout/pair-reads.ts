import {cdiv} from './kernel-blocks.js'
import {faByteOffset} from './offsets.js'
import {CACHE_PARTS} from './read-list.js'
import type {RequestContext} from './request-context.js'
import type {EngineLayout, PageRead, RankPair, TpMapping} from './types.js'

/** Receives the reads of one rank pair, in generation order. */
export interface ReadSink {
  add(tensorIndex: number, group: number, layer: number, partIndex: number, remoteOffsetBytes: number, localOffsetBytes: number, lengthBytes: number): void
}

/**
 * fa reads per template per attention layer: one per `tokensPerRead` tokens holding transferred
 * tokens, less those the decode side holds (`cachedTokens`, a multiple of every kernel block).
 */
export function faReadsPerTemplate(mapping: TpMapping, tokens: number, cachedTokens = 0): number {
  return cdiv(tokens, mapping.attention.tokensPerRead) - cachedTokens / mapping.attention.tokensPerRead
}

/** How many reads `visitPairReads` makes for this pair (to size the lists once). */
export function countPairReads(pair: RankPair, decode: EngineLayout, faReads: number): number {
  let fa = 0
  let ssm = 0
  for (const r of pair.pageReads) {
    if (r.view === 'fa') fa++
    else ssm++
  }
  let count = 0
  for (let s = 0; s < decode.numTensors; s++) {
    for (const g of decode.groups) {
      if (g.layers[s] === null) continue
      count += g.kind === 'attention' ? faReads * fa : ssm
    }
  }
  return count
}

/**
 * Generates one rank pair's reads in (tensor, local offset) order where the block ids allow it: per
 * tensor, per group slot holding a layer, the FA reads of the request's tokens or the one Mamba page,
 * each through the pair's page-level template.
 *
 * FA: the request's tokens are cut into chunks of `tokensPerRead` (a divisor of both kernel blocks,
 * so a chunk never straddles a kernel block on either side); token position t of the request sits in
 * kernel block ⌊t / k⌋ of the request at token offset t mod k, on each side with its own k and block
 * ids. Chunks of tokens the decode side holds already (`ctx.cachedTokens`) are skipped. Only chunks holding transferred tokens are read (the last may run into the tail of a partly
 * filled block, as one whole kernel block does when the kernel blocks agree). blocks-first: decode
 * kernel block by block, each `[K | V]` page in template order; kv-first: all K, then all V.
 */
export function visitPairReads(pair: RankPair, mapping: TpMapping, prefill: EngineLayout, decode: EngineLayout, ctx: RequestContext, sink: ReadSink): void {
  const fa = pair.pageReads.filter((r) => r.view === 'fa')
  const ssm = pair.pageReads.filter((r) => r.view === 'ssm')
  const ssmPart = ssm.map((r) => CACHE_PARTS.indexOf(r.part))
  const {tokensPerRead, headTokenBytes} = mapping.attention
  const chunks = faReadsPerTemplate(mapping, ctx.tokens)
  const kP = prefill.kernelBlockSize
  const kD = decode.kernelBlockSize
  const chunksPerDecodeBlock = kD / tokensPerRead
  const rP = prefill.blocksPerLogical
  const rD = decode.blocksPerLogical
  const pNk = ctx.pNum * rP
  const dNk = ctx.dNum * rD
  const pKernelPage = prefill.kernelPageBytes
  const dKernelPage = decode.kernelPageBytes
  const blocksFirst = decode.kvLayout === 'blocks-first'
  // kv-first keeps K and V in separate planes: visit all of K, then all of V (local order).
  const faPasses: PageRead[][] = blocksFirst ? [fa] : [fa.filter((r) => r.part === 'K'), fa.filter((r) => r.part === 'V')]
  const passParts = faPasses.map((pass) => pass.map((r) => CACHE_PARTS.indexOf(r.part)))
  for (let s = 0; s < decode.numTensors; s++) {
    for (const g of decode.groups) {
      const layer = g.layers[s]
      if (layer === null) continue
      if (g.kind === 'attention') {
        if (fa.length === 0) continue
        const pl = ctx.pIds[g.index]
        const dl = ctx.dIds[g.index]
        for (let q = 0; q < faPasses.length; q++) {
          const pass = faPasses[q]
          const passPart = passParts[q]
          for (let i = ctx.firstKernelBlock; i * chunksPerDecodeBlock < chunks; i++) {
            // kernelBlockId, inlined: this loop runs ~10^5 times for a long prompt
            const dk = dl[Math.floor(i / rD)] * rD + (i % rD)
            const c0 = i * chunksPerDecodeBlock
            const c1 = Math.min(c0 + chunksPerDecodeBlock, chunks)
            for (let j = 0; j < pass.length; j++) {
              const r = pass[j]
              for (let c = c0; c < c1; c++) {
                const t = c * tokensPerRead
                const pi = Math.floor(t / kP)
                const pk = pl[Math.floor(pi / rP)] * rP + (pi % rP)
                const pOffset = r.remoteOffsetBytes + (t - pi * kP) * headTokenBytes
                const dOffset = r.localOffsetBytes + (t - i * kD) * headTokenBytes
                if (blocksFirst) sink.add(s, g.index, layer, passPart[j], pk * pKernelPage + pOffset, dk * dKernelPage + dOffset, r.lengthBytes)
                else sink.add(s, g.index, layer, passPart[j], faByteOffset(prefill, pk, pOffset, pNk), faByteOffset(decode, dk, dOffset, dNk), r.lengthBytes)
              }
            }
          }
        }
      } else {
        const pBase = ctx.pIds[g.index][0] * prefill.pageBytes
        const dBase = ctx.dIds[g.index][0] * decode.pageBytes
        for (let j = 0; j < ssm.length; j++) sink.add(s, g.index, layer, ssmPart[j], pBase + ssm[j].remoteOffsetBytes, dBase + ssm[j].localOffsetBytes, ssm[j].lengthBytes)
      }
    }
  }
}
