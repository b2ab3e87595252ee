/**
 * Test support: a model directory laid out as the Hugging Face checkpoints people download —
 * config.json in the family's published keys (Qwen3.5 wrapped in text_config / vision_config),
 * bf16 safetensors split over shards with model.safetensors.index.json, tensors the engine does
 * not use (a vision tower, MTP heads) stored beside the model's own, a byte-level BPE
 * tokenizer.json and a tokenizer_config.json with a ChatML chat template. Weights come from the
 * tiny-model generator (tiny-models.ts), so the same config gives the same values as the preset.
 */
import {findPreset} from '../model/index.js'
import {writeGeneratedModel} from '../engine/tiny-models.js'

/** GPT-2's byte ↔ unicode map: byte b is the token `chars[b]` (printable bytes map to themselves). */
function byteChars(): string[] {
  const printable: number[] = []
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b)
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b)
  for (let b = 0xae; b <= 0xff; b++) printable.push(b)
  const chars: string[] = []
  let extra = 0
  for (let b = 0; b < 256; b++) chars[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++)
  return chars
}

const SPECIALS = ['<|startoftext|>', '<|endoftext|>', '<|pad|>', '<|im_start|>', '<|im_end|>']

/** A byte-level BPE tokenizer without merges: byte b is id b (as the tiny models' byte tokenizer), specials 256.. */
export function byteLevelTokenizerFiles(): Record<string, string> {
  const vocab: Record<string, number> = {}
  byteChars().forEach((c, b) => {
    vocab[c] = b
  })
  SPECIALS.forEach((t, i) => {
    vocab[t] = 256 + i
  })
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, i) => ({id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true})),
    normalizer: null,
    pre_tokenizer: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
    post_processor: null,
    decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
    model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: []},
  }
  const config = {
    bos_token: null,
    eos_token: '<|im_end|>',
    pad_token: '<|pad|>',
    chat_template:
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  }
  return {'tokenizer.json': `${JSON.stringify(tokenizer)}\n`, 'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n`}
}

/**
 * The published-layout config of a tiny preset: bf16, and for `qwen3.5` the multimodal wrapper
 * (Qwen3_5ForConditionalGeneration: text model under text_config, a dense MLP, tied embeddings).
 */
export function publishedConfig(preset: string, variant: 'as-is' | 'qwen3.5' = 'as-is'): Record<string, unknown> {
  const config = {...findPreset(preset)!.config, torch_dtype: 'bfloat16'} as Record<string, unknown>
  if (variant === 'as-is') return config
  const {architectures: _a, model_type: _m, num_experts: _e, num_experts_per_tok: _k, moe_intermediate_size: _i, shared_expert_intermediate_size: _s, decoder_sparse_step: _d, mlp_only_layers: _o, norm_topk_prob: _n, partial_rotary_factor: _p, rope_theta: _r, ...text} = config
  return {
    architectures: ['Qwen3_5ForConditionalGeneration'],
    model_type: 'qwen3_5',
    torch_dtype: 'bfloat16',
    tie_word_embeddings: true,
    text_config: {
      ...text,
      model_type: 'qwen3_5_text',
      layer_types: Array.from({length: config.num_hidden_layers as number}, (_x, i) => ((i + 1) % 4 === 0 ? 'full_attention' : 'linear_attention')),
      rope_parameters: {rope_type: 'default', rope_theta: 10000000, partial_rotary_factor: 0.25, mrope_section: [4, 2, 2], mrope_interleaved: true},
      tie_word_embeddings: true,
    },
    vision_config: {model_type: 'qwen3_5', depth: 1, hidden_size: 8, out_hidden_size: 256},
    image_token_id: 383,
  }
}

/** Writes `dir` in the published layout for `config` (2 bf16 shards + index, tokenizer files, unused extra tensors). */
export function writePublishedCheckpoint(dir: string, config: Record<string, unknown>, options: {seed?: number; shards?: number} = {}): void {
  writeGeneratedModel(dir, config, options.seed ?? 20260525, {
    shards: options.shards ?? 2,
    dtype: 'BF16',
    files: byteLevelTokenizerFiles(),
    extraTensors: [
      {name: 'model.visual.patch_embed.proj.weight', shape: [8, 12], data: new Float32Array(96).fill(0.5)},
      {name: 'mtp.fc.weight', shape: [4, 8], data: new Float32Array(32).fill(0.25)},
    ],
  })
}
