/**
 * Admission of one OpenAI request: body → fields checked (params.ts) → model → token ids per
 * prompt → sampling parameters with every limit applied (context length, vocabulary). Anything
 * refused here is an InvalidRequest naming its field; nothing reaches a worker unchecked.
 */
import type {ServeTokenizer} from '../backend.js'
import type {CapacityShortfall, PromptDemand} from '../kv-capacity.js'
import {KvParamsError, parseKvTransferParams, type KvLeg} from '../kv-contract.js'
import type {SamplingParams} from '../protocol.js'
import {InvalidRequest, parseChatBody, parseCompletionBody, type ParsedRequest, type PromptInput} from './request.js'

export type RequestKind = 'completion' | 'chat'

export interface AdmissionLimits {
  /** Names clients may pass as `model` (vLLM --served-model-name; responses carry the name the request used). */
  readonly modelNames: readonly string[]
  readonly maxModelLen: number
  readonly vocabSize: number
  /** Default output length for chat requests without max_tokens (completions default to 16 as OpenAI's). */
  readonly defaultChatMaxTokens: number
  /**
   * Whether `kv_transfer_params` (vLLM's disaggregation contract) is taken: on workers, yes; the
   * router runs the contract itself and refuses it from clients.
   */
  readonly acceptKvTransferParams: boolean
}

export interface AdmittedPrompt {
  readonly tokenIds: readonly number[]
  /** What `echo` prepends: the prompt as the client wrote it, or its ids decoded. */
  readonly text: string
}

export interface AdmittedRequest {
  readonly kind: RequestKind
  readonly parsed: ParsedRequest
  /** The served name the client asked for (responses carry it). */
  readonly model: string
  readonly prompts: readonly AdmittedPrompt[]
  /** Prompt tokens over all prompts (usage counts each prompt once, whatever n). */
  readonly promptTokens: number
  /**
   * What each prompt's worker request samples with: n continuations (best_of when larger: the
   * router keeps the best n), max_tokens from the longest prompt's room.
   */
  readonly sampling: readonly SamplingParams[]
  /** The P/D leg `kv_transfer_params` asks for (workers only; 'none' without it). */
  readonly kv: KvLeg
}

