import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

import {FIELD_RULES, parameterTableMarkdown, ruleFor, type Endpoint, type FieldStatus} from './params.js'

/**
 * Every body field of both endpoints and the status hpd gives it, written out here by hand: a
 * field added to (or dropped from) params.ts without deciding its status here fails this test,
 * and test/e2e/serve-conformance.test.ts fails for a field without a conformance case.
 */
const STATUS: Record<Endpoint, Record<string, FieldStatus>> = {
  completions: {
    model: 'honoured',
    prompt: 'honoured',
    max_tokens: 'honoured',
    temperature: 'honoured',
    top_p: 'honoured',
    top_k: 'honoured',
    min_p: 'honoured',
    seed: 'honoured',
    presence_penalty: 'honoured',
    frequency_penalty: 'honoured',
    repetition_penalty: 'honoured',
    logit_bias: 'honoured',
    min_tokens: 'honoured',
    stop: 'honoured',
    stop_token_ids: 'honoured',
    include_stop_str_in_output: 'honoured',
    ignore_eos: 'honoured',
    n: 'honoured',
    best_of: 'honoured',
    logprobs: 'honoured',
    echo: 'honoured',
    stream: 'honoured',
    stream_options: 'honoured',
    return_token_ids: 'honoured',
    kv_transfer_params: 'honoured',
    suffix: 'neutral-only',
    user: 'ignored',
  },
  chat: {
    model: 'honoured',
    messages: 'honoured',
    max_tokens: 'honoured',
    max_completion_tokens: 'honoured',
    temperature: 'honoured',
    top_p: 'honoured',
    top_k: 'honoured',
    min_p: 'honoured',
    seed: 'honoured',
    presence_penalty: 'honoured',
    frequency_penalty: 'honoured',
    repetition_penalty: 'honoured',
    logit_bias: 'honoured',
    min_tokens: 'honoured',
    stop: 'honoured',
    stop_token_ids: 'honoured',
    include_stop_str_in_output: 'honoured',
    ignore_eos: 'honoured',
    n: 'honoured',
    logprobs: 'honoured',
    top_logprobs: 'honoured',
    stream: 'honoured',
    stream_options: 'honoured',
    return_token_ids: 'honoured',
    kv_transfer_params: 'honoured',
    tools: 'neutral-only',
    tool_choice: 'neutral-only',
    functions: 'neutral-only',
    function_call: 'neutral-only',
    parallel_tool_calls: 'ignored',
    response_format: 'neutral-only',
    user: 'ignored',
    metadata: 'ignored',
    store: 'neutral-only',
  },
}

const README = join(fileURLToPath(new URL('../../..', import.meta.url)), 'README.md')
const BEGIN = '<!-- parameter-table:begin (generated from src/serve/openai/params.ts; HPD_UPDATE_README=1 npx vitest run src/serve/openai/params.test.ts) -->'
const END = '<!-- parameter-table:end -->'

describe('the parameter table', () => {
  it.each(['completions', 'chat'] as const)('lists every %s field with the status decided here, and nothing else', (endpoint) => {
    const table = Object.fromEntries(FIELD_RULES.filter((r) => r.endpoints.includes(endpoint)).map((r) => [r.name, r.status]))
    expect(table).toEqual(STATUS[endpoint])
  })

  it('has one rule per field and endpoint, and every field not honoured says what hpd offers instead', () => {
    for (const endpoint of ['completions', 'chat'] as const) {
      const names = FIELD_RULES.filter((r) => r.endpoints.includes(endpoint)).map((r) => r.name)
      expect(new Set(names).size).toBe(names.length)
    }
    for (const r of FIELD_RULES.filter((x) => x.status === 'neutral-only')) expect(r.instead, r.name).toBeTruthy()
    expect(ruleFor('completions', 'constructor')).toBeUndefined()
    expect(ruleFor('chat', 'suffix')).toBeUndefined()
  })

  it("README's parameter table is the one generated from params.ts", () => {
    const text = readFileSync(README, 'utf8')
    const begin = text.indexOf(BEGIN)
    const end = text.indexOf(END)
    expect(begin, `README.md must hold the markers ${BEGIN} … ${END}`).toBeGreaterThan(0)
    const current = text.slice(begin + BEGIN.length, end).trim()
    const generated = parameterTableMarkdown()
    if (process.env.HPD_UPDATE_README === '1' && current !== generated) {
      writeFileSync(README, `${text.slice(0, begin + BEGIN.length)}\n${generated}\n${text.slice(end)}`)
      return
    }
    expect(current).toBe(generated)
  })
})
