import {HpdError} from '../errors.js'
import {checkEngineSize} from './bounds.js'
import {compatibilityHash} from './compat-hash.js'
import {planEngineLayout} from './engine-layout.js'
import {checkPairMappable} from './pair-compat.js'
import {vllmPitfalls} from './pitfalls.js'
import {planTpMapping} from './tp-mapping.js'
import {judgeVllmVersion} from './vllm-versions.js'
import type {LayoutPlan, PlanLayoutOptions} from './types.js'

/**
 * The whole P/D layout: both engines, which bytes each decode rank reads from which prefill rank,
 * the compatibility hash and the vLLM pitfalls at the chosen vLLM release. Pure. Errors:
 * UsageError (bad options, TP sizes that do not divide one another, a pair whose bytes cannot
 * correspond: see `checkPairMappable`), ModelConfigError (a model that cannot be split over a TP size).
 */
export function planLayout(options: PlanLayoutOptions): LayoutPlan {
  const {prefillTp, decodeTp, decode: decodeOverrides = {}, vllmVersion: requestedVllm, ...shared} = options
  const vllmVersion = judgeVllmVersion(requestedVllm)
  const prefill = planEngineLayout({...shared, tp: prefillTp})
  const decodeModel = decodeOverrides.model ?? options.model
  const decode = planEngineLayout({...shared, ...decodeOverrides, model: decodeModel, tp: decodeTp})
  checkEngineSize(prefill, 'prefill')
  checkEngineSize(decode, 'decode')
  const pitfalls = vllmPitfalls(options.model, prefill, decode, vllmVersion.judgedAgainst)
  let mapping
  try {
    checkPairMappable({prefill: options.model, decode: decodeModel}, prefill, decode)
    mapping = planTpMapping(prefill, decode)
  } catch (error) {
    if (error instanceof HpdError) Object.assign(error, {details: {...error.details, vllmPitfalls: pitfalls.map((p) => p.code)}})
    throw error
  }
  const hash = compatibilityHash(decodeModel, decode)
  return {model: options.model, decodeModel, prefill, decode, mapping, compatibilityHash: hash, vllmVersion, vllmPitfalls: pitfalls}
}
