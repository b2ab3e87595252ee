/**
 * Engine benchmark (issues 5, 15): per model, prefill FLOP/s of the CPU engine as a fraction of
 * OpenBLAS sgemm FLOP/s measured in the same run, decode tokens/s at batch 1 and 8, and resident
 * memory, with the weights held as fp32 and as bf16 (same values: the model is stored in bf16,
 * loaded once widened, once kept). A checkpoint stored in fp32 (the tiny presets) or fp16 has no
 * bf16 weights to keep: its bf16 row is skipped, and the output says why.
 *
 *   npx tsx scripts/bench-engine.ts [--model nemotron-h|granite-h|falcon-h1|qwen3-next|nemotron-h-moe|<preset or dir>]
 *       [--weights both|fp32|bf16] [--tokens 2048] [--decode 32] [--batch 1,8] [--tp 1] [--json]
 *
 * The named models are bench-sized twins of each family (hidden 1024, the family's real config
 * keys, weights from a seed), generated into $HPD_CACHE_DIR/models (default ~/.cache/hpd) on first
 * use. Each weight dtype runs in its own child process, so its resident memory is its own.
 *
 * Model FLOPs counted: 2·T·(weights of every projection a token uses: the routed experts only
 * top_k / E of them) + causal attention 2·T²·heads·head_dim (QKᵀ and PV) + the LM head of the
 * last token; scans, convs and norms (elementwise work) are not counted, so the fraction is a
 * lower bound of kernel efficiency. The reference is cblas_sgemm with OpenBLAS's own threads (the
 * kernel pool's count) on [T, hidden] × [4096, hidden]ᵀ, for as many calls as the prefill has
 * FLOPs, interleaved with two prefills (best of each is compared).
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {blocksNeeded, engineLayout, HybridEngine} from '../src/engine/engine.js'
import {loadModel, resolveModelDir} from '../src/engine/load-model.js'
import {modelCacheDir, writeGeneratedModel} from '../src/engine/tiny-models.js'
import {expectedTensors} from '../src/engine/weight-names.js'
import {kernels} from '../src/native/kernels-binding.js'

const COMMON = {torch_dtype: 'bfloat16', vocab_size: 384, bos_token_id: 256, eos_token_id: 257, pad_token_id: 258, max_position_embeddings: 8192, tie_word_embeddings: false}

const BENCH_MODELS: Readonly<Record<string, Record<string, unknown>>> = {
  // ~50M parameters: 4 Mamba2, 1 attention, 3 relu² MLP layers (the issue 5 benchmark model).
  'nemotron-h': {
    ...COMMON, architectures: ['NemotronHForCausalLM'], model_type: 'nemotron_h', hidden_size: 1024, num_hidden_layers: 8, hybrid_override_pattern: 'M-M*M-M-',
    num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128, mamba_num_heads: 32, mamba_head_dim: 64, n_groups: 8, ssm_state_size: 128, conv_kernel: 4,
    chunk_size: 128, intermediate_size: 2816, layer_norm_epsilon: 1e-5, mamba_ssm_cache_dtype: 'float32', use_conv_bias: true,
  },
  // Nemotron-3 Nano style: Mamba2 + attention + MoE (32 relu² experts top-4, shared expert).
  'nemotron-h-moe': {
    ...COMMON, architectures: ['NemotronHForCausalLM'], model_type: 'nemotron_h', hidden_size: 1024, num_hidden_layers: 8, hybrid_override_pattern: 'MEM*EMEM',
    num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128, mamba_num_heads: 32, mamba_head_dim: 64, n_groups: 8, ssm_state_size: 128, conv_kernel: 4,
    chunk_size: 128, n_routed_experts: 32, num_experts_per_tok: 4, moe_intermediate_size: 512, moe_shared_expert_intermediate_size: 1024, n_group: 1, topk_group: 1,
    routed_scaling_factor: 2.5, norm_topk_prob: true, mlp_hidden_act: 'relu2', layer_norm_epsilon: 1e-5, mamba_ssm_cache_dtype: 'float32', use_conv_bias: true,
  },
  // Granite-4.0-H-tiny style: 6 Mamba2 + 2 NoPE attention layers, each with 16 SwiGLU experts top-4 + a shared MLP.
  'granite-h': {
    ...COMMON, architectures: ['GraniteMoeHybridForCausalLM'], model_type: 'granitemoehybrid', hidden_size: 1024, num_hidden_layers: 8,
    layer_types: ['mamba', 'mamba', 'mamba', 'attention', 'mamba', 'mamba', 'mamba', 'attention'], num_attention_heads: 8, num_key_value_heads: 2,
    mamba_n_heads: 32, mamba_d_head: 64, mamba_expand: 2, mamba_n_groups: 1, mamba_d_state: 128, mamba_d_conv: 4, mamba_chunk_size: 128,
    num_local_experts: 16, num_experts_per_tok: 4, intermediate_size: 512, shared_intermediate_size: 1024, position_embedding_type: 'nope',
    embedding_multiplier: 12, residual_multiplier: 0.22, attention_multiplier: 0.0078125, logits_scaling: 6, rms_norm_eps: 1e-5,
  },
  // Falcon-H1-0.5B style: Mamba2 (d_ssm 1536, n_groups 1) and RoPE attention in parallel in all 8 layers, SwiGLU MLP.
  'falcon-h1': {
    ...COMMON, architectures: ['FalconH1ForCausalLM'], model_type: 'falcon_h1', hidden_size: 1024, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 2,
    head_dim: 128, intermediate_size: 2048, mamba_d_ssm: 1536, mamba_n_heads: 24, mamba_d_head: 64, mamba_n_groups: 1, mamba_d_state: 128, mamba_d_conv: 4,
    mamba_chunk_size: 128, mamba_rms_norm: true, mamba_norm_before_gate: false, rope_theta: 1e11, rms_norm_eps: 1e-5, embedding_multiplier: 5.656854,
    lm_head_multiplier: 0.0390625, attention_out_multiplier: 0.9375, key_multiplier: 0.390625, ssm_in_multiplier: 1.25, ssm_out_multiplier: 0.23570226,
    ssm_multipliers: [0.35355339, 0.25, 0.35355339, 0.5, 0.35355339], mlp_multipliers: [0.8838835, 0.5859375],
  },
  // Qwen3-Next style: 6 Gated DeltaNet + 2 gated attention layers, MoE of 32 SwiGLU experts top-4 + gated shared expert.
  'qwen3-next': {
    ...COMMON, architectures: ['Qwen3NextForCausalLM'], model_type: 'qwen3_next', hidden_size: 1024, num_hidden_layers: 8, full_attention_interval: 4,
    num_attention_heads: 8, num_key_value_heads: 2, head_dim: 256, partial_rotary_factor: 0.25, rope_theta: 10000000, linear_num_key_heads: 8,
    linear_num_value_heads: 16, linear_key_head_dim: 128, linear_value_head_dim: 128, linear_conv_kernel_dim: 4, num_experts: 32, num_experts_per_tok: 4,
    moe_intermediate_size: 256, shared_expert_intermediate_size: 512, decoder_sparse_step: 1, norm_topk_prob: true, intermediate_size: 2048, rms_norm_eps: 1e-6,
  },
}
const SEED = 1024

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const json = process.argv.includes('--json')
const modelArg = arg('model', 'nemotron-h')
const T = Number(arg('tokens', '2048'))
const decodeSteps = Number(arg('decode', '32'))
const batches = arg('batch', '1,8').split(',').map(Number)
const tp = Number(arg('tp', '1'))
const log = (line: string) => process.stderr.write(`${line}\n`)

/** The model directory: a bench model (generated in bf16 on first use), else a preset or path as given. */
function modelDir(): string {
  const config = BENCH_MODELS[modelArg]
  if (!config) return modelArg
  const dir = join(modelCacheDir(), `bench-${modelArg}-1k-seed${SEED}-bf16`)
  if (!existsSync(join(dir, 'config.json'))) {
    log(`generating the ${modelArg} benchmark model into ${dir} ...`)
    mkdirSync(modelCacheDir(), {recursive: true})
    writeGeneratedModel(dir, config, SEED, {dtype: 'BF16'})
  }
  return dir
}

