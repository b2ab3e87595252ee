/**
 * Built-in model presets: config.json objects hpd knows by name, each with the public source its
 * values come from. They go through the same parser as a user's config.json.
 *
 * Where to add a preset: append to PRESETS (and a golden test in src/layout/golden.test.ts).
 */
export interface ModelPreset {
  readonly name: string
  readonly aliases: readonly string[]
  readonly description: string
  /** Where the values come from (public configs / vLLM sources), so a reader can check them. */
  readonly builtFrom: string
  readonly config: Readonly<Record<string, unknown>>
}

const NEMOTRON_H_8B: Record<string, unknown> = {
  architectures: ['NemotronHForCausalLM'],
  model_type: 'nemotron_h',
  torch_dtype: 'bfloat16',
  vocab_size: 131072,
  hidden_size: 4096,
  num_hidden_layers: 52,
  hybrid_override_pattern: 'M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-',
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 128,
  intermediate_size: 21504,
  mamba_num_heads: 128,
  mamba_head_dim: 64,
  n_groups: 8,
  ssm_state_size: 128,
  conv_kernel: 4,
  chunk_size: 256,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 8192,
  mamba_ssm_cache_dtype: 'float32',
  use_conv_bias: true,
  tie_word_embeddings: false,
}

const NEMOTRON_NANO_9B_V2: Record<string, unknown> = {
  architectures: ['NemotronHForCausalLM'],
  model_type: 'nemotron_h',
  torch_dtype: 'bfloat16',
  vocab_size: 131072,
  hidden_size: 4480,
  num_hidden_layers: 56,
  hybrid_override_pattern: 'M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-',
  num_attention_heads: 40,
  num_key_value_heads: 8,
  head_dim: 128,
  intermediate_size: 15680,
  mamba_num_heads: 128,
  mamba_head_dim: 80,
  n_groups: 8,
  ssm_state_size: 128,
  conv_kernel: 4,
  chunk_size: 128,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 131072,
  mamba_ssm_cache_dtype: 'float32',
  use_conv_bias: true,
  tie_word_embeddings: false,
}

/** The tiny presets are fixed by the project (engine and layout must agree on every value). */
const TINY_HYBRID: Record<string, unknown> = {
  architectures: ['NemotronHForCausalLM'],
  model_type: 'nemotron_h',
  torch_dtype: 'float32',
  hidden_size: 256,
  num_hidden_layers: 8,
  hybrid_override_pattern: 'M*M-M*M-',
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 32,
  mamba_num_heads: 16,
  mamba_head_dim: 32,
  n_groups: 4,
  ssm_state_size: 32,
  conv_kernel: 4,
  chunk_size: 64,
  intermediate_size: 768,
  vocab_size: 384,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 8192,
  mamba_ssm_cache_dtype: 'float32',
  use_conv_bias: true,
  mamba_proj_bias: false,
  attention_bias: false,
  mlp_bias: false,
  residual_in_fp32: false,
  tie_word_embeddings: false,
  bos_token_id: 256,
  eos_token_id: 257,
  pad_token_id: 258,
}

const TINY_LLAMA: Record<string, unknown> = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  torch_dtype: 'float32',
  hidden_size: 256,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 32,
  intermediate_size: 768,
  vocab_size: 384,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 8192,
  tie_word_embeddings: false,
  bos_token_id: 256,
  eos_token_id: 257,
  pad_token_id: 258,
}

/** Byte-tokenizer ids the tiny models share (256 <s>, 257 </s>, 258 <pad>). */
const BYTE_TOKENS = {vocab_size: 384, bos_token_id: 256, eos_token_id: 257, pad_token_id: 258, max_position_embeddings: 8192}

/**
 * Tiny twins of the hybrid checkpoints people download, in their published config keys (the
 * engine generates weights under the published tensor names): small dimensions, fp32, every
 * code path of the family on (MoE, shared experts, µP multipliers, gated norms, NoPE / partial
 * RoPE), and TP 1 / 2 / 4 all divide.
 */
const TINY_GRANITE_H: Record<string, unknown> = {
  architectures: ['GraniteMoeHybridForCausalLM'],
  model_type: 'granitemoehybrid',
  torch_dtype: 'float32',
  hidden_size: 256,
  num_hidden_layers: 6,
  layer_types: ['mamba', 'mamba', 'attention', 'mamba', 'mamba', 'attention'],
  num_attention_heads: 8,
  num_key_value_heads: 2,
  mamba_n_heads: 16,
  mamba_d_head: 32,
  mamba_expand: 2,
  mamba_n_groups: 1,
  mamba_d_state: 32,
  mamba_d_conv: 4,
  mamba_chunk_size: 64,
  mamba_conv_bias: true,
  mamba_proj_bias: false,
  num_local_experts: 8,
  num_experts_per_tok: 2,
  intermediate_size: 128,
  shared_intermediate_size: 256,
  hidden_act: 'silu',
  position_embedding_type: 'nope',
  rope_theta: 10000,
  embedding_multiplier: 12,
  residual_multiplier: 0.25,
  attention_multiplier: 0.03125,
  logits_scaling: 8,
  rms_norm_eps: 1e-5,
  attention_bias: false,
  // The published Granite-4.0-H checkpoints tie the LM head to the embeddings; random tied
  // embeddings make a tiny model repeat its input, so the preset keeps a separate lm_head (the
  // tied path is tested on a variant).
  tie_word_embeddings: false,
  ...BYTE_TOKENS,
}

