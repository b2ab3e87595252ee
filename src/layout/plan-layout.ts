import {HpdError} from '../errors.js'
import {compatibilityHash} from './compat-hash.js'
import {planEngineLayout} from './engine-layout.js'
import {vllmPitfalls} from './pitfalls.js'
import {planTpMapping} from './tp-mapping.js'
import type {LayoutPlan, PlanLayoutOptions} from './types.js'

/**
 * The whole P/D layout: both engines, which bytes each decode rank reads from which prefill rank,
 * the compatibility hash and the vLLM pitfalls. Pure. Errors: UsageError (bad TP pair, kernel
 * block mismatch, bad options), ModelConfigError (model cannot be split over a TP size).
 */
export function planLayout(options: PlanLayoutOptions): LayoutPlan {
  const {prefillTp, decodeTp, ...shared} = options
  const prefill = planEngineLayout({...shared, tp: prefillTp})
  const decode = planEngineLayout({...shared, tp: decodeTp})
  const pitfalls = vllmPitfalls(options.model, prefill, decode)
  let mapping
  try {
    mapping = planTpMapping(prefill, decode)
  } catch (error) {
    if (error instanceof HpdError) Object.assign(error, {details: {...error.details, vllmPitfalls: pitfalls.map((p) => p.code)}})
    throw error
  }
  const hash = compatibilityHash(options.model, decode)
  return {model: options.model, prefill, decode, mapping, compatibilityHash: hash, vllmPitfalls: pitfalls}
}
