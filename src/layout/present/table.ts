import type {DescriptorTables, EngineSummary, InspectLayoutResult} from './inspect-result.js'

/** Human-readable `inspect-layout` output: fits one screen (≈ 60 lines) unless `--descriptors`. */
export function renderInspectTable(r: InspectLayoutResult): string {
  const out: string[] = []
  const P = r.prefill
  const D = r.decode
  const t = r.transfer
  out.push(`${r.model.name}  ${r.model.architecture} ${r.model.dtype}, ${r.model.numLayers} layers ${r.model.pattern}`)
  if (r.decodeModel) out.push(`decode model ${r.decodeModel.name} (${r.decodeModel.architecture}): same cache geometry`)
  const state = P.mambaPageBytes > 0 ? ` · conv ${P.dtypes.conv} · ssm ${P.dtypes.ssm} · conv layout ${P.convLayout}` : ''
  out.push(`prefill TP ${P.tp} → decode TP ${D.tp} · ${P.attentionBackend} (kernel blocks ${P.supportedKernelBlockSizes.join('/')}) · kv ${P.dtypes.kv}${state} · ${P.kvLayout}`)
  out.push(`compatibility hash ${r.compatibilityHash.slice(0, 16)}`)
  out.push('')
  out.push(...sideBySide(P, D))
  out.push('')
  out.push(`groups (slot s lives in tensor s; '-' = padding slot)`)
  for (const g of D.groups) out.push(`  g${g.index} ${g.kind.padEnd(9)} ${g.layers.map((l) => (l === null ? '-' : String(l)).padStart(3)).join(' ')}`)
  out.push('')
  out.push('page map (fa: within one kernel page; ssm: within one logical page)  offset+length B')
  for (const [name, e] of [['P', P], ['D', D]] as const) {
    // Ranks share one page map (only their heads differ): one line per run of identical ranks.
    let first = 0
    for (let i = 1; i <= e.ranks.length; i++) {
      const same = i < e.ranks.length && pageMapText(e.ranks[i]) === pageMapText(e.ranks[first])
      if (same) continue
      const group = e.ranks.slice(first, i)
      const label = group.length === 1 ? `${name}${group[0].rank}` : `${name}${group[0].rank}-${name}${group[group.length - 1].rank}`
      const kv = group.map((r) => heads(r.globalKvHeads)).join(' | ')
      out.push(`  ${label} kv heads ${kv}${group[0].bcReplicated ? ' (B/C replicated)' : ''}  ${pageMapText(group[0])}`)
      first = i
    }
  }
  out.push('')
  out.push('TP read map (one page: part remote→local +length B)')
  const byPair = new Map<string, string[]>()
  for (const pr of t.pageReads) {
    const key = `  D${pr.decodeRank} ← P${pr.prefillRank}`
    const list = byPair.get(key) ?? []
    list.push(`${pr.part} ${pr.remoteOffsetBytes}→${pr.localOffsetBytes} +${pr.lengthBytes}`)
    byPair.set(key, list)
  }
  for (const [key, list] of byPair) out.push(`${key}  ${list.join('  ')}`)
  out.push('')
  const a = t.attention
  const vllmRefuses = a.prefillKernelBlockSize !== a.decodeKernelBlockSize
  out.push(`request: ${t.promptTokens} prompt tokens, ${t.transferredTokens} transferred; ${t.kernelBlocksRead} decode kernel blocks read per FA layer${vllmRefuses ? '' : ` (vLLM ${t.vllmKernelBlocks})`}`)
  out.push(`  ${vllmRefuses ? 'vLLM refuses this pair (kernel blocks differ)' : `vLLM descriptor pairs ${t.vllmDescriptorPairs}`} · hpd reads ${t.hpdReads} · coalesced runs ${t.coalescedRuns}`)
  if (t.cachedTokens > 0) {
    out.push(
      `  decode-side prefix hit: ${t.cachedTokens} tokens held → FA kernel blocks 0..${t.skipped.kernelBlocksPerFaLayer - 1} of every FA layer not read (${t.skipped.reads} reads, ${bytes(t.skipped.bytes)} skipped); the state pages are read (the prefill side's final state)`,
    )
  }
  out.push(
    `  attention: kernel blocks P ${a.prefillKernelBlockSize} / D ${a.decodeKernelBlockSize} tokens → one read = ${a.tokensPerRead} tokens × ${a.readUnit === 'head' ? '1 head' : 'the pair\'s head range'} × head_dim (K and V each)`,
  )
  if (P.mambaPageBytes > 0) out.push('  state: one page per state group per request (x|B|C|ssm reads), the same whatever the block sizes')
  out.push(`  bytes per decode rank ${t.bytesPerDecodeRank.map(bytes).join(', ')} · notifications per prefill rank ${t.notificationsPerPrefillRank.join(', ')}`)
  if (r.vllmPitfalls.length > 0) {
    out.push('')
    const v = r.vllmVersion
    out.push(`vLLM pitfalls at vLLM ${v.judgedAgainst}${v.judgedAgainst === v.requested ? '' : ` (asked ${v.requested}; newest known ${v.newestKnown})`}`)
    for (const p of r.vllmPitfalls) out.push(`  ${p.code} (vLLM ${p.appliesTo}${p.fixedIn ? `, fixed by ${p.fixedIn.change}` : ', open'}): ${p.message}\n    fix: ${p.fix}`)
  }
  // A loop, not push(...lines): --descriptors tables run to a million lines, past V8's argument limit.
  if (r.descriptors) {
    out.push('')
    for (const line of descriptorLines(r.descriptors)) out.push(line)
  }
  if (r.svgPath) out.push('', `svg written to ${r.svgPath}`)
  return `${out.join('\n')}\n`
}

