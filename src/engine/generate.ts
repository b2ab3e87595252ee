import {UsageError} from '../errors.js'
import {blocksNeeded, engineLayout, HybridEngine} from './engine.js'
import {loadModel} from './load-model.js'
import {Sampler} from './sampler.js'

export interface GenerateOptions {
  /** Preset (tiny, tiny-hybrid-g1, tiny-llama) or a Hugging Face model directory. */
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

/** One prompt through one in-process engine: prefill, then greedy or sampled decode. */
export function generate(options: GenerateOptions): GenerateResult {
  if (!Number.isInteger(options.maxTokens) || options.maxTokens < 1) {
    throw new UsageError('HPD_USAGE_BAD_MAX_TOKENS', `--max-tokens ${options.maxTokens} must be a positive integer`)
  }
  if (!(options.temperature >= 0)) throw new UsageError('HPD_USAGE_BAD_TEMPERATURE', `--temperature ${options.temperature} must be >= 0`)
  if (!(options.topP > 0 && options.topP <= 1)) throw new UsageError('HPD_USAGE_BAD_TOP_P', `--top-p ${options.topP} must be in (0, 1]`)
  const model = loadModel(options.model)
  let promptTokenIds: number[]
  if (options.chat) {
    if (!model.tokenizer.applyChatTemplate) {
      throw new UsageError('HPD_USAGE_NO_CHAT_TEMPLATE', `--chat: model ${model.spec.name} has no chat template`, {
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
