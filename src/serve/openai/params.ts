/**
 * Every request field of POST /v1/completions and POST /v1/chat/completions that hpd knows, in one
 * table: its zod schema (type and range, checked as OpenAI and vLLM check them), which endpoints
 * take it, and whether hpd honours it, ignores it (harmless: `user`), or accepts only its neutral
 * value (a field hpd does not implement: `tools: []` is fine, a real tool list is refused by name
 * with what hpd offers instead). A field not in the table is refused by name too: nothing is
 * silently ignored.
 *
 * The README's parameter table is generated from this one (`parameterTableMarkdown`), and a test
 * keeps the two equal; params.test.ts lists every field with its status, so a field added here
 * without a decided status (and a conformance case) fails it.
 */
import {z} from 'zod'

export type Endpoint = 'completions' | 'chat'
export type FieldStatus = 'honoured' | 'ignored' | 'neutral-only'

export interface FieldRule {
  readonly name: string
  readonly endpoints: readonly Endpoint[]
  readonly status: FieldStatus
  /** Type and range, as the README shows them. */
  readonly accepts: string
  readonly schema: z.ZodType
  /** For neutral-only fields: what hpd offers instead (shown in the 400 message). */
  readonly instead?: string
}

/** Largest integer fields accept: JSON numbers past this lose precision in JavaScript. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER
/** top_k past the vocabulary is "no cut"; 2^31−1 keeps it a 32-bit integer for the native sampler. */
export const MAX_TOP_K = 2 ** 31 - 1
/** vLLM's default --max-logprobs. */
export const MAX_LOGPROBS = 20
/** OpenAI's limit on n (and on best_of); also the most choices one request may ask for (prompts × n). */
export const MAX_N = 128
/** Bounds that keep one body's work bounded (OpenAI and vLLM set none lower). */
export const MAX_STOP_TOKEN_IDS = 1024
export const MAX_LOGIT_BIAS_ENTRIES = 1024
/** OpenAI's limits. */
const MAX_STOP_SEQUENCES = 4
const MAX_STOP_CHARS = 1024

const int = (min: number, max: number) => z.number().int().min(min).max(max)
const nullable = <T extends z.ZodType>(t: T) => t.nullable()

const BOTH: readonly Endpoint[] = ['completions', 'chat']
const TOOLS_INSTEAD = 'tool calling is not supported: hpd has no constrained decoding for tool calls'

const stopSchema = z.union([z.string().max(MAX_STOP_CHARS), z.array(z.string().max(MAX_STOP_CHARS)).max(MAX_STOP_SEQUENCES)]).nullable()

/** Token ids are checked against the model's vocabulary after parsing (the router knows it). */
const tokenIds = z.array(int(0, MAX_SAFE))

/** Prompt shapes: a string, a list of strings, a token-id list, or a list of token-id lists (lists are batched prompts). */
const promptSchema = z.union([z.string(), z.array(z.string()).min(1).max(MAX_N), tokenIds.min(1), z.array(tokenIds.min(1)).min(1).max(MAX_N)])

const textPart = z.object({type: z.literal('text'), text: z.string()}).strict()
/**
 * Chat messages. `tool` / `function` roles and assistant `tool_calls` / `function_call` parse here
 * so that request.ts can refuse them as what they are (tools are not supported), not as a bad content.
 */
const message = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
    content: z.union([z.string(), z.array(textPart), z.null()]).optional(),
    name: z.string().max(256).optional(),
    tool_calls: z.unknown().optional(),
    tool_call_id: z.unknown().optional(),
    function_call: z.unknown().optional(),
  })
  .strict()

/** {"<token id>": bias}: ids checked against the vocabulary by the router; OpenAI's −100..100. */
const logitBiasSchema = z
  .record(z.string().regex(/^\d{1,10}$/, 'keys must be token ids (decimal integers)'), z.number().min(-100).max(100))
  .refine((r) => Object.keys(r).length <= MAX_LOGIT_BIAS_ENTRIES, `at most ${MAX_LOGIT_BIAS_ENTRIES} entries`)

