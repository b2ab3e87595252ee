import {createHash} from 'node:crypto'

import type {ModelSpec} from '../model/index.js'
import {stateGeometry} from './pair-compat.js'
import type {EngineLayout} from './types.js'

/**
 * Bumped whenever the meaning of a hashed field or the byte layout changes.
 * 2: the kernel block size and the attention backend left the hash (P and D may now differ in both).
 */
export const LAYOUT_VERSION = 2

/**
 * sha256 over everything prefill and decode must agree on for their bytes to mean the same thing:
 * model geometry (layer kinds, attention and state parameters), all three cache dtypes, conv layout,
 * K/V layout and the HMA grouping. TP, the logical and the kernel block size, and the attention
 * backend (which only picks the kernel block) are left out: they may differ between the sides, the
 * read plan maps them. vLLM's hash omits the Mamba dtypes and the conv layout (§4.5); this one does not.
 */
export function compatibilityFields(model: ModelSpec, engine: EngineLayout): Record<string, unknown> {
  return {
    layoutVersion: LAYOUT_VERSION,
    architecture: model.architecture,
    layers: model.layers.map((l) => l.kinds.join('+')).join(','),
    modelDtype: model.dtype,
    attention: model.attention,
    stateMixer: stateGeometry(model),
    kvCacheDtype: engine.dtypes.kv,
    mambaConvDtype: model.stateMixer ? engine.dtypes.conv : null,
    mambaSsmDtype: model.stateMixer ? engine.dtypes.ssm : null,
    convLayout: model.stateMixer ? engine.convLayout : null,
    kvLayout: engine.kvLayout,
    numTensors: engine.numTensors,
    groups: engine.groups.map((g) => `${g.kind}:${g.layers.map((l) => (l === null ? '-' : l)).join('/')}`),
  }
}

export function compatibilityHash(model: ModelSpec, engine: EngineLayout): string {
  return createHash('sha256').update(canonicalJson(compatibilityFields(model, engine))).digest('hex')
}

/** JSON with object keys sorted, so the hash does not depend on property order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}
