import {familyModule} from './families/index.js'
import type {ModelDims} from './model-dims.js'

/**
 * The checkpoint tensor names and shapes a model must provide, in the family's published naming
 * (model-forward.md §2–§5 and each family's Hugging Face modeling code; torch [out, in] layout).
 * The loader checks every one against the files; the tiny-model generator writes exactly these.
 */
export interface ExpectedTensor {
  readonly name: string
  readonly shape: readonly number[]
  /** How the tiny-model generator fills it when the name alone does not say (tiny-models.ts). */
  readonly init?: TensorInit
}

/**
 * Generator hints: `norm-zero` a zero-centred RMSNorm weight (Qwen3-Next scales by 1 + w),
 * `router-bias` Nemotron-H's selection bias, `embedding-bytes` a tied embedding whose rows past
 * the byte vocabulary are zero (so the special ids score 0 as the untied tiny LM heads do).
 */
export type TensorInit = 'norm-zero' | 'router-bias' | 'embedding-bytes'

export function expectedTensors(d: ModelDims): ExpectedTensor[] {
  return familyModule(d.family).tensors(d)
}
