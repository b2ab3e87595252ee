/**
 * SamplingParams back into OpenAI request fields: what hpd's router sends a worker on the decode
 * leg (the worker admits it like any client's request and arrives at the same SamplingParams;
 * sampling-body.test.ts checks that round trip). Stop strings are not among them: the router
 * applies those to the text itself.
 */
import type {SamplingParams} from '../protocol.js'

export function bodyOfSampling(s: SamplingParams): Record<string, unknown> {
  return {
    max_tokens: s.maxTokens,
    temperature: s.temperature,
    top_p: s.topP,
    top_k: s.topK,
    ...(s.seed !== undefined ? {seed: s.seed} : {}),
    ignore_eos: s.ignoreEos,
    ...(s.minP !== undefined ? {min_p: s.minP} : {}),
    ...(s.presencePenalty !== undefined ? {presence_penalty: s.presencePenalty} : {}),
    ...(s.frequencyPenalty !== undefined ? {frequency_penalty: s.frequencyPenalty} : {}),
    ...(s.repetitionPenalty !== undefined ? {repetition_penalty: s.repetitionPenalty} : {}),
    ...(s.logitBias !== undefined ? {logit_bias: s.logitBias} : {}),
    ...(s.minTokens !== undefined ? {min_tokens: s.minTokens} : {}),
    ...(s.stopTokenIds !== undefined ? {stop_token_ids: s.stopTokenIds} : {}),
    ...(s.logprobs !== undefined ? {logprobs: s.logprobs} : {}),
    ...(s.n !== undefined ? {n: s.n} : {}),
  }
}
