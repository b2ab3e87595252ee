import type {ModelSpec} from '../model/index.js'
import {LAYOUT_LIMITS} from './bounds.js'
import {alignedBlockSize, engineKernelRule} from './engine-layout.js'
import {cdiv, selectKernelBlockSize} from './kernel-blocks.js'
import {compareVllm, OLDEST_VLLM} from './vllm-versions.js'
import type {EngineLayout, VllmPitfall} from './types.js'

/** What a pitfall looks at: the prefill engine's model and both engines. */
interface PitfallContext {
  readonly model: ModelSpec
  readonly prefill: EngineLayout
  readonly decode: EngineLayout
}

/**
 * One thing that goes wrong running a configuration through vLLM's NixlConnector, keyed by the
 * releases it applies to: from `appliesFrom` (default the oldest known) up to, not including,
 * `fixedIn.version`; open (no fix released) when `fixedIn` is absent. Placement of each fix: see
 * vllm-versions.ts; the evidence is in `refs` and the reference docs (vllm-hybrid-pd.md §4, §8, §9;
 * ecosystem-contracts.md §4).
 */
interface PitfallRule {
  readonly code: string
  readonly refs: readonly string[]
  readonly appliesFrom?: string
  readonly fixedIn?: {readonly version: string; readonly change: string}
  readonly when: (c: PitfallContext) => boolean
  readonly message: (c: PitfallContext) => string
  readonly fix: (c: PitfallContext) => string
}

const mixer = (c: PitfallContext) => c.model.stateMixer
const kernelsDiffer = (c: PitfallContext) => c.prefill.kernelBlockSize !== c.decode.kernelBlockSize
const logicalsDiffer = (c: PitfallContext) => c.prefill.logicalBlockSize !== c.decode.logicalBlockSize