export function admit(kind: RequestKind, body: unknown, tokenizer: ServeTokenizer, limits: AdmissionLimits): AdmittedRequest {
  const parsed = kind === 'completion' ? parseCompletionBody(body) : parseChatBody(body)
  if (!limits.modelNames.includes(parsed.model)) {
    throw new InvalidRequest(`The model \`${shorten(parsed.model)}\` does not exist; this server serves ${limits.modelNames.map((n) => `\`${n}\``).join(', ')}`, 'model', 'model_not_found', 404)
  }
  checkVocabulary(parsed, limits.vocabSize)
  const prompts = parsed.prompts.map((p, i) => admitPrompt(parsed, p, i, tokenizer, limits))
  const sampling = prompts.map((p) => samplingOf(parsed, p.tokenIds.length, limits))
  const kv = kvLegOf(parsed, prompts, limits)
  return {kind, parsed, model: parsed.model, prompts, promptTokens: prompts.reduce((a, p) => a + p.tokenIds.length, 0), sampling, kv}
}

/** The contract's leg, checked against the request: one prompt, and the transferred length of it. */
function kvLegOf(p: ParsedRequest, prompts: readonly AdmittedPrompt[], limits: AdmissionLimits): KvLeg {
  if (p.kvTransferParams === undefined || p.kvTransferParams === null) return {leg: 'none'}
  if (!limits.acceptKvTransferParams) {
    throw new InvalidRequest("'kv_transfer_params' is part of the disaggregation contract between a proxy and hpd workers; the hpd router runs that contract itself, so send requests without it (or send it to a worker)", 'kv_transfer_params', 'unsupported_parameter')
  }
  let leg: KvLeg
  try {
    leg = parseKvTransferParams(p.kvTransferParams)
  } catch (error) {
    if (error instanceof KvParamsError) throw new InvalidRequest(error.message, error.param, 'invalid_value')
    throw error
  }
  if (leg.leg !== 'none' && prompts.length > 1) throw new InvalidRequest("'kv_transfer_params' goes with one prompt; send batched prompts as separate requests", 'prompt', 'unsupported_value')
  if (leg.leg === 'decode' && leg.transfer.numComputedTokens !== prompts[0].tokenIds.length - 1) {
    throw new InvalidRequest(
      `'kv_transfer_params.remote_num_tokens' is ${leg.transfer.numComputedTokens}, but this prompt's cache holds ${prompts[0].tokenIds.length - 1} tokens (its length minus the last, recomputed here): the decode leg must carry the prefill leg's prompt`,
      'kv_transfer_params.remote_num_tokens',
      'invalid_value',
    )
  }
  return leg
}

function checkVocabulary(p: ParsedRequest, vocabSize: number): void {
  const badStop = p.stopTokenIds.findIndex((t) => t >= vocabSize)
  if (badStop >= 0) throw new InvalidRequest(`'stop_token_ids[${badStop}]' is ${p.stopTokenIds[badStop]}, outside the vocabulary (size ${vocabSize})`, `stop_token_ids[${badStop}]`, 'invalid_value')
  const badBias = Object.keys(p.logitBias ?? {}).find((t) => Number(t) >= vocabSize)
  if (badBias !== undefined) throw new InvalidRequest(`'logit_bias' names token id ${badBias}, outside the vocabulary (size ${vocabSize})`, 'logit_bias', 'invalid_value')
}

function admitPrompt(p: ParsedRequest, prompt: PromptInput, index: number, tokenizer: ServeTokenizer, limits: AdmissionLimits): AdmittedPrompt {
  const param = p.kind === 'chat' ? 'messages' : p.prompts.length > 1 ? `prompt[${index}]` : 'prompt'
  let ids: number[]
  let text: string
  if ('tokenIds' in prompt) {
    ids = [...prompt.tokenIds]
    const bad = ids.find((t) => t >= limits.vocabSize)
    if (bad !== undefined) throw new InvalidRequest(`'${param}' contains token id ${bad}, outside the vocabulary (size ${limits.vocabSize})`, param, 'invalid_value')
    text = p.echo ? tokenizer.decode(ids) : ''
  } else if ('text' in prompt) {
    ids = tokenizer.encode(prompt.text)
    text = prompt.text
  } else {
    ids = tokenizer.encodeChat(prompt.messages)
    text = ''
  }
  if (ids.length === 0) throw new InvalidRequest(`'${param}' tokenizes to zero tokens`, param, 'invalid_value')
  if (ids.length >= limits.maxModelLen) {
    throw new InvalidRequest(
      `This model's maximum context length is ${limits.maxModelLen} tokens. However, your prompt has ${ids.length} tokens, which leaves no room for output. Shorten the prompt.`,
      param,
      'context_length_exceeded',
    )
  }
  return {tokenIds: ids, text}
}