export const FIELD_RULES: readonly FieldRule[] = [
  {name: 'model', endpoints: BOTH, status: 'honoured', accepts: 'string (required): a served model name', schema: z.string().max(1024)},
  {name: 'prompt', endpoints: ['completions'], status: 'honoured', accepts: `string, token-id list, or a list of either (batched: one prefill per prompt; at most ${MAX_N}) (required)`, schema: promptSchema},
  {
    name: 'messages',
    endpoints: ['chat'],
    status: 'honoured',
    accepts: 'non-empty list of {role: system|developer|user|assistant, content: string | text parts, name?} (required; tool messages and image/audio parts refused; `name` accepted and ignored: the chat template has no place for it)',
    schema: z.array(message).min(1),
  },
  {
    name: 'max_tokens',
    endpoints: BOTH,
    status: 'honoured',
    accepts: 'integer >= 1 or null; prompt + max_tokens <= context length; default 16 (completions, as OpenAI) or 256 (chat: not vLLM\'s rest-of-context, since requests reserve KV blocks for their full length)',
    schema: nullable(int(1, MAX_SAFE)),
  },
  {name: 'max_completion_tokens', endpoints: ['chat'], status: 'honoured', accepts: 'integer >= 1 or null (wins over max_tokens; the same default)', schema: nullable(int(1, MAX_SAFE))},
  {name: 'temperature', endpoints: BOTH, status: 'honoured', accepts: 'number 0..2 or null (0 = greedy)', schema: nullable(z.number().min(0).max(2))},
  {name: 'top_p', endpoints: BOTH, status: 'honoured', accepts: 'number in (0, 1] or null (any positive value, however small, cuts: 1e-300 keeps the top token)', schema: nullable(z.number().gt(0).max(1))},
  {name: 'top_k', endpoints: BOTH, status: 'honoured', accepts: `integer -1..${MAX_TOP_K} or null (-1 and 0: no cut)`, schema: nullable(int(-1, MAX_TOP_K))},
  {name: 'min_p', endpoints: BOTH, status: 'honoured', accepts: 'number 0..1 or null (drop tokens below min_p × the top probability)', schema: nullable(z.number().min(0).max(1))},
  {name: 'seed', endpoints: BOTH, status: 'honoured', accepts: 'integer (|seed| < 2^53; every bit counts) or null; choice j of n samples with seed + j', schema: nullable(int(-MAX_SAFE, MAX_SAFE))},
  {name: 'presence_penalty', endpoints: BOTH, status: 'honoured', accepts: 'number -2..2 or null', schema: nullable(z.number().min(-2).max(2))},
  {name: 'frequency_penalty', endpoints: BOTH, status: 'honoured', accepts: 'number -2..2 or null', schema: nullable(z.number().min(-2).max(2))},
  {name: 'repetition_penalty', endpoints: BOTH, status: 'honoured', accepts: 'number in (0, 2] or null (vLLM extension; 1 = off)', schema: nullable(z.number().gt(0).max(2))},
  {name: 'logit_bias', endpoints: BOTH, status: 'honoured', accepts: `{token id: number -100..100} (at most ${MAX_LOGIT_BIAS_ENTRIES} entries) or null`, schema: nullable(logitBiasSchema)},
  {name: 'min_tokens', endpoints: BOTH, status: 'honoured', accepts: 'integer >= 0, at most max_tokens, or null (vLLM extension: EOS and stop_token_ids cannot end the output earlier)', schema: nullable(int(0, MAX_SAFE))},
  {name: 'stop', endpoints: BOTH, status: 'honoured', accepts: `string or list of at most ${MAX_STOP_SEQUENCES} strings, or null`, schema: stopSchema},
  {name: 'stop_token_ids', endpoints: BOTH, status: 'honoured', accepts: `list of at most ${MAX_STOP_TOKEN_IDS} token ids or null (vLLM extension)`, schema: nullable(z.array(int(0, MAX_SAFE)).max(MAX_STOP_TOKEN_IDS))},
  {name: 'include_stop_str_in_output', endpoints: BOTH, status: 'honoured', accepts: 'boolean or null (vLLM extension)', schema: nullable(z.boolean())},
  {name: 'ignore_eos', endpoints: BOTH, status: 'honoured', accepts: 'boolean or null (vLLM extension)', schema: nullable(z.boolean())},
  {name: 'n', endpoints: BOTH, status: 'honoured', accepts: `integer 1..${MAX_N} or null (one prefill, the cache copied per choice; all choices must fit one worker's KV pool at full length)`, schema: nullable(int(1, MAX_N))},
  {name: 'best_of', endpoints: ['completions'], status: 'honoured', accepts: `integer n..${MAX_N} or null; > n only without stream (the n of highest cumulative logprob)`, schema: nullable(int(1, MAX_N))},
  {name: 'logprobs', endpoints: ['completions'], status: 'honoured', accepts: `integer 0..${MAX_LOGPROBS} or null (the sampled token's and that many top log-probabilities)`, schema: nullable(int(0, MAX_LOGPROBS))},
  {name: 'logprobs', endpoints: ['chat'], status: 'honoured', accepts: 'boolean or null', schema: nullable(z.boolean())},
  {name: 'top_logprobs', endpoints: ['chat'], status: 'honoured', accepts: `integer 0..${MAX_LOGPROBS} or null; only with logprobs: true`, schema: nullable(int(0, MAX_LOGPROBS))},
  {name: 'echo', endpoints: ['completions'], status: 'honoured', accepts: 'boolean or null (not with logprobs: prompt logprobs are not computed)', schema: nullable(z.boolean())},
  {name: 'stream', endpoints: BOTH, status: 'honoured', accepts: 'boolean or null', schema: nullable(z.boolean())},
  {name: 'stream_options', endpoints: BOTH, status: 'honoured', accepts: '{include_usage?: boolean} or null; only with stream: true (continuous_usage_stats is refused by name)', schema: nullable(z.object({include_usage: nullable(z.boolean()).optional()}).strict())},
  {
    name: 'kv_transfer_params',
    endpoints: BOTH,
    status: 'honoured',
    accepts: "object or null (vLLM's disaggregation contract: hpd workers take it, the hpd router refuses it; see 'Driving hpd workers')",
    schema: nullable(z.record(z.string(), z.unknown())),
  },
  {name: 'return_token_ids', endpoints: BOTH, status: 'honoured', accepts: 'boolean or null (vLLM extension: prompt and output token ids)', schema: nullable(z.boolean())},
  {name: 'suffix', endpoints: ['completions'], status: 'neutral-only', accepts: 'null', schema: z.null(), instead: 'no insertion (fill-in-the-middle) mode is supported'},
  {name: 'tools', endpoints: ['chat'], status: 'neutral-only', accepts: '[] or null', schema: nullable(z.array(z.never()).max(0)), instead: TOOLS_INSTEAD},
  {name: 'tool_choice', endpoints: ['chat'], status: 'neutral-only', accepts: '"none" or null', schema: nullable(z.literal('none')), instead: TOOLS_INSTEAD},
  {name: 'functions', endpoints: ['chat'], status: 'neutral-only', accepts: '[] or null', schema: nullable(z.array(z.never()).max(0)), instead: TOOLS_INSTEAD},
  {name: 'function_call', endpoints: ['chat'], status: 'neutral-only', accepts: '"none" or null', schema: nullable(z.literal('none')), instead: TOOLS_INSTEAD},
  {name: 'parallel_tool_calls', endpoints: ['chat'], status: 'ignored', accepts: 'boolean or null (no tools: nothing to parallelise)', schema: nullable(z.boolean())},
  {name: 'response_format', endpoints: ['chat'], status: 'neutral-only', accepts: '{type: "text"} or null', schema: nullable(z.object({type: z.literal('text')}).strict()), instead: 'structured output (json_object, json_schema) needs constrained decoding, which hpd does not have'},
  {name: 'user', endpoints: BOTH, status: 'ignored', accepts: 'string or null (an end-user id; logged nowhere)', schema: nullable(z.string().max(1024))},
  {name: 'metadata', endpoints: ['chat'], status: 'ignored', accepts: 'object of strings or null (nothing is stored)', schema: nullable(z.record(z.string().max(64), z.string().max(512)))},
  {name: 'store', endpoints: ['chat'], status: 'neutral-only', accepts: 'false or null', schema: nullable(z.literal(false)), instead: 'hpd stores no completions'},
]

/** The rule for `name` on `endpoint`, or undefined: an unknown field (prototype names included). */
export function ruleFor(endpoint: Endpoint, name: string): FieldRule | undefined {
  return FIELD_RULES.find((r) => r.name === name && r.endpoints.includes(endpoint))
}

/** The README's parameter table, generated from FIELD_RULES. */
export function parameterTableMarkdown(): string {
  const rows = FIELD_RULES.map((r) => {
    const where = r.endpoints.length === 2 ? 'both' : r.endpoints[0]
    const status = r.status === 'honoured' ? 'honoured' : r.status === 'ignored' ? 'accepted, ignored' : `refused unless ${r.accepts.replace(/ or null$/, '')} (${r.instead})`
    return `| \`${r.name}\` | ${where} | ${r.accepts.replaceAll('|', '\\|')} | ${status} |`
  })
  return ['| field | endpoint | accepts | hpd |', '| --- | --- | --- | --- |', ...rows].join('\n')
}