/** Order is stable (it is the output order). */
const RULES: readonly PitfallRule[] = [
  {
    code: 'VLLM_DS_CONV_LAYOUT_REQUIRED',
    refs: ['#54387', '#54489'],
    when: (c) => mixer(c) !== undefined,
    message: (c) => `vLLM asserts the DS conv state layout for any hybrid P/D transfer (default is SD; undocumented, #54387)${c.decode.convLayout === 'SD' ? '; this plan uses SD' : ''}`,
    fix: () => 'export VLLM_SSM_CONV_STATE_LAYOUT=DS on prefill and decode',
  },
  {
    code: 'VLLM_HMA_FLAG_REQUIRED',
    refs: ['#39949', 'ai-dynamo#10741'],
    fixedIn: {version: '0.22', change: '#39949'},
    when: (c) => mixer(c) !== undefined,
    message: () => 'vLLM disables the hybrid KV cache manager when --kv-transfer-config is set; init then fails ("Hybrid KV cache manager is disabled but failed to convert the KV cache specs")',
    fix: () => 'pass --no-disable-hybrid-kv-cache-manager to prefill and decode',
  },
  {
    code: 'VLLM_REMOTE_RATIO_ESTIMATE_WRONG',
    refs: ['#40731'],
    fixedIn: {version: '0.22', change: '#40731'},
    when: (c) => [c.prefill, c.decode].some((e) => e.vllmRatioEstimate !== undefined && e.vllmRatioEstimate !== e.blocksPerLogical),
    message: (c) => {
      const e = [c.prefill, c.decode].find((x) => x.vllmRatioEstimate !== undefined && x.vllmRatioEstimate !== x.blocksPerLogical)!
      const side = e === c.prefill ? 'prefill' : 'decode'
      return `vLLM estimates the ${side} ratio as ceil(${e.mambaPageBytes} / ${e.kernelPageBytes}) = ${e.vllmRatioEstimate}, the true ratio is ${e.logicalBlockSize}/${e.kernelBlockSize} = ${e.blocksPerLogical}: it reads the wrong kernel blocks`
    },
    fix: () => 'use the default block size, or vLLM 0.22+ (the ratio is sent in the handshake, #40731)',
  },
  {
    code: 'VLLM_BLOCK_RATIO_MISMATCH',
    refs: ['#42097', '#49612'],
    fixedIn: {version: '0.22', change: '#42097'},
    when: (c) => !kernelsDiffer(c) && c.prefill.blocksPerLogical !== c.decode.blocksPerLogical,
    message: (c) =>
      `prefill has ${c.prefill.blocksPerLogical} and decode ${c.decode.blocksPerLogical} kernel blocks per logical block (logical blocks ${c.prefill.logicalBlockSize} vs ${c.decode.logicalBlockSize} tokens): vLLM expands remote ids with the local ratio (silent corruption)`,
    fix: () => 'choose TP sizes with equal logical block sizes, or vLLM 0.22+ (#42097) with prefix caching off',
  },
  {
    code: 'VLLM_KERNEL_BLOCK_MISMATCH',
    refs: ['#41886', '#51527', '#42895'],
    when: kernelsDiffer,
    message: (c) =>
      `prefill kernel block ${c.prefill.kernelBlockSize} ≠ decode ${c.decode.kernelBlockSize} tokens: vLLM refuses the pair (fail-closed: "HMA does not support different remote block size yet"); hpd maps it with runs of gcd = ${gcdOf(c)} tokens per head`,
    fix: kernelBlockFix,
  },
  {
    code: 'VLLM_NGROUPS1_HETERO_TP_CORRUPTION',
    refs: ['#55208', '#55306'],
    when: (c) => {
      const m = mixer(c)
      return m?.kind === 'mamba2' && m.nGroups === 1 && c.prefill.tp !== c.decode.tp
    },
    message: (c) => `n_groups = 1 replicates B/C on every rank; under ${c.prefill.tp}→${c.decode.tp} vLLM reads C as B and SSM as C (#55208, silent)`,
    fix: () => 'use equal prefill/decode TP until #55306 is released (hpd reads replicated B/C whole from one rank)',
  },
  {
    code: 'VLLM_PREFIX_CACHING_UNSUPPORTED',
    refs: ['#42554', '#44243', '#42097'],
    fixedIn: {version: '0.25', change: '#42554, #44243'},
    when: (c) => mixer(c) !== undefined,
    message: () => 'prefix caching is unsupported for hybrid P/D (Mamba groups are never trimmed; the decode side asserts "SSM can only have one local block")',
    fix: () => 'pass --no-enable-prefix-caching to prefill and decode, or vLLM 0.25+ with --mamba-cache-mode align',
  },
  {
    code: 'VLLM_PREFIX_CACHING_HETERO_BLOCKS',
    refs: ['#51527'],
    appliesFrom: '0.25',
    when: (c) => mixer(c) !== undefined && logicalsDiffer(c),
    message: (c) => `prefix caching with different logical block sizes (prefill ${c.prefill.logicalBlockSize}, decode ${c.decode.logicalBlockSize} tokens) is refused at the handshake (#51527 open)`,
    fix: () => 'pass --no-enable-prefix-caching, or TP sizes with equal logical block sizes',
  },
  {
    code: 'VLLM_ASYNC_SCHEDULING_TP',
    refs: ['#36687', '#45019'],
    when: (c) => mixer(c) !== undefined && Math.max(c.prefill.tp, c.decode.tp) > 1,
    message: () => 'with TP > 1 async scheduling may transfer Mamba state in a corrupted form (#36687; vLLM CI still runs hybrid P/D with --no-async-scheduling)',
    fix: () => 'pass --no-async-scheduling',
  },
  {
    code: 'VLLM_STATE_MIXER_UNSUPPORTED',
    refs: ['#41860', '#41869'],
    fixedIn: {version: '0.22', change: '#41869'},
    when: (c) => mixer(c)?.kind === 'gdn',
    message: () => 'vLLM\'s conv split handles Mamba2 only: GDN (Qwen3-Next / Qwen3.5) raises "3-read conv transfer only supports Mamba2 models"',
    fix: () => 'use vLLM 0.22+ (GDN P/D, #41869)',
  },
  {
    code: 'VLLM_STATE_MIXER_UNSUPPORTED',
    refs: ['#45019'],
    fixedIn: {version: '0.24', change: '#45019'},
    when: (c) => mixer(c)?.kind === 'mamba1',
    message: () => 'vLLM\'s conv split has no Mamba1 (Jamba) case: derive_mamba_conv_split raises NotImplementedError',
    fix: () => 'use vLLM 0.24+ (Mamba1 P/D, #45019)',
  },
  {
    code: 'VLLM_STATE_DTYPE_NOT_HASHED',
    refs: ['vllm-hybrid-pd.md §4.5'],
    when: (c) => mixer(c) !== undefined,
    message: () => "vLLM's compatibility hash omits mamba_ssm_cache_dtype, mamba_cache_dtype and the conv layout: a P/D mismatch goes unnoticed",
    fix: () => "set --mamba-ssm-cache-dtype and --mamba-cache-dtype identically on both sides (hpd's hash covers them)",
  },
  {
    code: 'VLLM_FP8_SCALES_NOT_TRANSFERRED',
    refs: ['#55196', '#42179'],
    when: (c) => c.prefill.dtypes.kv === 'fp8' || c.decode.dtypes.kv === 'fp8',
    message: () => 'fp8 KV: vLLM transfers the fp8 K/V bytes but not dynamic per-block scales; the decode side dequantizes them with its own scales',
    fix: () => 'use static (checkpoint) KV scales on both sides, or --kv-cache-dtype auto',
  },
]