interface Measurement {
  weights: 'fp32' | 'bf16'
  weightBytes: number
  rssBytes: number
  prefill: {tokens: number; seconds: number; tokensPerSecond: number; modelGflop: number; gflopPerSecond: number; sgemmGflopPerSecond: number; fractionOfSgemm: number}
  decode: {contextTokens: number; steps: number; tokensPerSecond: Record<string, number>}
  memory: {logicalBlockSize: number; pageBytes: number; cacheBytesPerRequest: number}
}

/** One weight dtype, in this (child) process. */
function measure(weights: 'fp32' | 'bf16'): Measurement {
  const model = loadModel(modelDir(), {weightDtype: weights === 'fp32' ? 'fp32' : 'auto'})
  const d = model.dims
  const k = kernels()
  // Projection parameters one token uses (routed experts: top_k of E).
  let params = 0
  for (const t of expectedTensors(d)) {
    const n = t.shape.reduce((a, b) => a * b, 1)
    if (t.shape.length < 2 || /embed|norm|conv1d|lm_head|A_log|dt_bias/.test(t.name)) continue
    const routed = /experts\.\d+\.|block_sparse_moe\.(input|output)_linear/.test(t.name)
    params += routed ? (n * d.moe!.topK) / d.moe!.numExperts : n
  }
  let attnFlops = 0
  d.layers.forEach((l) => l.blocks.forEach((b) => b.ops.forEach((op) => {
    if (op === 'attention') attnFlops += 2 * T * T * d.attention!.numHeads * d.attention!.headDim
  })))
  const modelFlops = 2 * T * params + attnFlops + 2 * d.hiddenSize * d.vocabSize
  const prompt = Array.from({length: T}, (_x, i) => (i * 7919) % 256)
  const maxBatch = Math.max(...batches)
  // Pool: the T-token request (kept for batch-1 decode) plus maxBatch short ones at a time.
  const probe = engineLayout(model.spec, {tp})
  const need = (tokens: number) => blocksNeeded(probe, tokens).reduce((a, b) => a + b, 0)
  const numBlocks = need(T + decodeSteps) * 2 + maxBatch * need(128 + maxBatch + decodeSteps) + 4
  const engine = new HybridEngine({spec: model.spec, weights: model.weights, tp, numBlocks})
  engine.prefill('warm', prompt.slice(0, 256))
  engine.free('warm')
  const threads = k.poolThreads()
  const refFlopsPerCall = 2 * T * 4096 * d.hiddenSize
  const sgemmIters = Math.max(3, Math.ceil(modelFlops / refFlopsPerCall))
  const sgemmRun = () => (refFlopsPerCall * sgemmIters) / k.sgemmReference(T, 4096, d.hiddenSize, sgemmIters, threads)
  const sgemmRuns = [sgemmRun()]
  let prefillSeconds = Number.POSITIVE_INFINITY
  for (let run = 0; run < 2; run++) {
    const start = performance.now()
    engine.prefill(`p${run}`, prompt)
    prefillSeconds = Math.min(prefillSeconds, (performance.now() - start) / 1000)
    if (run === 0) engine.free('p0')
    sgemmRuns.push(sgemmRun())
  }
  const sgemmBest = Math.max(...sgemmRuns)
  const tokensPerSecond: Record<string, number> = {}
  for (const batch of batches) {
    // batch 1 decodes after the T-token prompt; larger batches after 128-token prompts each
    const ids = batch === 1 ? ['p1'] : Array.from({length: batch}, (_x, b) => `b${batch}-${b}`)
    if (batch > 1) ids.forEach((id, b) => engine.prefill(id, prompt.slice(0, 128 + b)))
    let token = 65
    const start = performance.now()
    for (let i = 0; i < decodeSteps; i++) {
      engine.decodeStep(ids.map((requestId) => ({requestId, tokenId: token})))
      token = (token + 1) % 256
    }
    tokensPerSecond[`batch${batch}`] = (decodeSteps * batch) / ((performance.now() - start) / 1000)
    if (batch > 1) ids.forEach((id) => engine.free(id))
  }
  const layout = engine.layout
  const result: Measurement = {
    weights,
    weightBytes: model.weights.bytes,
    rssBytes: process.memoryUsage().rss,
    prefill: {
      tokens: T,
      seconds: prefillSeconds,
      tokensPerSecond: T / prefillSeconds,
      modelGflop: modelFlops / 1e9,
      gflopPerSecond: modelFlops / prefillSeconds / 1e9,
      sgemmGflopPerSecond: sgemmBest / 1e9,
      fractionOfSgemm: modelFlops / prefillSeconds / sgemmBest,
    },
    decode: {contextTokens: T, steps: decodeSteps, tokensPerSecond},
    memory: {
      logicalBlockSize: layout.logicalBlockSize,
      pageBytes: layout.pageBytes,
      cacheBytesPerRequest: engine.blocksNeeded(T).reduce((a, b) => a + b, 0) * layout.pageBytes * layout.numTensors * tp,
    },
  }
  engine.close()
  return result
}

