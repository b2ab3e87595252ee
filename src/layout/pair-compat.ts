import {UsageError} from '../errors.js'
import {layersWith, type ModelSpec, stateLayers} from '../model/index.js'
import type {EngineLayout} from './types.js'

/**
 * Refuses a prefill/decode pair whose bytes cannot be mapped onto one another, each reason with its
 * own code (the README lists them). Everything else maps: TP sizes that divide one another, any two
 * logical block sizes, any two kernel block sizes, replicated KV heads, replicated B/C.
 *
 * Why each refusal is final (reads copy bytes; nothing is converted on the way):
 * - different attention layer sets, or state layers / mixer geometry: a layer on one side has no
 *   counterpart on the other, or its state has a different shape;
 * - different KV head count or head_dim: a head's K/V row on one side is not a row on the other;
 * - different KV dtype, or conv/SSM state dtype: the same value has different bytes;
 * - DS vs SD conv layout: the state is transposed between the sides, so matching bytes are single
 *   elements (a copy would need a transpose, not reads).
 */
export function checkPairMappable(models: {readonly prefill: ModelSpec; readonly decode: ModelSpec}, prefill: EngineLayout, decode: EngineLayout): void {
  const P = models.prefill
  const D = models.decode
  const pAttn = layersWith(P, 'attention')
  const dAttn = layersWith(D, 'attention')
  if (!sameList(pAttn, dAttn)) {
    throw refuse('HPD_LAYOUT_ATTENTION_LAYERS_MISMATCH', `prefill attention layers [${pAttn.join(', ')}] ≠ decode attention layers [${dAttn.join(', ')}]: a layer's K/V has no counterpart on the other side`, 'Prefill and decode must serve the same model (same layer pattern).', {
      prefill: pAttn,
      decode: dAttn,
    })
  }
  const pState = stateLayers(P)
  const dState = stateLayers(D)
  const pMixer = JSON.stringify(stateGeometry(P))
  const dMixer = JSON.stringify(stateGeometry(D))
  if (!sameList(pState, dState) || pMixer !== dMixer) {
    throw refuse('HPD_LAYOUT_STATE_MIXER_MISMATCH', `prefill state layers [${pState.join(', ')}] ${pMixer} ≠ decode state layers [${dState.join(', ')}] ${dMixer}: the recurrent states differ in layers or shape`, 'Prefill and decode must serve the same model (same Mamba/GDN layers and sizes).', {
      prefill: {layers: pState, mixer: stateGeometry(P)},
      decode: {layers: dState, mixer: stateGeometry(D)},
    })
  }
  if (P.attention && D.attention) {
    if (P.attention.headDim !== D.attention.headDim) {
      throw refuse('HPD_LAYOUT_HEAD_DIM_MISMATCH', `prefill head_dim ${P.attention.headDim} ≠ decode head_dim ${D.attention.headDim}: one token of a head has a different length on each side`, 'Prefill and decode must serve the same model (same head_dim).', {
        prefill: P.attention.headDim,
        decode: D.attention.headDim,
      })
    }
    if (P.attention.numKvHeads !== D.attention.numKvHeads) {
      throw refuse('HPD_LAYOUT_KV_HEADS_MISMATCH', `prefill num_key_value_heads ${P.attention.numKvHeads} ≠ decode ${D.attention.numKvHeads}: the heads do not correspond`, 'Prefill and decode must serve the same model (same num_key_value_heads).', {
        prefill: P.attention.numKvHeads,
        decode: D.attention.numKvHeads,
      })
    }
    if (prefill.dtypes.kv !== decode.dtypes.kv) {
      throw refuse('HPD_LAYOUT_KV_DTYPE_MISMATCH', `prefill KV cache dtype ${prefill.dtypes.kv} ≠ decode ${decode.dtypes.kv}: the same K/V value has different bytes`, 'Use the same --kv-cache-dtype on both sides.', {
        prefill: prefill.dtypes.kv,
        decode: decode.dtypes.kv,
      })
    }
  }
  if (P.stateMixer) {
    for (const [part, flag] of [['conv', 'mamba-cache-dtype'], ['ssm', 'mamba-ssm-dtype']] as const) {
      if (prefill.dtypes[part] !== decode.dtypes[part]) {
        throw refuse('HPD_LAYOUT_STATE_DTYPE_MISMATCH', `prefill ${part} state dtype ${prefill.dtypes[part]} ≠ decode ${decode.dtypes[part]}: the state has different bytes on each side`, `Use the same --${flag} on both sides.`, {
          part,
          prefill: prefill.dtypes[part],
          decode: decode.dtypes[part],
        })
      }
    }
    if (prefill.convLayout !== decode.convLayout) {
      throw refuse('HPD_LAYOUT_CONV_LAYOUT_MISMATCH', `prefill conv layout ${prefill.convLayout} ≠ decode ${decode.convLayout}: the conv state is transposed between the sides, and reads copy bytes`, 'Use the same conv layout on both sides (DS, what the 3-read conv transfer needs).', {
        prefill: prefill.convLayout,
        decode: decode.convLayout,
      })
    }
  }
}

function refuse(code: string, message: string, hint: string, details: Record<string, unknown>): UsageError {
  return new UsageError(code, message, {hint, details})
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** The state mixer's numbers only (families spell the config keys differently). */
export function stateGeometry(model: ModelSpec): Record<string, unknown> | null {
  if (!model.stateMixer) return null
  const {configKeys: _keys, ...geometry} = model.stateMixer as typeof model.stateMixer & {configKeys?: unknown}
  return geometry
}
