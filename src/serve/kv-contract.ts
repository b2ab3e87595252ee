/**
 * vLLM's disaggregation contract: `kv_transfer_params` on the OpenAI endpoints, as vLLM's proxy,
 * llm-d's routing sidecar and Dynamo send and read it (reference vllm-hybrid-pd.md §5.2).
 *
 *   prefill leg, request:  {"do_remote_decode": true, "do_remote_prefill": false, "remote_*": null}
 *   prefill leg, answer:   {"do_remote_prefill": true, "do_remote_decode": false, "remote_block_ids":
 *                           [[…] per KV-cache group], "remote_engine_id", "remote_request_id",
 *                           "remote_host", "remote_port", "tp_size", "remote_num_tokens", "hpd_*"}
 *   decode leg, request:   the prefill answer's object, copied as is.
 *
 * The `hpd_*` fields (engine epoch, compatibility hash, lease expiry, served-read grant) ride
 * along: hpd talks to hpd only (it does not pretend to be a NIXL agent), and proxies copy the
 * object whole. This module parses both legs strictly (unknown fields and wrong types are 400s
 * naming the field) and maps them to and from hpd's TransferParams.
 */
import {z} from 'zod'

import type {TransferParams} from './protocol.js'

/** What a request's kv_transfer_params ask of this worker. */
export type KvLeg =
  | {readonly leg: 'none'}
  /** Prefill only, hold the blocks for a remote decode, answer with the params. */
  | {readonly leg: 'prefill'}
  /** Pull from the named prefill engine, then decode. */
  | {readonly leg: 'decode'; readonly transfer: TransferParams}
  /** A decode leg missing what a pull needs: computed locally (vLLM's behaviour), logged and counted. */
  | {readonly leg: 'incomplete'; readonly missing: readonly string[]}

export class KvParamsError extends Error {
  constructor(
    message: string,
    readonly param: string,
  ) {
    super(message)
  }
}

const id = z.string().regex(/^[A-Za-z0-9._:-]{1,256}$/, 'an id of 1..256 characters from A-Z a-z 0-9 . _ : -')
const host = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]{1,253})$/, 'a host name or IP address')

const FIELDS = {
  do_remote_decode: z.boolean().nullable(),
  do_remote_prefill: z.boolean().nullable(),
  remote_engine_id: id.nullable(),
  remote_request_id: id.nullable(),
  remote_block_ids: z.array(z.array(z.number().int().min(0).max(2 ** 31 - 1)).max(1_000_000)).max(256).nullable(),
  remote_host: host.nullable(),
  remote_port: z.number().int().min(1).max(65_535).nullable(),
  tp_size: z.number().int().min(1).max(1024).nullable(),
  remote_num_tokens: z.number().int().min(0).nullable(),
  hpd_engine_epoch: id.nullable(),
  hpd_compatibility_hash: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'a hash of 1..128 plain characters').nullable(),
  hpd_lease_expires_at_ms: z.number().finite().nullable(),
  hpd_grant: z.string().regex(/^[0-9a-f]{1,64}$/).nullable(),
  /** Prompt tokens the prefill side found in its prefix cache (vLLM's `cached_tokens`; llm-d's sidecar copies it). */
  cached_tokens: z.number().int().min(0).nullable(),
} as const

type Field = keyof typeof FIELDS
type Params = {[K in Field]?: z.infer<(typeof FIELDS)[K]>}

/** What a decode leg needs, beyond do_remote_prefill. */
const DECODE_NEEDS: readonly Field[] = ['remote_engine_id', 'remote_request_id', 'remote_block_ids', 'remote_host', 'remote_port', 'tp_size', 'remote_num_tokens', 'hpd_engine_epoch', 'hpd_compatibility_hash', 'hpd_lease_expires_at_ms', 'hpd_grant']

/** Parses the `kv_transfer_params` of a request body (undefined or null: no P/D leg). */
export function parseKvTransferParams(value: unknown): KvLeg {
  if (value === undefined || value === null) return {leg: 'none'}
  if (typeof value !== 'object' || Array.isArray(value)) throw new KvParamsError("'kv_transfer_params' must be an object or null", 'kv_transfer_params')
  const p: Params = {}
  for (const [key, v] of Object.entries(value)) {
    if (!Object.hasOwn(FIELDS, key)) throw new KvParamsError(`'kv_transfer_params.${key.slice(0, 64)}' is not a field of the disaggregation contract`, `kv_transfer_params.${key.slice(0, 64)}`)
    const r = FIELDS[key as Field].safeParse(v)
    if (!r.success) throw new KvParamsError(`'kv_transfer_params.${key}' is invalid: ${r.error.issues[0]?.message ?? 'wrong type'}`, `kv_transfer_params.${key}`)
    ;(p as Record<string, unknown>)[key] = r.data
  }
  if (p.do_remote_decode === true && p.do_remote_prefill === true) {
    throw new KvParamsError("'kv_transfer_params' cannot ask for both do_remote_decode and do_remote_prefill", 'kv_transfer_params.do_remote_prefill')
  }
  if (p.do_remote_decode === true) return {leg: 'prefill'}
  if (p.do_remote_prefill !== true) return {leg: 'none'}
  const missing = DECODE_NEEDS.filter((k) => p[k] === undefined || p[k] === null)
  if (missing.length > 0) return {leg: 'incomplete', missing}
  const hostText = p.remote_host!
  return {
    leg: 'decode',
    transfer: {
      engineId: p.remote_engine_id!,
      engineEpoch: p.hpd_engine_epoch!,
      handshakeUrl: `http://${hostText}:${p.remote_port}`,
      requestId: p.remote_request_id!,
      blockIds: p.remote_block_ids!,
      tpSize: p.tp_size!,
      compatibilityHash: p.hpd_compatibility_hash!,
      numComputedTokens: p.remote_num_tokens!,
      leaseExpiresAtMs: p.hpd_lease_expires_at_ms!,
      ...(p.hpd_grant ? {grant: p.hpd_grant} : {}),
      ...(p.cached_tokens ? {cachedTokens: p.cached_tokens} : {}),
    },
  }
}

/** The prefill leg's answer: what the decode leg must be sent (`controlUrl`: http://host:port of this worker). */
export function kvParamsOf(t: TransferParams): Record<Field, unknown> {
  const u = new URL(t.handshakeUrl)
  return {
    do_remote_prefill: true,
    do_remote_decode: false,
    remote_engine_id: t.engineId,
    remote_request_id: t.requestId,
    remote_block_ids: t.blockIds,
    remote_host: u.hostname,
    remote_port: Number(u.port),
    tp_size: t.tpSize,
    remote_num_tokens: t.numComputedTokens,
    hpd_engine_epoch: t.engineEpoch,
    hpd_compatibility_hash: t.compatibilityHash,
    hpd_lease_expires_at_ms: t.leaseExpiresAtMs,
    hpd_grant: t.grant ?? null,
    cached_tokens: t.cachedTokens ?? 0,
  }
}

/** The prefill leg's request params, as vLLM's proxy sends them. */
export const PREFILL_LEG_PARAMS = {
  do_remote_decode: true,
  do_remote_prefill: false,
  remote_engine_id: null,
  remote_block_ids: null,
  remote_host: null,
  remote_port: null,
} as const
