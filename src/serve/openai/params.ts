/**
 * Every request field of POST /v1/completions and POST /v1/chat/completions that hpd knows, in one
 * table: its zod schema (type and range, checked as OpenAI and vLLM check them), which endpoints
 * take it, and whether hpd honours it, ignores it (harmless: `user`), or accepts only its neutral
 * value (a field hpd does not implement yet: `presence_penalty: 0` is honoured, any other value is
 * refused by name). A field not in the table is refused by name too: nothing is silently ignored.
 *
 * The README's parameter table is generated from this one (`parameterTableMarkdown`), and a test
 * keeps the two equal.
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
/** OpenAI's limits. */
const MAX_STOP_SEQUENCES = 4
const MAX_STOP_CHARS = 1024

const int = (min: number, max: number) => z.number().int().min(min).max(max)
const nullable = <T extends z.ZodType>(t: T) => t.nullable()

const BOTH: readonly Endpoint[] = ['completions', 'chat']

const stopSchema = z.union([z.string().max(MAX_STOP_CHARS), z.array(z.string().max(MAX_STOP_CHARS)).max(MAX_STOP_SEQUENCES)]).nullable()

/** Token ids are checked against the model's vocabulary after parsing (the router knows it). */
const tokenIds = z.array(int(0, MAX_SAFE))

/**
 * Prompt shapes: a string, one token-id list, or those wrapped in a one-element list (batched
 * prompts are refused with their own message in request.ts).
 */
const promptSchema = z.union([z.string(), z.array(z.string()).min(1), tokenIds.min(1), z.array(tokenIds.min(1)).min(1)])

const textPart = z.object({type: z.literal('text'), text: z.string()}).strict()
const message = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(textPart)]),
    name: z.string().max(256).optional(),
  })
  .strict()