const TINY_FALCON_H1: Record<string, unknown> = {
  architectures: ['FalconH1ForCausalLM'],
  model_type: 'falcon_h1',
  torch_dtype: 'float32',
  hidden_size: 256,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 32,
  intermediate_size: 512,
  mamba_d_ssm: 256,
  mamba_n_heads: 8,
  mamba_d_head: 32,
  mamba_n_groups: 1,
  mamba_d_state: 32,
  mamba_d_conv: 4,
  mamba_expand: 2,
  mamba_chunk_size: 64,
  mamba_conv_bias: true,
  mamba_proj_bias: false,
  mamba_rms_norm: true,
  mamba_norm_before_gate: false,
  projectors_bias: false,
  hidden_act: 'silu',
  rope_theta: 1e11,
  rms_norm_eps: 1e-5,
  embedding_multiplier: 5.656854,
  lm_head_multiplier: 0.0390625,
  attention_in_multiplier: 1.0,
  attention_out_multiplier: 0.9375,
  key_multiplier: 0.390625,
  ssm_in_multiplier: 1.25,
  ssm_out_multiplier: 0.23570226,
  ssm_multipliers: [0.35355339, 0.25, 0.35355339, 0.5, 0.35355339],
  mlp_multipliers: [0.8838835, 0.5859375],
  attention_bias: false,
  mlp_bias: false,
  tie_word_embeddings: false,
  ...BYTE_TOKENS,
}

const TINY_QWEN3_NEXT: Record<string, unknown> = {
  architectures: ['Qwen3NextForCausalLM'],
  model_type: 'qwen3_next',
  torch_dtype: 'float32',
  hidden_size: 256,
  num_hidden_layers: 8,
  full_attention_interval: 4,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 64,
  partial_rotary_factor: 0.25,
  rope_theta: 10000000,
  linear_num_key_heads: 4,
  linear_num_value_heads: 8,
  linear_key_head_dim: 32,
  linear_value_head_dim: 32,
  linear_conv_kernel_dim: 4,
  num_experts: 8,
  num_experts_per_tok: 2,
  moe_intermediate_size: 128,
  shared_expert_intermediate_size: 128,
  decoder_sparse_step: 1,
  mlp_only_layers: [5],
  norm_topk_prob: true,
  intermediate_size: 512,
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  attention_bias: false,
  tie_word_embeddings: false,
  ...BYTE_TOKENS,
}

const TINY_NEMOTRON_H_MOE: Record<string, unknown> = {
  architectures: ['NemotronHForCausalLM'],
  model_type: 'nemotron_h',
  torch_dtype: 'float32',
  hidden_size: 256,
  num_hidden_layers: 10,
  hybrid_override_pattern: 'MEM*EMEM*E',
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 32,
  mamba_num_heads: 16,
  mamba_head_dim: 32,
  n_groups: 4,
  ssm_state_size: 32,
  conv_kernel: 4,
  chunk_size: 64,
  intermediate_size: 512,
  n_routed_experts: 16,
  num_experts_per_tok: 4,
  moe_intermediate_size: 64,
  moe_shared_expert_intermediate_size: 128,
  n_shared_experts: 1,
  n_group: 1,
  topk_group: 1,
  routed_scaling_factor: 2.5,
  norm_topk_prob: true,
  moe_latent_size: null,
  mlp_hidden_act: 'relu2',
  mamba_hidden_act: 'silu',
  layer_norm_epsilon: 1e-5,
  mamba_ssm_cache_dtype: 'float32',
  use_conv_bias: true,
  mamba_proj_bias: false,
  attention_bias: false,
  mlp_bias: false,
  tie_word_embeddings: false,
  ...BYTE_TOKENS,
}