function sideBySide(P: EngineSummary, D: EngineSummary): string[] {
  const rows: [string, (e: EngineSummary) => string][] = [
    ['logical block', (e) => `${e.logicalBlockSize} tokens`],
    ['kernel block (r)', (e) => `${e.kernelBlockSize} tokens (r ${e.blocksPerLogical}${e.vllmRatioEstimate !== null && e.vllmRatioEstimate !== e.blocksPerLogical ? `, vLLM est. ${e.vllmRatioEstimate}` : ''})`],
    ['page (logical)', (e) => `${e.pageBytes} B`],
    ['kernel page / K half', (e) => `${e.kernelPageBytes} / ${e.kvHalfBytes} B`],
    ['mamba page', (e) => (e.mambaPageBytes === 0 ? '-' : `${e.mambaPageBytes} B`)],
    ['padding', (e) => (e.mambaPageBytes === 0 ? '-' : `${e.paddingBytes} B (${e.paddingPercent}%)`)],
    ['conv x/B/C, ssm', (e) => (e.mambaPageBytes === 0 ? '-' : `${e.ranks[0].xBytes}/${e.ranks[0].bBytes}/${e.ranks[0].cBytes}, ${e.ranks[0].ssmBytes} B`)],
    ['tensors, groups', (e) => `${e.numTensors}, ${e.groups.filter((g) => g.kind === 'attention').length} attention + ${e.groups.filter((g) => g.kind === 'state').length} state`],
  ]
  const width = Math.max(...rows.map(([, f]) => f(P).length), 14) + 2
  return [`  ${''.padEnd(22)}${`prefill (TP ${P.tp})`.padEnd(width)}decode (TP ${D.tp})`, ...rows.map(([label, f]) => `  ${label.padEnd(22)}${f(P).padEnd(width)}${f(D)}`)]
}

function descriptorLines(d: DescriptorTables): string[] {
  const out = [`descriptor views (prefill ${d.prefillNumLogicalBlocks} / decode ${d.decodeNumLogicalBlocks} logical blocks per tensor): id tensor offset length`]
  for (const p of d.pairs) {
    out.push(`D${p.decodeRank} ← P${p.prefillRank}: local list ${p.local.length} (FA ${p.numFaDescs.local}), remote list ${p.remote.length} (FA ${p.numFaDescs.remote}), request pairs ${p.localIds.length}`)
    out.push(`  request ids local→remote: ${p.localIds.map((id, i) => `${id}→${p.remoteIds[i]}`).join(' ')}`)
    out.push('  local (decode)')
    for (const row of p.local) out.push(`    ${row.join(' ')}`)
    out.push('  remote (prefill)')
    for (const row of p.remote) out.push(`    ${row.join(' ')}`)
  }
  return out
}

function pageMapText(rank: EngineSummary['ranks'][number]): string {
  return rank.pageMap.map((p) => `${p.part}@${p.offsetBytes}+${p.lengthBytes}`).join('  ')
}

function heads(list: readonly number[]): string {
  return list.length === 1 ? String(list[0]) : `${list[0]}-${list[list.length - 1]}`
}

function bytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`
  return `${n} B`
}
