import {UsageError} from '../errors.js'
import {CONFIG_LIMITS} from '../model/index.js'

/**
 * hpd's N−1 rule, stated once. Of an N-token prompt the prefill side computes, and the KV link
 * moves, the cache of the first N−1 tokens; the decode side recomputes the last prompt token, whose
 * logits give the first output token. For a hybrid that is the only correct choice: an SSM state
 * cannot take the same token twice (vLLM #37310: "France is is Paris"). For attention-only models
 * vLLM moves all N and overwrites the last token's slot when it recomputes it; hpd moves one token
 * less, for every model, so one number travels from the prefill worker to the planner.
 *
 * Everything that asks "how many tokens go over the wire" calls this; the layout engine's planner
 * (`planRequestReads`) takes its result and never rederives it.
 */
export function transferredTokens(promptTokens: number): number {
  return Math.max(0, promptTokens - 1)
}

/** The shortest prompt that has anything to transfer (N−1 ≥ 1); shorter ones are prefilled where they decode. */
export const MIN_TRANSFER_PROMPT_TOKENS = 2

/** The longest prompt the planner accepts (its transferred tokens are at most this − 1). */
export const MAX_PROMPT_TOKENS = CONFIG_LIMITS.contextTokens

/**
 * A prompt length given on the command line (`--prompt-tokens`), checked before it becomes a
 * transferred-token count: an integer in [2, MAX_PROMPT_TOKENS].
 */
export function checkPromptTokens(promptTokens: number, flag = 'prompt-tokens'): void {
  if (!Number.isInteger(promptTokens) || promptTokens < MIN_TRANSFER_PROMPT_TOKENS || promptTokens > MAX_PROMPT_TOKENS) {
    throw new UsageError('HPD_USAGE_BAD_PROMPT_TOKENS', `--${flag} ${promptTokens}: need an integer in [${MIN_TRANSFER_PROMPT_TOKENS}, ${MAX_PROMPT_TOKENS}] (hpd transfers N−1 tokens)`, {
      hint: 'Pass the prompt length in tokens.',
      details: {value: promptTokens, max: MAX_PROMPT_TOKENS},
    })
  }
}