export const PRESETS: readonly ModelPreset[] = [
  {
    name: 'nemotron-h-8b',
    aliases: ['nemotron-h-8b-base-8k'],
    description: 'nvidia/Nemotron-H-8B-Base-8K (52 layers: 24 Mamba2, 4 attention, 24 MLP)',
    builtFrom:
      "vLLM NemotronHConfig defaults (vllm/transformers_utils/configs/nemotron_h.py), Mamba values confirmed by vLLM test id nemotron_h_8b_tp1 (mamba_num_heads=128, head_dim=64, n_groups=8, ssm_state_size=128); reference vllm-hybrid-pd.md §6",
    config: NEMOTRON_H_8B,
  },
  {
    name: 'nemotron-nano-9b-v2',
    aliases: ['nvidia-nemotron-nano-9b-v2'],
    description: 'nvidia/NVIDIA-Nemotron-Nano-9B-v2 (56 layers: 27 Mamba2, 4 attention, 25 MLP)',
    builtFrom:
      'public config.json of nvidia/NVIDIA-Nemotron-Nano-9B-v2 (third-party copies, one pinning rev 6533e8de); layout values as in reference vllm-hybrid-pd.md §6 (intermediate_size, vocab_size, chunk_size and max_position_embeddings do not affect the layout)',
    config: NEMOTRON_NANO_9B_V2,
  },
  {
    name: 'tiny-hybrid',
    aliases: ['tiny'],
    description: 'tiny Nemotron-H for tests and demos (8 layers M*M-M*M-, fp32, byte tokenizer)',
    builtFrom: 'hpd project definition (fixed by the lead; the engine generates weights for it)',
    config: TINY_HYBRID,
  },
  {
    name: 'tiny-hybrid-g1',
    aliases: [],
    description: 'tiny-hybrid with n_groups = 1 (replicated B/C under TP > 1)',
    builtFrom: 'hpd project definition (tiny-hybrid with n_groups 1)',
    config: {...TINY_HYBRID, n_groups: 1},
  },
  {
    name: 'tiny-hybrid-kv1',
    aliases: [],
    description: 'tiny-hybrid with 1 KV head: TP 2 replicates it, so TP 1 and TP 2 get different kernel blocks (16 vs 32 tokens)',
    builtFrom: 'hpd project definition (tiny-hybrid with num_key_value_heads 1; the small twin of issue 13\'s 2-KV-head case)',
    config: {...TINY_HYBRID, num_key_value_heads: 1},
  },
  {
    name: 'tiny-llama',
    aliases: [],
    description: 'tiny Llama (4 layers, fp32, byte tokenizer): the pure full-attention layout',
    builtFrom: 'hpd project definition (fixed by the lead; the engine generates weights for it)',
    config: TINY_LLAMA,
  },
  {
    name: 'tiny-granite-h',
    aliases: ['tiny-granite'],
    description: 'tiny Granite-4.0-H (6 layers: 4 Mamba2 + 2 NoPE attention, each with 8 routed SwiGLU experts top-2 + a shared MLP; µP multipliers)',
    builtFrom:
      'GraniteMoeHybridConfig keys of ibm-granite/granite-4.0-h-tiny (layer_types, mamba_*, num_local_experts, shared_intermediate_size, embedding/residual/attention multipliers, logits_scaling, position_embedding_type nope) at small dimensions',
    config: TINY_GRANITE_H,
  },
  {
    name: 'tiny-falcon-h1',
    aliases: ['tiny-falcon'],
    description: 'tiny Falcon-H1 (4 layers of parallel Mamba2 + RoPE attention, SwiGLU MLP; µP multipliers; mamba_n_groups 1 as Falcon-H1-0.5B)',
    builtFrom:
      'FalconH1Config keys of tiiuae/Falcon-H1-0.5B (mamba_d_ssm, mamba_n_groups 1, the µP multipliers, mamba_rms_norm, rope_theta 1e11) at small dimensions',
    config: TINY_FALCON_H1,
  },
  {
    name: 'tiny-qwen3-next',
    aliases: ['tiny-qwen'],
    description: 'tiny Qwen3-Next (8 layers: Gated DeltaNet with gated full attention every 4th; sparse MoE 8 experts top-2 + gated shared expert, one dense-MLP layer)',
    builtFrom:
      'Qwen3NextConfig keys of Qwen/Qwen3-Next-80B-A3B (full_attention_interval, linear_* GDN heads, partial_rotary_factor 0.25, num_experts, shared_expert_intermediate_size, mlp_only_layers) at small dimensions',
    config: TINY_QWEN3_NEXT,
  },
  {
    name: 'tiny-nemotron-h-moe',
    aliases: ['tiny-nemotron-moe'],
    description: 'tiny Nemotron-H MoE (10 layers MEM*EMEM*E: Mamba2, attention, MoE of 16 relu² experts top-4 with a sigmoid router + bias and a shared expert)',
    builtFrom:
      'NemotronHConfig keys of nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B (hybrid_override_pattern with E, n_routed_experts, moe_*intermediate_size, routed_scaling_factor 2.5, n_group / topk_group 1) at small dimensions',
    config: TINY_NEMOTRON_H_MOE,
  },
]

/**
 * The presets the engine runs (`generate`, `serve`, `worker`, `bench serve`): the tiny ones, whose
 * weights hpd generates from a fixed seed on first use (src/engine/tiny-models.ts). The others
 * describe a layout only. Help texts and hints list these names from here.
 */
export const ENGINE_PRESETS: readonly string[] = PRESETS.filter((p) => p.name.startsWith('tiny')).map((p) => p.name)

/** The engine presets as help text writes them: `tiny-hybrid (tiny), tiny-hybrid-g1, …`. */
export function enginePresetList(): string {
  return ENGINE_PRESETS.map((name) => {
    const aliases = findPreset(name)!.aliases.filter((a) => a === 'tiny')
    return aliases.length === 0 ? name : `${name} (${aliases.join(', ')})`
  }).join(', ')
}

/** The preset called `name` (or one of its aliases), case-insensitive. */
export function findPreset(name: string): ModelPreset | undefined {
  const key = name.trim().toLowerCase()
  return PRESETS.find((p) => p.name === key || p.aliases.includes(key))
}
