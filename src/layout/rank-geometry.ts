import {dtypeBytes, type ModelSpec, type StateMixerParams} from '../model/index.js'
import {ModelConfigError} from '../errors.js'
import type {AttentionRankGeometry, CachePart, ConvLayout, MambaRankGeometry, PartGeometry, RankLayout, ResolvedDtypes} from './types.js'

/**
 * Per-rank shapes under tensor parallelism (vLLM mamba2_state_shape, MambaMixer2 sharding,
 * num_kv_heads = max(1, K // TP) with the contiguous GQA mapping head = rank·K // TP).
 * Sizes are the same on every rank; which global heads/channels a rank holds differ.
 */
export function checkTpDivides(model: ModelSpec, tp: number): void {
  const attn = model.attention
  if (attn) {
    if (attn.numHeads % tp !== 0) throw indivisible('num_attention_heads', attn.numHeads, tp)
    if (attn.numKvHeads % tp !== 0 && tp % attn.numKvHeads !== 0) throw indivisible('num_key_value_heads', attn.numKvHeads, tp, 'TP must divide it or be a multiple of it')
  }
  const m = model.stateMixer
  if (m?.kind === 'mamba2') {
    if (m.numHeads % tp !== 0) throw indivisible(m.configKeys.numHeads, m.numHeads, tp)
    if (m.nGroups % tp !== 0 && m.nGroups !== 1) throw indivisible(m.configKeys.nGroups, m.nGroups, tp, 'TP must divide it, or it must be 1 (replicated)')
  } else if (m?.kind === 'mamba1') {
    if (m.intermediateSize % tp !== 0) throw indivisible('mamba intermediate size (mamba_expand × hidden_size)', m.intermediateSize, tp)
  } else if (m?.kind === 'gdn') {
    if (m.numKeyHeads % tp !== 0) throw indivisible('linear_num_key_heads', m.numKeyHeads, tp)
    if (m.numValueHeads % tp !== 0) throw indivisible('linear_num_value_heads', m.numValueHeads, tp)
  }
}

function indivisible(key: string, value: number, tp: number, rule = 'TP must divide it'): ModelConfigError {
  return new ModelConfigError('HPD_MODEL_TP_INDIVISIBLE', `config key \`${key}\` = ${value} cannot be split over TP ${tp}: ${rule}`, {
    hint: 'Pick a TP size that divides the model\'s heads and groups.',
    details: {key, value, tp},
  })
}

/** Attention geometry of `rank` for a given kernel block size. */
export function attentionGeometry(model: ModelSpec, tp: number, rank: number, dtypes: ResolvedDtypes, kernelBlockSize: number): AttentionRankGeometry {
  const attn = model.attention!
  const replicated = tp > attn.numKvHeads
  const numKvHeads = replicated ? 1 : attn.numKvHeads / tp
  const first = replicated ? Math.floor((rank * attn.numKvHeads) / tp) : rank * numKvHeads
  const headTokenBytes = attn.headDim * dtypeBytes(dtypes.kv)
  const bytesPerToken = 2 * numKvHeads * headTokenBytes
  const kernelPageBytes = kernelBlockSize * bytesPerToken
  return {
    numKvHeads,
    modelKvHeads: attn.numKvHeads,
    globalKvHeads: Array.from({length: numKvHeads}, (_, i) => first + i),
    replicated,
    headDim: attn.headDim,
    dtype: dtypes.kv,
    headTokenBytes,
    bytesPerToken,
    kernelPageBytes,
    kvHalfBytes: kernelPageBytes / 2,
  }
}

/** Bytes of one token's K and V on one rank (vLLM attn_1tok); independent of the kernel block. */
export function attnBytesPerToken(model: ModelSpec, tp: number, dtypes: ResolvedDtypes): number {
  const attn = model.attention!
  return 2 * Math.max(1, attn.numKvHeads / tp) * attn.headDim * dtypeBytes(dtypes.kv)
}

interface ConvPartSpec {
  readonly part: CachePart
  readonly channelsLocal: number
  readonly globalStart: number
  readonly replicated: boolean
}

interface StateShard {
  readonly convParts: readonly ConvPartSpec[]
  readonly ssmUnits: number
  readonly ssmGlobalStart: number
  readonly ssmUnitElems: number
  readonly ssmShape: readonly number[]
  readonly ssmUnit: 'channel' | 'head'
  readonly convKernel: number
}

function shardState(m: StateMixerParams, tp: number, rank: number): StateShard {
  const split = (total: number): ConvPartSpec['channelsLocal'] => total / tp
  if (m.kind === 'mamba2') {
    const x = split(m.intermediateSize)
    const bcReplicated = m.nGroups % tp !== 0
    const bc = bcReplicated ? m.nGroups * m.stateSize : split(m.nGroups * m.stateSize)
    const bcStart = bcReplicated ? 0 : rank * bc
    const heads = m.numHeads / tp
    return {
      convParts: [
        {part: 'x', channelsLocal: x, globalStart: rank * x, replicated: false},
        {part: 'B', channelsLocal: bc, globalStart: bcStart, replicated: bcReplicated},
        {part: 'C', channelsLocal: bc, globalStart: bcStart, replicated: bcReplicated},
      ],
      ssmUnits: heads,
      ssmGlobalStart: rank * heads,
      ssmUnitElems: m.headDim * m.stateSize,
      ssmShape: [heads, m.headDim, m.stateSize],
      ssmUnit: 'head',
      convKernel: m.convKernel,
    }
  }
  if (m.kind === 'mamba1') {
    const x = split(m.intermediateSize)
    return {
      convParts: [{part: 'x', channelsLocal: x, globalStart: rank * x, replicated: false}],
      ssmUnits: x,
      ssmGlobalStart: rank * x,
      ssmUnitElems: m.stateSize,
      ssmShape: [x, m.stateSize],
      ssmUnit: 'channel',
      convKernel: m.convKernel,
    }
  }
  const q = split(m.numKeyHeads * m.keyHeadDim)
  const v = split(m.numValueHeads * m.valueHeadDim)
  const heads = m.numValueHeads / tp
  return {
    convParts: [
      {part: 'x', channelsLocal: q, globalStart: rank * q, replicated: false},
      {part: 'B', channelsLocal: q, globalStart: rank * q, replicated: false},
      {part: 'C', channelsLocal: v, globalStart: rank * v, replicated: false},
    ],
    ssmUnits: heads,
    ssmGlobalStart: rank * heads,
    ssmUnitElems: m.valueHeadDim * m.keyHeadDim,
    ssmShape: [heads, m.valueHeadDim, m.keyHeadDim],
    ssmUnit: 'head',
    convKernel: m.convKernel,
  }
}

