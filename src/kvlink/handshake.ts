import {badHandshake} from './errors.js'

/**
 * The handshake payload: what a reader needs to reach an owner engine's cache, served by the owner
 * (serve: GET /v1/internal/metadata, inside HandshakePayload.transport; bench: its control
 * channel). JSON, no secrets beyond the agents' metadata (which lets its holder read the regions:
 * it goes only to authenticated peers, see src/transport/README.md "Trust model").
 */
export interface LinkInfo {
  /** LINK_FORMAT of the sender; a different one is refused. */
  readonly format: number
  /** base64 of each transfer agent's metadata (serve: one per worker; bench --path case: one per rank). */
  readonly agents: readonly string[]
  /** [rank] → the agent holding that rank's shared tensors and their region ids [tensorIndex]. */
  readonly ranks: readonly LinkRank[]
  /** Logical blocks per shared tensor: offsets of kv-first tensors depend on it. */
  readonly numLogicalBlocks: number
}

export interface LinkRank {
  readonly agent: number
  readonly regionIds: readonly number[]
}

export const LINK_FORMAT = 1

/** Bounds on what a peer may send (generous: they only keep a hostile payload from costing memory). */
const MAX_AGENTS = 1024
const MAX_METADATA_CHARS = 4 << 20
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/u

const isIndex = (v: unknown, below: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < below

/**
 * Validates a peer's payload against what the reader's plan says the owner engine is (its TP size
 * and tensor count): every field, before any of it is used. Throws HPD_KVLINK_BAD_HANDSHAKE naming
 * the field.
 */
export function parseLinkInfo(raw: unknown, expect: {readonly tp: number; readonly numTensors: number}): LinkInfo {
  const o = raw as Partial<LinkInfo> | null
  if (typeof o !== 'object' || o === null) throw badHandshake('payload', 'an object')
  if (o.format !== LINK_FORMAT) throw badHandshake('format', `${LINK_FORMAT}`, {got: String(o.format).slice(0, 20)})
  if (!Array.isArray(o.agents) || o.agents.length < 1 || o.agents.length > MAX_AGENTS) throw badHandshake('agents', `1..${MAX_AGENTS} agent metadata strings`)
  o.agents.forEach((m, i) => {
    if (typeof m !== 'string' || m.length === 0 || m.length > MAX_METADATA_CHARS || !BASE64.test(m)) throw badHandshake(`agents[${i}]`, 'base64 agent metadata')
  })
  if (!Array.isArray(o.ranks) || o.ranks.length !== expect.tp) throw badHandshake('ranks', `${expect.tp} ranks (the engine's TP size)`, {got: Array.isArray(o.ranks) ? o.ranks.length : typeof o.ranks})
  o.ranks.forEach((r, rank) => {
    if (typeof r !== 'object' || r === null || !isIndex(r.agent, o.agents!.length)) throw badHandshake(`ranks[${rank}].agent`, `an agent index below ${o.agents!.length}`)
    if (!Array.isArray(r.regionIds) || r.regionIds.length !== expect.numTensors || !(r.regionIds as unknown[]).every((id) => isIndex(id, 2 ** 32))) {
      throw badHandshake(`ranks[${rank}].regionIds`, `${expect.numTensors} region ids (one per shared tensor)`)
    }
  })
  if (typeof o.numLogicalBlocks !== 'number' || !Number.isSafeInteger(o.numLogicalBlocks) || o.numLogicalBlocks < 1) throw badHandshake('numLogicalBlocks', 'a positive integer')
  return {format: LINK_FORMAT, agents: o.agents, ranks: o.ranks.map((r) => ({agent: r.agent, regionIds: [...r.regionIds]})), numLogicalBlocks: o.numLogicalBlocks}
}

export function metadataBytes(info: LinkInfo, agent: number): Uint8Array {
  return new Uint8Array(Buffer.from(info.agents[agent], 'base64'))
}
