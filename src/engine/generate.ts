import {UsageError} from '../errors.js'
import {CONFIG_LIMITS, contextLength} from '../model/index.js'
import {blocksNeeded, engineLayout, HybridEngine} from './engine.js'
import {loadModel} from './load-model.js'
import {Sampler} from './sampler.js'

export interface GenerateOptions {
  /** A tiny preset (`ENGINE_PRESETS`, src/model/presets.ts) or a Hugging Face model directory. */
  readonly model: string
  readonly prompt: string
  readonly maxTokens: number
  readonly tp: number
  readonly temperature: number
  readonly topP: number
  readonly topK: number
  readonly seed: number
  /** Keep generating past the end-of-sequence token. */
  readonly ignoreEos?: boolean
  /** Wrap the prompt as one user message in the model's chat template. */
  readonly chat?: boolean
}

export interface GenerateResult {
  readonly model: string
  readonly tp: number
  readonly text: string
  readonly promptTokenIds: readonly number[]
  readonly tokenIds: readonly number[]
  readonly finishReason: 'length' | 'eos'
  readonly prefillTokens: number
  readonly prefillSeconds: number
  readonly prefillTokensPerSecond: number
  readonly decodeTokens: number
  readonly decodeSeconds: number
  readonly decodeTokensPerSecond: number
  /** Cache geometry the run used (from src/layout, `cpu` backend). */
  readonly cache: {readonly logicalBlockSize: number; readonly kernelBlockSize: number; readonly pageBytes: number; readonly numTensors: number}
}

/**
 * The documented ranges of `hpd generate`'s numeric flags (README, "Limits"): what the sampler and
 * the engine can honour exactly. --tp is bounded by the layout engine (1..1024, and it must split
 * the heads); --max-tokens also by the model's context, checked once the prompt is tokenized.
 */
export const GENERATE_LIMITS = {
  maxTokens: CONFIG_LIMITS.contextTokens,
  /** Temperatures above this are uniform sampling in all but name. */
  temperature: 100,
  /** top-k at or above the vocabulary keeps every token; beyond 2^31 it is an int32 the sampler cannot take. */
  topK: 2_147_483_647,
  /** The sampling stream is seeded with 32 bits: larger seeds would silently repeat smaller ones. */
  seed: 4_294_967_295,
} as const

function checkGenerateOptions(o: GenerateOptions): void {
  const bad = (code: string, flag: string, message: string, hint: string) => new UsageError(code, `--${flag} ${message}`, {hint, details: {flag}})
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1 || o.maxTokens > GENERATE_LIMITS.maxTokens) {
    throw bad('HPD_USAGE_BAD_MAX_TOKENS', 'max-tokens', `${o.maxTokens} must be an integer in [1, ${GENERATE_LIMITS.maxTokens}]`, 'Pass how many tokens to generate, e.g. 32.')
  }
  if (!(o.temperature >= 0 && o.temperature <= GENERATE_LIMITS.temperature)) {
    throw bad('HPD_USAGE_BAD_TEMPERATURE', 'temperature', `${o.temperature} must be a number in [0, ${GENERATE_LIMITS.temperature}]`, '0 is greedy; 0.7–1 are usual.')
  }
  if (!(o.topP > 0 && o.topP <= 1)) throw bad('HPD_USAGE_BAD_TOP_P', 'top-p', `${o.topP} must be in (0, 1]`, '1 keeps every token; 0.9 is usual.')
  if (!Number.isInteger(o.topK) || o.topK < 0 || o.topK > GENERATE_LIMITS.topK) {
    throw bad('HPD_USAGE_BAD_TOP_K', 'top-k', `${o.topK} must be an integer in [0, ${GENERATE_LIMITS.topK}]`, '0 keeps every token.')
  }
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > GENERATE_LIMITS.seed) {
    throw bad('HPD_USAGE_BAD_SEED', 'seed', `${o.seed} must be an integer in [0, ${GENERATE_LIMITS.seed}]`, 'Any 32-bit unsigned value.')
  }
}

/** One prompt through one in-process engine: prefill, then greedy or sampled decode. */
export function generate(options: GenerateOptions): GenerateResult {
  checkGenerateOptions(options)
  const model = loadModel(options.model)
  let promptTokenIds: number[]
  if (options.chat) {
    if (!model.tokenizer.applyChatTemplate) {
      throw new UsageError('HPD_USAGE_NO_CHAT_TEMPLATE', `--chat: model ${model.name} has no chat template`, {
        hint: 'Drop --chat, or use a model directory whose tokenizer_config.json has a chat_template.',
      })
    }
    const text = model.tokenizer.applyChatTemplate([{role: 'user', content: options.prompt}])
    promptTokenIds = model.tokenizer.encode(text, {addSpecialTokens: false})
  } else {
    promptTokenIds = model.tokenizer.encode(options.prompt)
  }
  if (promptTokenIds.length === 0) throw new UsageError('HPD_USAGE_EMPTY_PROMPT', '--prompt encodes to no tokens', {hint: 'Pass a non-empty --prompt.'})
  const total = promptTokenIds.length + options.maxTokens
  const context = contextLength(model.spec)
  if (total > context) {
    // The cache is sized for prompt + output up front: past the model's context it would only grow.
    throw new UsageError('HPD_USAGE_BAD_MAX_TOKENS', `${promptTokenIds.length} prompt tokens + --max-tokens ${options.maxTokens} exceed the model's context of ${context} tokens`, {
      hint: 'Lower --max-tokens or shorten --prompt.',
      details: {flag: 'max-tokens', promptTokens: promptTokenIds.length, maxTokens: options.maxTokens, contextTokens: context},
    })
  }
  const needed = blocksNeeded(engineLayout(model.spec, {tp: options.tp}), total).reduce((a, b) => a + b, 0)
  const sized = new HybridEngine({spec: model.spec, weights: model.weights, tp: options.tp, numBlocks: needed})
  try {
    const sampler = new Sampler(options.seed)
    const sampling = {temperature: options.temperature, topP: options.topP, topK: options.topK}
    let start = performance.now()
    let logits = sized.prefill('generate', promptTokenIds)!
    const prefillSeconds = (performance.now() - start) / 1000
    const tokenIds: number[] = []
    let finishReason: GenerateResult['finishReason'] = 'length'
    start = performance.now()
    let decodeTokens = 0
    for (;;) {
      const next = sampler.sample(logits, sampling)
      if (next === model.tokenizer.eosId && !options.ignoreEos) {
        finishReason = 'eos'
        break
      }
      tokenIds.push(next)
      if (tokenIds.length >= options.maxTokens) break
      ;[logits] = sized.decodeStep([{requestId: 'generate', tokenId: next}])
      decodeTokens++
    }
    const decodeSeconds = (performance.now() - start) / 1000
    return {
      model: model.spec.name,
      tp: options.tp,
      text: model.tokenizer.decode(tokenIds),
      promptTokenIds,
      tokenIds,
      finishReason,
      prefillTokens: promptTokenIds.length,
      prefillSeconds,
      prefillTokensPerSecond: promptTokenIds.length / prefillSeconds,
      decodeTokens,
      decodeSeconds,
      decodeTokensPerSecond: decodeTokens > 0 ? decodeTokens / decodeSeconds : 0,
      cache: {
        logicalBlockSize: sized.layout.logicalBlockSize,
        kernelBlockSize: sized.layout.kernelBlockSize,
        pageBytes: sized.layout.pageBytes,
        numTensors: sized.layout.numTensors,
      },
    }
  } finally {
    sized.close()
  }
}
