import type {EngineSummary, InspectLayoutResult} from './inspect-result.js'

const COLORS: Readonly<Record<string, string>> = {K: '#4e79a7', V: '#59a14f', x: '#f28e2b', B: '#e15759', C: '#b07aa1', ssm: '#76b7b2', padding: '#d3d3d3'}
const RANK_COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7']
const WIDTH = 960
const LEFT = 150
const BAR = WIDTH - LEFT - 20

/**
 * One decode page in both views (fa: r kernel blocks, each K|V; ssm: x|B|C|SSM|padding, to scale)
 * and the rank read map (for every decode rank, which prefill rank each byte of its kernel page and
 * its Mamba page comes from). Pure string building.
 */
export function renderInspectSvg(r: InspectLayoutResult): string {
  const D = r.decode
  const parts: string[] = []
  let y = 30
  parts.push(text(10, y, `${esc(r.model.name)}: prefill TP ${r.prefill.tp} → decode TP ${D.tp}, logical block ${D.logicalBlockSize} tokens, kernel block ${D.kernelBlockSize} (r = ${D.blocksPerLogical})`, 15, 'bold'))
  y += 30
  parts.push(text(10, y + 14, 'fa view (1 page)', 12))
  parts.push(...faPage(D, y))
  y += 40
  if (D.mambaPageBytes > 0) {
    parts.push(text(10, y + 14, 'ssm view (1 page)', 12))
    parts.push(...ssmPage(D, y, 0, D.pageBytes))
    parts.push(text(LEFT, y + 34, `page ${D.pageBytes} B: conv ${D.ranks[0].convBytes} B, ssm ${D.ranks[0].ssmBytes} B, padding ${D.paddingBytes} B (${D.paddingPercent}%)`, 11))
    y += 46
    parts.push(text(10, y + 14, 'conv zoom (x|B|C)', 12))
    parts.push(...ssmPage(D, y, 0, D.ranks[0].convBytes))
    y += 40
  }
  parts.push(...legend(y))
  y += 40
  const a = r.transfer.attention
  parts.push(text(10, y, `attention: kernel blocks prefill ${a.prefillKernelBlockSize} / decode ${a.decodeKernelBlockSize} tokens; one read = ${a.tokensPerRead} tokens × ${a.readUnit === 'head' ? '1 head' : 'a head range'} (K and V each)`, 12))
  y += 18
  if (D.mambaPageBytes > 0) {
    parts.push(text(10, y, 'state: one page per state group per request, unaffected by kernel and logical block sizes', 12))
    y += 18
  }
  y += 8
  parts.push(text(10, y, 'read map: source prefill rank of every byte of a decode page', 13, 'bold'))
  y += 16
  const byDecode = new Map<number, {view: string; local: number; length: number; prefillRank: number}[]>()
  for (const pr of r.transfer.pageReads) {
    const list = byDecode.get(pr.decodeRank) ?? []
    list.push({view: pr.view, local: pr.localOffsetBytes, length: pr.lengthBytes, prefillRank: pr.prefillRank})
    byDecode.set(pr.decodeRank, list)
  }
  for (let d = 0; d < D.tp; d++) {
    const reads = byDecode.get(d) ?? []
    const rows: [string, 'fa' | 'ssm', number][] = [['kernel page', 'fa', D.kernelPageBytes]]
    if (D.mambaPageBytes > 0) rows.push(['mamba page', 'ssm', D.pageBytes], ['conv zoom', 'ssm', D.ranks[d].convBytes])
    for (const [label, view, total] of rows) {
      parts.push(text(10, y + 14, `D${d} ${label}`, 12))
      parts.push(rect(LEFT, y, BAR, 20, '#ffffff', '#999'))
      for (const rd of reads.filter((x) => x.view === view && x.local < total)) {
        const length = Math.min(rd.length, total - rd.local)
        parts.push(rect(LEFT + (rd.local / total) * BAR, y, Math.max(1, (length / total) * BAR), 20, RANK_COLORS[rd.prefillRank % RANK_COLORS.length], '#fff', `from P${rd.prefillRank}: ${rd.length} B at ${rd.local}`))
      }
      y += 26
    }
  }
  const ranks = Array.from({length: r.prefill.tp}, (_, p) => p)
  ranks.forEach((p, i) => {
    parts.push(rect(LEFT + i * 90, y + 4, 14, 14, RANK_COLORS[p % RANK_COLORS.length]))
    parts.push(text(LEFT + i * 90 + 18, y + 16, `P${p}`, 12))
  })
  y += 30
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`
}

/**
 * Kernel blocks drawn one by one at most: a page of r = 65536 kernel blocks (a huge Mamba page over
 * a small K/V) would otherwise be 131072 rectangles narrower than a pixel. Past it, each drawn K|V
 * pair stands for a run of blocks and says which.
 */
const MAX_DRAWN_KERNEL_BLOCKS = 128

function faPage(D: EngineSummary, y: number): string[] {
  const out: string[] = []
  const drawn = Math.min(D.blocksPerLogical, MAX_DRAWN_KERNEL_BLOCKS)
  const w = BAR / drawn
  for (let i = 0; i < drawn; i++) {
    const first = Math.floor((i * D.blocksPerLogical) / drawn)
    const last = Math.floor(((i + 1) * D.blocksPerLogical) / drawn) - 1
    const which = first === last ? `kernel block ${first}` : `kernel blocks ${first}–${last}`
    const each = first === last ? '' : ' each'
    out.push(rect(LEFT + i * w, y, w / 2, 20, COLORS.K, 'none', `${which}: K ${D.kvHalfBytes} B${each}`))
    out.push(rect(LEFT + i * w + w / 2, y, w / 2, 20, COLORS.V, 'none', `${which}: V ${D.kvHalfBytes} B${each}`))
  }
  out.push(rect(LEFT, y, BAR, 20, 'none', '#333'))
  return out
}

/** The ssm-view parts of decode rank 0's page that fall in [from, to), scaled to the bar. */
function ssmPage(D: EngineSummary, y: number, from: number, to: number): string[] {
  const out: string[] = []
  const span = to - from
  for (const p of D.ranks[0].pageMap.filter((m) => m.view === 'ssm' && m.offsetBytes < to && m.offsetBytes + m.lengthBytes > from)) {
    const start = Math.max(p.offsetBytes, from)
    const end = Math.min(p.offsetBytes + p.lengthBytes, to)
    const x = LEFT + ((start - from) / span) * BAR
    const w = Math.max(1, ((end - start) / span) * BAR)
    out.push(rect(x, y, w, 20, COLORS[p.part], '#fff', `${p.part}: ${p.lengthBytes} B at ${p.offsetBytes}`))
    if (w > 60) out.push(text(x + 4, y + 14, `${p.part} ${p.lengthBytes} B`, 11))
  }
  out.push(rect(LEFT, y, BAR, 20, 'none', '#333'))
  return out
}

function legend(y: number): string[] {
  return Object.entries(COLORS).flatMap(([name, color], i) => [rect(LEFT + i * 100, y + 4, 14, 14, color), text(LEFT + i * 100 + 18, y + 16, name, 12)])
}

function rect(x: number, y: number, w: number, h: number, fill: string, stroke = 'none', title?: string): string {
  const t = title ? `<title>${esc(title)}</title>` : ''
  return `<rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${h}" fill="${fill}" stroke="${stroke}">${t}</rect>`
}

function text(x: number, y: number, s: string, size: number, weight = 'normal'): string {
  return `<text x="${x}" y="${y}" font-size="${size}" font-weight="${weight}">${s}</text>`
}

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;')
}
