/**
 * Engine benchmark (issue 5): prefill FLOP/s of the CPU engine as a fraction of OpenBLAS sgemm
 * FLOP/s measured in the same run, decode tokens/s, and cache memory per token.
 *
 *   npx tsx scripts/bench-engine.ts [--tokens 2048] [--decode 32] [--batch 4] [--tp 1] [--json]
 *
 * The model is generated from a seed (hidden 1024, Nemotron-H pattern M-M*M-M-: 4 Mamba2, 1
 * attention, 3 MLP layers, ~50M parameters) into $HPD_CACHE_DIR/models (default ~/.cache/hpd) on
 * first use. Model FLOPs counted: 2·T·(weights of every projection) + causal attention
 * 2·T²·heads·head_dim (QKᵀ and PV) + the LM head of the last token; the Mamba scan, conv and norms
 * (elementwise work) are not counted, so the fraction is a lower bound of kernel efficiency.
 * The reference is cblas_sgemm with OpenBLAS's own 2 threads on [T, 1024] × [4096, 1024]ᵀ, run for as
 * many calls as the prefill has FLOPs, interleaved with two prefills (best of each is compared).
 */
import {existsSync, mkdirSync} from 'node:fs'
import {join} from 'node:path'

import {HybridEngine} from '../src/engine/engine.js'
import {loadModel} from '../src/engine/load-model.js'
import {modelCacheDir, writeGeneratedModel} from '../src/engine/tiny-models.js'
import {kernels} from '../src/native/kernels-binding.js'

const BENCH_CONFIG = {
  architectures: ['NemotronHForCausalLM'],
  model_type: 'nemotron_h',
  torch_dtype: 'float32',
  hidden_size: 1024,
  num_hidden_layers: 8,
  hybrid_override_pattern: 'M-M*M-M-',
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 128,
  mamba_num_heads: 32,
  mamba_head_dim: 64,
  n_groups: 8,
  ssm_state_size: 128,
  conv_kernel: 4,
  chunk_size: 128,
  intermediate_size: 2816,
  vocab_size: 384,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 8192,
  mamba_ssm_cache_dtype: 'float32',
  use_conv_bias: true,
  tie_word_embeddings: false,
  bos_token_id: 256,
  eos_token_id: 257,
  pad_token_id: 258,
}
const SEED = 1024

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const json = process.argv.includes('--json')
const T = arg('tokens', 2048)
const decodeSteps = arg('decode', 32)
const batch = arg('batch', 4)
const tp = arg('tp', 1)
const log = (line: string) => process.stderr.write(`${line}\n`)

const dir = join(modelCacheDir(), `bench-hybrid-1k-seed${SEED}`)
if (!existsSync(join(dir, 'config.json'))) {
  log(`generating the benchmark model into ${dir} ...`)
  mkdirSync(modelCacheDir(), {recursive: true})
  writeGeneratedModel(dir, BENCH_CONFIG, SEED)
}
const model = loadModel(dir)
const d = model.dims
const k = kernels()

// Model FLOPs of a T-token prefill.
let projectionParams = 0
for (const [name, t] of model.weights.tensors) {
  if (name.endsWith('.weight') && !name.includes('embeddings') && !name.includes('lm_head') && !name.includes('norm') && !name.includes('conv1d')) projectionParams += t.length
}
const attnLayers = d.layers.filter((l) => l === 'attention').length
const attnFlops = 2 * T * T * d.attention!.numHeads * d.attention!.headDim * attnLayers
const modelFlops = 2 * T * projectionParams + attnFlops + 2 * d.hiddenSize * d.vocabSize

const prompt = Array.from({length: T}, (_x, i) => (i * 7919) % 256)
const engine = new HybridEngine({spec: model.spec, weights: model.weights, tp, numBlocks: Math.ceil((T + decodeSteps) / 64) * 4 * (batch + 3)})
// warm-up (page faults, OpenBLAS buffers)
engine.prefill('warm', prompt.slice(0, 256))
engine.free('warm')