/** Conv + SSM geometry of `rank`, with the part layout inside one page. */
export function mambaGeometry(model: ModelSpec, tp: number, rank: number, dtypes: ResolvedDtypes, convLayout: ConvLayout): {geometry: MambaRankGeometry; parts: PartGeometry[]} {
  const m = model.stateMixer!
  const s = shardState(m, tp, rank)
  const stateLen = s.convKernel - 1
  const convElem = dtypeBytes(dtypes.conv)
  const ssmElem = dtypeBytes(dtypes.ssm)
  const channels = s.convParts.reduce((sum, p) => sum + p.channelsLocal, 0)
  const convBytes = channels * stateLen * convElem
  const ssmBytes = s.ssmUnits * s.ssmUnitElems * ssmElem
  const parts: PartGeometry[] = []
  let channelOffset = 0
  for (const p of s.convParts) {
    const ds = convLayout === 'DS'
    parts.push({
      part: p.part,
      view: 'ssm',
      offsetBytes: ds ? channelOffset * stateLen * convElem : channelOffset * convElem,
      lengthBytes: p.channelsLocal * stateLen * convElem,
      rows: ds ? 1 : stateLen,
      rowStrideBytes: ds ? 0 : channels * convElem,
      unitBytes: ds ? stateLen * convElem : convElem,
      unit: 'channel',
      unitsLocal: p.channelsLocal,
      globalUnitStart: p.globalStart,
      replicated: p.replicated,
    })
    channelOffset += p.channelsLocal
  }
  parts.push({
    part: 'ssm',
    view: 'ssm',
    offsetBytes: convBytes,
    lengthBytes: ssmBytes,
    rows: 1,
    rowStrideBytes: 0,
    unitBytes: s.ssmUnitElems * ssmElem,
    unit: s.ssmUnit,
    unitsLocal: s.ssmUnits,
    globalUnitStart: s.ssmGlobalStart,
    replicated: false,
  })
  const bytesOf = (part: CachePart): number => parts.find((p) => p.part === part)?.lengthBytes ?? 0
  const channelsOf = (part: CachePart): number => s.convParts.find((p) => p.part === part)?.channelsLocal ?? 0
  const geometry: MambaRankGeometry = {
    kind: m.kind,
    conv: {
      layout: convLayout,
      dtype: dtypes.conv,
      channels,
      stateLen,
      shape: convLayout === 'DS' ? [channels, stateLen] : [stateLen, channels],
      bytes: convBytes,
      xChannels: channelsOf('x'),
      bChannels: channelsOf('B'),
      cChannels: channelsOf('C'),
      xBytes: bytesOf('x'),
      bBytes: bytesOf('B'),
      cBytes: bytesOf('C'),
      bcReplicated: s.convParts.some((p) => p.replicated),
    },
    ssm: {dtype: dtypes.ssm, shape: s.ssmShape, bytes: ssmBytes, offsetBytes: convBytes},
    pageBytes: convBytes + ssmBytes,
  }
  return {geometry, parts}
}

/** The K and V parts of one kernel page `[K | V]` (HND: heads outermost inside K and inside V). */
export function attentionParts(attn: AttentionRankGeometry, kernelBlockSize: number): PartGeometry[] {
  const unitBytes = kernelBlockSize * attn.headDim * dtypeBytes(attn.dtype)
  const part = (name: 'K' | 'V', offsetBytes: number): PartGeometry => ({
    part: name,
    view: 'fa',
    offsetBytes,
    lengthBytes: attn.kvHalfBytes,
    rows: 1,
    rowStrideBytes: 0,
    unitBytes,
    unit: 'kv-head',
    unitsLocal: attn.numKvHeads,
    globalUnitStart: attn.globalKvHeads[0],
    replicated: attn.replicated,
  })
  return [part('K', 0), part('V', attn.kvHalfBytes)]
}

export function rankLayout(model: ModelSpec, tp: number, rank: number, dtypes: ResolvedDtypes, kernelBlockSize: number, convLayout: ConvLayout): RankLayout {
  const attention = attentionGeometry(model, tp, rank, dtypes, kernelBlockSize)
  const parts = attentionParts(attention, kernelBlockSize)
  if (!model.stateMixer) return {rank, attention, mamba: undefined, parts}
  const mamba = mambaGeometry(model, tp, rank, dtypes, convLayout)
  return {rank, attention, mamba: mamba.geometry, parts: [...parts, ...mamba.parts]}
}
