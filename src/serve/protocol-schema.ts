/**
 * Validation of every control message a worker accepts (protocol.ts), as strict as the public
 * API's: ids with a bounded charset, token ids inside the vocabulary, lengths inside the context,
 * sampling inside its ranges, block ids inside sane bounds, no unknown fields. A worker refuses a
 * bad message with a 400 naming the field before it touches its engine.
 */
import {z} from 'zod'

import {MIN_TRANSFER_PROMPT_TOKENS, transferredTokens} from '../layout/index.js'
import {ServeError} from './backend.js'
import {MAX_LOGIT_BIAS_ENTRIES, MAX_LOGPROBS, MAX_N, MAX_STOP_TOKEN_IDS, MAX_TOP_K} from './openai/params.js'
import type {DigestsRequest, GenerateRequest, LeaseRequest, PrefillRequest, SamplingParams, TransferParams} from './protocol.js'

/** What the worker's model allows: messages are checked against it. */
export interface ProtocolLimits {
  readonly maxModelLen: number
  readonly vocabSize: number
}

/** Request and engine ids: what the router and X-Request-Id produce, nothing a log or URL could trip on. */
export const ID = z.string().regex(/^[A-Za-z0-9._:-]{1,256}$/, 'an id of 1..256 characters from A-Z a-z 0-9 . _ : -')

/** Generous: the largest pools hold a few hundred thousand blocks; the bound only keeps ints ints. */
const MAX_BLOCK_ID = 2 ** 31 - 1
const MAX_GROUPS = 256

function tokenIds(l: ProtocolLimits, min: number) {
  return z
    .array(z.number().int().min(0).max(l.vocabSize - 1, `token ids must be below the vocabulary size ${l.vocabSize}`))
    .min(min)
    .max(l.maxModelLen - 1, `a prompt leaves room for output only below the context length ${l.maxModelLen}`)
}

function sampling(l: ProtocolLimits) {
  return z
    .object({
      temperature: z.number().min(0).max(2),
      topP: z.number().gt(0).max(1),
      topK: z.number().int().min(0).max(MAX_TOP_K),
      seed: z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).optional(),
      maxTokens: z.number().int().min(1).max(l.maxModelLen),
      ignoreEos: z.boolean(),
      minP: z.number().min(0).max(1).optional(),
      presencePenalty: z.number().min(-2).max(2).optional(),
      frequencyPenalty: z.number().min(-2).max(2).optional(),
      repetitionPenalty: z.number().gt(0).max(2).optional(),
      logitBias: z
        .record(z.string().regex(/^\d{1,10}$/).refine((k) => Number(k) < l.vocabSize, `token ids must be below the vocabulary size ${l.vocabSize}`), z.number().min(-100).max(100))
        .refine((r) => Object.keys(r).length <= MAX_LOGIT_BIAS_ENTRIES, `at most ${MAX_LOGIT_BIAS_ENTRIES} entries`)
        .optional(),
      minTokens: z.number().int().min(0).max(l.maxModelLen).optional(),
      stopTokenIds: z.array(z.number().int().min(0).max(l.vocabSize - 1)).max(MAX_STOP_TOKEN_IDS).optional(),
      logprobs: z.number().int().min(0).max(MAX_LOGPROBS).optional(),
      n: z.number().int().min(1).max(MAX_N).optional(),
    })
    .strict()
    .refine((s) => (s.minTokens ?? 0) <= s.maxTokens, {path: ['minTokens'], message: 'must be at most maxTokens'})
}

const transfer = z
  .object({
    engineId: ID,
    engineEpoch: ID,
    handshakeUrl: z.string().max(512),
    requestId: ID,
    blockIds: z.array(z.array(z.number().int().min(0).max(MAX_BLOCK_ID)).max(1_000_000)).min(1).max(MAX_GROUPS),
    tpSize: z.number().int().min(1).max(1024),
    compatibilityHash: z.string().max(128),
    numComputedTokens: z.number().int().min(1),
    leaseExpiresAtMs: z.number().finite(),
    grant: z.string().regex(/^[0-9a-f]{1,64}$/).optional(),
  })
  .strict()

export function parseGenerateRequest(body: unknown, l: ProtocolLimits): GenerateRequest {
  const schema = z
    .object({requestId: ID, promptTokenIds: tokenIds(l, 1), sampling: sampling(l), transfer: transfer.optional()})
    .strict()
    .superRefine((r, ctx) => {
      if (r.promptTokenIds.length + r.sampling.maxTokens > l.maxModelLen) {
        ctx.addIssue({code: 'custom', path: ['sampling', 'maxTokens'], message: `prompt (${r.promptTokenIds.length}) + maxTokens (${r.sampling.maxTokens}) exceeds the context length ${l.maxModelLen}`})
      }
      if (r.transfer && r.transfer.numComputedTokens !== transferredTokens(r.promptTokenIds.length)) {
        ctx.addIssue({code: 'custom', path: ['transfer', 'numComputedTokens'], message: `must be the prompt's transferred tokens (${transferredTokens(r.promptTokenIds.length)}, N−1)`})
      }
    })
  return check(schema, body) as GenerateRequest
}

export function parsePrefillRequest(body: unknown, l: ProtocolLimits): PrefillRequest {
  return check(z.object({requestId: ID, promptTokenIds: tokenIds(l, MIN_TRANSFER_PROMPT_TOKENS)}).strict(), body)
}

export function parseLeaseRequest(body: unknown): LeaseRequest {
  return check(
    z
      .object({
        requestId: ID,
        grant: z.string().regex(/^[0-9a-f]{1,64}$/).optional(),
        blockIds: z.array(z.array(z.number().int().min(0).max(2 ** 31 - 1)).max(1_000_000)).max(256).optional(),
        promptDigest: z.string().regex(/^[0-9a-f]{32}$/).optional(),
        claim: z.string().regex(/^[0-9a-f]{32}$/).optional(),
        abandon: z.literal(true).optional(),
      })
      .strict(),
    body,
  )
}

export function parseDigestsRequest(body: unknown): DigestsRequest {
  return check(z.object({requestId: ID, decodeTp: z.number().int().min(1).max(1024), cachedTokens: z.number().int().min(0).max(2 ** 31 - 1).optional(), grant: z.string().regex(/^[0-9a-f]{1,64}$/).optional()}).strict(), body)
}

export interface PeerEntry {
  readonly engineId: string
  readonly controlUrl: string
}

export function parsePeers(body: unknown): {peers: PeerEntry[]} {
  return check(z.object({peers: z.array(z.object({engineId: ID, controlUrl: z.string().regex(/^http:\/\/[^/?#@\s]{1,255}$/)}).strict()).max(4096)}).strict(), body)
}

export type {SamplingParams, TransferParams}

function check<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  const field = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') || 'body'
  throw new ServeError(400, 'bad_request', `'${field}': ${issue.message}`)
}