// Reference: cblas_sgemm with OpenBLAS's own 2 threads, as many iterations as carry the prefill's
// FLOPs (so both measurements span similar wall time on a shared machine), interleaved with the
// prefills: sgemm, prefill, sgemm, prefill, sgemm. Best of each is reported.
const refFlopsPerCall = 2 * T * 4096 * d.hiddenSize
const sgemmIters = Math.max(3, Math.ceil(modelFlops / refFlopsPerCall))
const sgemmRun = () => (refFlopsPerCall * sgemmIters) / k.sgemmReference(T, 4096, d.hiddenSize, sgemmIters, 2)
const sgemmRuns = [sgemmRun()]
let prefillSeconds = Number.POSITIVE_INFINITY
let logits = new Float32Array(0)
for (let run = 0; run < 2; run++) {
  const start = performance.now()
  logits = engine.prefill(`p${run}`, prompt)!
  prefillSeconds = Math.min(prefillSeconds, (performance.now() - start) / 1000)
  if (run === 0) engine.free('p0')
  sgemmRuns.push(sgemmRun())
}
const prefillFlops = modelFlops / prefillSeconds
const sgemmFlopsBest = Math.max(...sgemmRuns)

let token = 65
let start = performance.now()
for (let i = 0; i < decodeSteps; i++) {
  ;[logits] = engine.decodeStep([{requestId: 'p1', tokenId: token}])
  token = (token + 1) % 256
}
const decodeSeconds = (performance.now() - start) / 1000

for (let b = 0; b < batch; b++) engine.prefill(`b${b}`, prompt.slice(0, 128 + b))
start = performance.now()
for (let i = 0; i < decodeSteps; i++) engine.decodeStep(Array.from({length: batch}, (_x, b) => ({requestId: `b${b}`, tokenId: 66})))
const batchSeconds = (performance.now() - start) / 1000

const layout = engine.layout
const pagesPerRequest = engine.blocksNeeded(T).reduce((a, b) => a + b, 0)
const cacheBytesPerRequest = pagesPerRequest * layout.pageBytes * layout.numTensors * tp
const result = {
  machine: `${process.arch}, ${k.poolThreads()} kernel threads`,
  model: {hiddenSize: d.hiddenSize, layers: BENCH_CONFIG.hybrid_override_pattern, projectionParams, tp},
  prefill: {
    tokens: T,
    seconds: prefillSeconds,
    tokensPerSecond: T / prefillSeconds,
    modelGflop: modelFlops / 1e9,
    gflopPerSecond: prefillFlops / 1e9,
    sgemmGflopPerSecond: sgemmFlopsBest / 1e9,
    sgemmRunsGflopPerSecond: sgemmRuns.map((f) => f / 1e9),
    fractionOfSgemm: prefillFlops / sgemmFlopsBest,
  },
  decode: {
    contextTokens: T,
    steps: decodeSteps,
    tokensPerSecond: decodeSteps / decodeSeconds,
    batch,
    batchTokensPerSecond: (decodeSteps * batch) / batchSeconds,
  },
  memory: {
    logicalBlockSize: layout.logicalBlockSize,
    pageBytes: layout.pageBytes,
    numTensors: layout.numTensors,
    attentionBytesPerToken: layout.attnBytesPerToken * attnLayers * tp,
    mambaStateBytesPerRequest: layout.mambaPageBytes * d.layers.filter((l) => l === 'mamba').length * tp,
    cacheBytesPerTokenAt: {tokens: T, bytesPerToken: cacheBytesPerRequest / T},
    weightBytes: [...model.weights.tensors.values()].reduce((a, t) => a + t.byteLength, 0),
  },
  lastLogit: logits[0],
}
engine.close()
if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
else {
  log(`prefill ${T} tokens: ${result.prefill.seconds.toFixed(3)} s, ${result.prefill.tokensPerSecond.toFixed(0)} tok/s, ${result.prefill.gflopPerSecond.toFixed(1)} GFLOP/s`)
  log(`OpenBLAS sgemm (2 threads, ${T}x4096x${d.hiddenSize}): ${result.prefill.sgemmGflopPerSecond.toFixed(1)} GFLOP/s → prefill/sgemm = ${result.prefill.fractionOfSgemm.toFixed(3)}`)
  log(`decode at ${T} context: ${result.decode.tokensPerSecond.toFixed(1)} tok/s (batch 1), ${result.decode.batchTokensPerSecond.toFixed(1)} tok/s (batch ${batch})`)
  log(`memory: ${result.memory.attentionBytesPerToken} B/token K+V, ${result.memory.mambaStateBytesPerRequest} B Mamba state per request, ${result.memory.cacheBytesPerTokenAt.bytesPerToken.toFixed(0)} B/token of pages at ${T} tokens`)
}