export const FIELD_RULES: readonly FieldRule[] = [
  {name: 'model', endpoints: BOTH, status: 'honoured', accepts: 'string (required)', schema: z.string().max(1024)},
  {name: 'prompt', endpoints: ['completions'], status: 'honoured', accepts: 'string, token-id list, or a one-element list of either (required)', schema: promptSchema},
  {name: 'messages', endpoints: ['chat'], status: 'honoured', accepts: 'non-empty list of {role: system|developer|user|assistant, content: string | text parts, name?} (required)', schema: z.array(message).min(1)},
  {name: 'max_tokens', endpoints: BOTH, status: 'honoured', accepts: 'integer >= 1 or null; prompt + max_tokens <= context length', schema: nullable(int(1, MAX_SAFE))},
  {name: 'max_completion_tokens', endpoints: ['chat'], status: 'honoured', accepts: 'integer >= 1 or null (wins over max_tokens)', schema: nullable(int(1, MAX_SAFE))},
  {name: 'temperature', endpoints: BOTH, status: 'honoured', accepts: 'number 0..2 or null (0 = greedy)', schema: nullable(z.number().min(0).max(2))},
  {name: 'top_p', endpoints: BOTH, status: 'honoured', accepts: 'number in (0, 1] or null', schema: nullable(z.number().gt(0).max(1))},
  {name: 'top_k', endpoints: BOTH, status: 'honoured', accepts: `integer -1..${MAX_TOP_K} or null (-1 and 0: no cut)`, schema: nullable(int(-1, MAX_TOP_K))},
  {name: 'seed', endpoints: BOTH, status: 'honoured', accepts: 'integer (|seed| < 2^53) or null', schema: nullable(int(-MAX_SAFE, MAX_SAFE))},
  {name: 'stream', endpoints: BOTH, status: 'honoured', accepts: 'boolean or null', schema: nullable(z.boolean())},
  {name: 'stream_options', endpoints: BOTH, status: 'honoured', accepts: '{include_usage?: boolean} or null; only with stream: true', schema: nullable(z.object({include_usage: nullable(z.boolean()).optional()}).strict())},
  {name: 'stop', endpoints: BOTH, status: 'honoured', accepts: `string or list of at most ${MAX_STOP_SEQUENCES} strings, or null`, schema: stopSchema},
  {name: 'ignore_eos', endpoints: BOTH, status: 'honoured', accepts: 'boolean or null (vLLM extension)', schema: nullable(z.boolean())},
  {name: 'return_token_ids', endpoints: BOTH, status: 'honoured', accepts: 'boolean or null (vLLM extension: prompt and output token ids)', schema: nullable(z.boolean())},
  {name: 'n', endpoints: BOTH, status: 'neutral-only', accepts: '1 or null', schema: nullable(z.literal(1)), instead: 'send one request per choice'},
  {name: 'best_of', endpoints: ['completions'], status: 'neutral-only', accepts: '1 or null', schema: nullable(z.literal(1)), instead: 'send one request per candidate'},
  {name: 'echo', endpoints: ['completions'], status: 'neutral-only', accepts: 'false or null', schema: nullable(z.literal(false)), instead: 'prepend the prompt yourself; return_token_ids gives the prompt ids'},
  {name: 'suffix', endpoints: ['completions'], status: 'neutral-only', accepts: 'null', schema: z.null(), instead: 'no insertion mode is supported'},
  {name: 'logprobs', endpoints: BOTH, status: 'neutral-only', accepts: 'null (completions), false or null (chat)', schema: z.union([z.null(), z.literal(false)]), instead: 'logprobs are not returned yet'},
  {name: 'top_logprobs', endpoints: ['chat'], status: 'neutral-only', accepts: 'null', schema: z.null(), instead: 'logprobs are not returned yet'},
  {name: 'presence_penalty', endpoints: BOTH, status: 'neutral-only', accepts: '0 or null', schema: nullable(z.literal(0)), instead: 'use temperature, top_p or top_k'},
  {name: 'frequency_penalty', endpoints: BOTH, status: 'neutral-only', accepts: '0 or null', schema: nullable(z.literal(0)), instead: 'use temperature, top_p or top_k'},
  {name: 'repetition_penalty', endpoints: BOTH, status: 'neutral-only', accepts: '1 or null', schema: nullable(z.literal(1)), instead: 'use temperature, top_p or top_k'},
  {name: 'logit_bias', endpoints: BOTH, status: 'neutral-only', accepts: '{} or null', schema: nullable(z.object({}).strict()), instead: 'no logit biasing is supported'},
  {name: 'min_p', endpoints: BOTH, status: 'neutral-only', accepts: '0 or null', schema: nullable(z.literal(0)), instead: 'use top_p or top_k'},
  {name: 'min_tokens', endpoints: BOTH, status: 'neutral-only', accepts: '0 or null', schema: nullable(z.literal(0)), instead: 'use ignore_eos with max_tokens'},
  {name: 'stop_token_ids', endpoints: BOTH, status: 'neutral-only', accepts: '[] or null', schema: nullable(z.array(z.never()).max(0)), instead: 'use stop strings'},
  {name: 'include_stop_str_in_output', endpoints: BOTH, status: 'neutral-only', accepts: 'false or null', schema: nullable(z.literal(false)), instead: 'append the stop string yourself'},
  {name: 'tools', endpoints: ['chat'], status: 'neutral-only', accepts: '[] or null', schema: nullable(z.array(z.never()).max(0)), instead: 'tool calling is not supported'},
  {name: 'tool_choice', endpoints: ['chat'], status: 'neutral-only', accepts: '"none" or null', schema: nullable(z.literal('none')), instead: 'tool calling is not supported'},
  {name: 'parallel_tool_calls', endpoints: ['chat'], status: 'ignored', accepts: 'boolean or null (no tools: nothing to parallelise)', schema: nullable(z.boolean())},
  {name: 'response_format', endpoints: ['chat'], status: 'neutral-only', accepts: '{type: "text"} or null', schema: nullable(z.object({type: z.literal('text')}).strict()), instead: 'structured output is not supported'},
  {name: 'user', endpoints: BOTH, status: 'ignored', accepts: 'string or null (an end-user id; logged nowhere)', schema: nullable(z.string().max(1024))},
  {name: 'metadata', endpoints: ['chat'], status: 'ignored', accepts: 'object of strings or null (nothing is stored)', schema: nullable(z.record(z.string().max(64), z.string().max(512)))},
  {name: 'store', endpoints: ['chat'], status: 'neutral-only', accepts: 'false or null', schema: nullable(z.literal(false)), instead: 'hpd stores no completions'},
]

const RULES: ReadonlyMap<string, FieldRule> = new Map(FIELD_RULES.map((r) => [r.name, r]))

/** The rule for `name` on `endpoint`, or undefined: an unknown field (prototype names included). */
export function ruleFor(endpoint: Endpoint, name: string): FieldRule | undefined {
  const rule = RULES.get(name)
  return rule && rule.endpoints.includes(endpoint) ? rule : undefined
}

/** The README's parameter table, generated from FIELD_RULES. */
export function parameterTableMarkdown(): string {
  const rows = FIELD_RULES.map((r) => {
    const where = r.endpoints.length === 2 ? 'both' : r.endpoints[0]
    const status = r.status === 'honoured' ? 'honoured' : r.status === 'ignored' ? 'accepted, ignored' : `only ${r.accepts.replace(/ or null$/, '')}; other values refused`
    return `| \`${r.name}\` | ${where} | ${r.accepts} | ${status} |`
  })
  return ['| field | endpoint | accepts | hpd |', '| --- | --- | --- | --- |', ...rows].join('\n')
}
