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
]

/** The preset called `name` (or one of its aliases), case-insensitive. */
export function findPreset(name: string): ModelPreset | undefined {
  const key = name.trim().toLowerCase()
  return PRESETS.find((p) => p.name === key || p.aliases.includes(key))
}