/**
 * VLLM_KERNEL_BLOCK_MISMATCH's fix for this pair, computed: replaying vLLM's block-size alignment on
 * both sides' page sizes, the smallest `--block-size` (a multiple of 16, given to both sides) at which
 * each side's backend picks the same kernel block; or that the difference comes from hpd's kernel
 * block overrides (vLLM has none); or that no block size up to the bound helps.
 */
function kernelBlockFix(c: PitfallContext): string {
  const sides = [c.prefill, c.decode] as const
  const rules = sides.map(engineKernelRule)
  const backends = [...new Set(sides.map((e) => e.attentionBackend))].join(' / ')
  const picked = sides.map((e, i) => selectKernelBlockSize(e.logicalBlockSize, rules[i]))
  if (picked[0] !== undefined && picked[0] === picked[1]) {
    return `at these logical blocks (${c.prefill.logicalBlockSize} / ${c.decode.logicalBlockSize} tokens) ${backends} picks kernel block ${picked[0]} on both sides: the difference comes from --kernel-block-size / --decode-kernel-block-size, which vLLM does not have; drop them`
  }
  // Past this bound a hybrid's logical block is the requested size itself on both sides (one FA
  // page already holds the Mamba page), so a larger request changes nothing that a smaller did not.
  const tokensForState = Math.max(...sides.map((e) => (e.hybrid ? cdiv(e.mambaPageBytes, e.attnBytesPerToken) : 0)))
  const bound = Math.min(LAYOUT_LIMITS.blockSize, Math.max(64, 16 * cdiv(tokensForState, 16)))
  for (let requested = 16; requested <= bound; requested += 16) {
    const logical = sides.map((e, i) => alignedBlockSize({requested, hybrid: e.hybrid, mambaPageBytes: e.mambaPageBytes, attnBytesPerToken: e.attnBytesPerToken, rule: rules[i]}).logicalBlockSize)
    const kernel = logical.map((l, i) => selectKernelBlockSize(l, rules[i]))
    if (kernel[0] !== undefined && kernel[0] === kernel[1]) {
      return `pass --block-size ${requested} to prefill and decode: logical blocks ${logical[0]} / ${logical[1]} tokens, kernel block ${kernel[0]} on both sides (${backends})`
    }
  }
  return `no --block-size up to ${bound} gives both sides the same kernel block with ${backends}; choose TP sizes (or a backend) under which the kernel blocks agree, or let hpd map the pair`
}

function gcdOf(c: PitfallContext): number {
  let a = c.prefill.kernelBlockSize
  let b = c.decode.kernelBlockSize
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

/**
 * What goes wrong running this model and P/D pair through vLLM's NixlConnector at release
 * `judgedAgainst` (a release of vllm-versions.ts), each with a stable code, a one-line fix, the
 * releases it applies to and the change that fixed it. Pure; the order is stable.
 */
export function vllmPitfalls(model: ModelSpec, prefill: EngineLayout, decode: EngineLayout, judgedAgainst: string): VllmPitfall[] {
  const c: PitfallContext = {model, prefill, decode}
  return RULES.filter((r) => appliesAt(r, judgedAgainst) && r.when(c)).map((r) => ({
    code: r.code,
    message: r.message(c),
    fix: r.fix(c),
    vllmVersion: judgedAgainst,
    appliesTo: `>=${r.appliesFrom ?? OLDEST_VLLM}${r.fixedIn ? ` <${r.fixedIn.version}` : ''}`,
    fixedIn: r.fixedIn ?? null,
    refs: r.refs,
  }))
}

function appliesAt(rule: PitfallRule, version: string): boolean {
  if (compareVllm(version, rule.appliesFrom ?? OLDEST_VLLM) < 0) return false
  return !rule.fixedIn || compareVllm(version, rule.fixedIn.version) < 0
}