function samplingOf(p: ParsedRequest, promptTokens: number, limits: AdmissionLimits): SamplingParams {
  const room = limits.maxModelLen - promptTokens
  const maxTokens = p.maxTokens ?? Math.min(room, p.kind === 'chat' ? limits.defaultChatMaxTokens : 16)
  if (maxTokens > room) {
    throw new InvalidRequest(
      `This model's maximum context length is ${limits.maxModelLen} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the prompt, ${maxTokens} in the completion). Reduce the prompt or ${p.maxTokensParam}.`,
      p.maxTokensParam,
      'context_length_exceeded',
    )
  }
  if (p.minTokens > maxTokens) throw new InvalidRequest(`'min_tokens' (${p.minTokens}) must be at most the output length ${maxTokens}`, 'min_tokens', 'invalid_value')
  // A top_k at or past the vocabulary cuts nothing: pass "no cut" rather than a huge count.
  const topK = p.topK >= limits.vocabSize ? 0 : p.topK
  // best_of > n ranks candidates by cumulative logprob: the workers must return the sampled tokens' logprobs.
  const logprobs = p.logprobs ?? (p.bestOf > p.n ? 0 : undefined)
  return {
    temperature: p.temperature,
    topP: p.topP,
    topK,
    seed: p.seed,
    maxTokens,
    ignoreEos: p.ignoreEos,
    // Neutral values are left out: the worker protocol reads absent as off.
    ...(p.minP > 0 ? {minP: p.minP} : {}),
    ...(p.presencePenalty !== 0 ? {presencePenalty: p.presencePenalty} : {}),
    ...(p.frequencyPenalty !== 0 ? {frequencyPenalty: p.frequencyPenalty} : {}),
    ...(p.repetitionPenalty !== 1 ? {repetitionPenalty: p.repetitionPenalty} : {}),
    ...(p.logitBias ? {logitBias: p.logitBias} : {}),
    ...(p.minTokens > 0 ? {minTokens: p.minTokens} : {}),
    ...(p.stopTokenIds.length > 0 ? {stopTokenIds: p.stopTokenIds} : {}),
    ...(logprobs !== undefined ? {logprobs: Math.min(logprobs, limits.vocabSize)} : {}),
    ...(p.bestOf > 1 ? {n: p.bestOf} : {}),
  }
}

function shorten(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s
}

/** What each prompt of the request can hold in a KV pool: its tokens, its output bound, its continuations. */
export function demandsOf(request: AdmittedRequest): PromptDemand[] {
  return request.prompts.map((p, i) => ({promptTokens: p.tokenIds.length, maxTokens: request.sampling[i].maxTokens, n: request.sampling[i].n ?? 1}))
}

/**
 * A request no KV pool could ever hold, refused before anything runs (400, naming the field to
 * lower): waiting would never end, and running it would fail midway.
 */
export function capacityRefusal(request: AdmittedRequest, s: CapacityShortfall): InvalidRequest {
  const p = request.parsed
  const pool = s.reason === 'batch' ? `the workers' KV caches hold ${s.capacityBlocks} blocks together` : `${s.side === 'prefill' ? 'a prefill worker' : 'a worker'}'s KV cache holds ${s.capacityBlocks} blocks`
  const i = s.prompt ?? 0
  const promptParam = p.kind === 'chat' ? 'messages' : request.prompts.length > 1 ? `prompt[${i}]` : 'prompt'
  const tokens = request.prompts[i]?.tokenIds.length ?? 0
  const maxTokens = request.sampling[i]?.maxTokens ?? 0
  const code = 'kv_capacity_exceeded'
  switch (s.reason) {
    case 'prompt':
      return new InvalidRequest(`'${promptParam}' (${tokens} tokens) needs ${s.needBlocks} KV blocks, but ${pool}: shorten the prompt`, promptParam, code)
    case 'max_tokens':
      return new InvalidRequest(`the prompt (${tokens} tokens) with '${p.maxTokensParam}' ${maxTokens} needs ${s.needBlocks} KV blocks at full length, but ${pool}: lower '${p.maxTokensParam}'`, p.maxTokensParam, code)
    case 'n': {
      const param = p.bestOf > p.n ? 'best_of' : 'n'
      return new InvalidRequest(`'${param}' ${p.bestOf} continuations of ${tokens} + ${maxTokens} tokens need ${s.needBlocks} KV blocks at full length (each continuation holds its own), but ${pool}: at most ${s.fittingN ?? 0} fit; lower '${param}' or '${p.maxTokensParam}'`, param, code)
    }
    case 'batch':
      return new InvalidRequest(`the ${request.prompts.length} prompts × ${p.bestOf} continuations need ${s.needBlocks} KV blocks together at full length, but ${pool}: send fewer prompts per request (or lower 'n' / '${p.maxTokensParam}')`, 'prompt', code)
  }
}
