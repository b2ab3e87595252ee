import type {ModelSpec} from '../model/index.js'
import type {EngineLayout, VllmPitfall} from './types.js'

/**
 * What would go wrong running this model and TP pair through vLLM's NixlConnector (v0.20 snapshot,
 * reference §4, §9), each with a stable code and a one-line fix. Pure; the order is stable.
 */
export function vllmPitfalls(model: ModelSpec, prefill: EngineLayout, decode: EngineLayout): VllmPitfall[] {
  const out: VllmPitfall[] = []
  const add = (code: string, message: string, fix: string): void => {
    out.push({code, message, fix})
  }
  const mixer = model.stateMixer
  if (!mixer) return out
  const conv = decode.convLayout
  add(
    'VLLM_DS_CONV_LAYOUT_REQUIRED',
    `vLLM asserts the DS conv state layout for any hybrid P/D transfer (default is SD; undocumented, #54387)${conv === 'SD' ? '; this plan uses SD' : ''}`,
    'export VLLM_SSM_CONV_STATE_LAYOUT=DS on prefill and decode',
  )
  add(
    'VLLM_HMA_FLAG_REQUIRED',
    'vLLM v0.20 disables the hybrid KV cache manager when --kv-transfer-config is set; init then fails (fixed by #39949)',
    'pass --no-disable-hybrid-kv-cache-manager to prefill and decode',
  )
  for (const [side, engine] of [['prefill', prefill], ['decode', decode]] as const) {
    if (engine.vllmRatioEstimate !== undefined && engine.vllmRatioEstimate !== engine.blocksPerLogical) {
      add(
        'VLLM_REMOTE_RATIO_ESTIMATE_WRONG',
        `vLLM v0.20 estimates the ${side} ratio as ceil(${engine.mambaPageBytes} / ${engine.kernelPageBytes}) = ${engine.vllmRatioEstimate}, the true ratio is ${engine.logicalBlockSize}/${engine.kernelBlockSize} = ${engine.blocksPerLogical}: it reads the wrong kernel blocks`,
        'use the default block size, or a vLLM with #40731 (ratio sent in the handshake)',
      )
    }
  }
  if (mixer.kind === 'mamba2' && mixer.nGroups === 1 && prefill.tp !== decode.tp) {
    add(
      'VLLM_NGROUPS1_HETERO_TP_CORRUPTION',
      `n_groups = 1 replicates B/C on every rank; under ${prefill.tp}→${decode.tp} vLLM reads C as B and SSM as C (#55208, silent)`,
      'use equal prefill/decode TP, or a vLLM with #55306 (hpd reads replicated B/C whole)',
    )
  }
  if (prefill.kernelBlockSize !== decode.kernelBlockSize) {
    add(
      'VLLM_KERNEL_BLOCK_MISMATCH',
      `prefill kernel block ${prefill.kernelBlockSize} ≠ decode ${decode.kernelBlockSize}: vLLM rejects it ("HMA does not support different remote block size yet")`,
      'pass a --block-size that gives both sides the same kernel block',
    )
  } else if (prefill.blocksPerLogical !== decode.blocksPerLogical) {
    add(
      'VLLM_BLOCK_RATIO_MISMATCH',
      `prefill has ${prefill.blocksPerLogical} and decode ${decode.blocksPerLogical} kernel blocks per logical block: vLLM v0.20 expands remote ids with the local ratio (silent corruption, fixed by #42097)`,
      'choose TP sizes with equal logical block sizes, or a vLLM with #42097 and prefix caching off',
    )
  }
  add(
    'VLLM_PREFIX_CACHING_UNSUPPORTED',
    'prefix caching is unsupported for hybrid P/D (Mamba groups are never trimmed; mismatched ratios corrupt, #42097, #51527)',
    'pass --no-enable-prefix-caching to prefill and decode',
  )
  if (Math.max(prefill.tp, decode.tp) > 1) {
    add('VLLM_ASYNC_SCHEDULING_TP', 'with TP > 1 async scheduling may transfer Mamba state in a corrupted form (#36687)', 'pass --no-async-scheduling')
  }
  if (mixer.kind !== 'mamba2') {
    add(
      'VLLM_STATE_MIXER_UNSUPPORTED',
      `vLLM v0.20's conv split handles Mamba2 only; ${mixer.kind === 'mamba1' ? 'Mamba1 arrived with #45019' : 'GDN arrived with #41869'}`,
      'use a vLLM release after that PR',
    )
  }
  add(
    'VLLM_STATE_DTYPE_NOT_HASHED',
    "vLLM's compatibility hash omits mamba_ssm_cache_dtype, mamba_cache_dtype and the conv layout: a P/D mismatch goes unnoticed",
    'set --mamba-ssm-cache-dtype and --mamba-cache-dtype identically on both sides (hpd\'s hash covers them)',
  )
  return out
}