const child = arg('child', '')
if (child === 'fp32' || child === 'bf16') {
  process.stdout.write(`${JSON.stringify(measure(child))}\n`)
} else {
  const which = arg('weights', 'both')
  const requested = (which === 'both' ? ['fp32', 'bf16'] : [which]) as ('fp32' | 'bf16')[]
  // generate once, before the children race to it
  const checkpointDtype = resolveModelDir(modelDir()).spec.dtype
  // The bf16 row is the checkpoint's bf16 weights kept as bf16 (same values as the fp32 row). An
  // fp32 (or fp16, widened on load) checkpoint has none to keep: that row would repeat the fp32 one.
  const skipped = checkpointDtype === 'bf16' || !requested.includes('bf16') ? [] : [{weights: 'bf16', reason: `${modelArg}'s checkpoint is ${checkpointDtype}: no bf16 weights to keep (the named bench models and bf16 directories have them)`}]
  const dtypes = requested.filter((d) => d !== 'bf16' || skipped.length === 0)
  if (dtypes.length === 0) {
    log(`nothing to measure: ${skipped[0].reason}`)
    process.exit(2)
  }
  const runs = dtypes.map((dtype) => {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--child', dtype], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24})
    if (r.status !== 0) throw new Error(`the ${dtype} run failed (exit ${r.status})`)
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Measurement
  })
  const k = kernels()
  const result = {machine: `${process.arch}, ${k.poolThreads()} kernel threads`, model: modelArg, checkpointDtype, tp, runs, skipped}
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  else {
    for (const s of skipped) log(`${modelArg} ${s.weights}: skipped, ${s.reason}`)
    for (const r of runs) {
      const dec = Object.entries(r.decode.tokensPerSecond).map(([b, v]) => `${v.toFixed(1)} tok/s ${b.replace('batch', 'b=')}`).join(', ')
      log(`${modelArg} ${r.weights}: weights ${(r.weightBytes / 2 ** 20).toFixed(0)} MiB, RSS ${(r.rssBytes / 2 ** 20).toFixed(0)} MiB`)
      log(`  prefill ${T} tokens: ${r.prefill.seconds.toFixed(2)} s, ${r.prefill.tokensPerSecond.toFixed(0)} tok/s, ${r.prefill.gflopPerSecond.toFixed(1)} GFLOP/s = ${r.prefill.fractionOfSgemm.toFixed(2)} of sgemm (${r.prefill.sgemmGflopPerSecond.toFixed(1)} GFLOP/s)`)
      log(`  decode at ${T} context: ${dec}`)
    }
  }
}
