import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {thrown} from '../testing/thrown.js'
import {LINK_FORMAT, type LinkInfo, parseLinkInfo} from './handshake.js'
import {freedMessage, parseLinkMessage, readDoneMessage} from './messages.js'

const good: LinkInfo = {format: LINK_FORMAT, agents: ['AAAA', 'BBBB'], ranks: [{agent: 0, regionIds: [1, 2]}, {agent: 1, regionIds: [3, 4]}], numLogicalBlocks: 64}
const expect2x2 = {tp: 2, numTensors: 2}

describe('the KV-link handshake payload', () => {
  it('accepts what an owner sends and copies it', () => {
    const parsed = parseLinkInfo(JSON.parse(JSON.stringify(good)), expect2x2)
    expect(parsed).toEqual(good)
  })

  it.each([
    ['payload', null],
    ['format', {...good, format: 2}],
    ['agents', {...good, agents: []}],
    ['agents[1]', {...good, agents: ['AAAA', 'not base64!']}],
    ['ranks', {...good, ranks: [good.ranks[0]]}],
    ['ranks[1].agent', {...good, ranks: [good.ranks[0], {agent: 2, regionIds: [3, 4]}]}],
    ['ranks[0].regionIds', {...good, ranks: [{agent: 0, regionIds: [1]}, good.ranks[1]]}],
    ['ranks[0].regionIds', {...good, ranks: [{agent: 0, regionIds: [1, -2]}, good.ranks[1]]}],
    ['numLogicalBlocks', {...good, numLogicalBlocks: 0}],
  ])('refuses a bad %s with HPD_KVLINK_BAD_HANDSHAKE naming it', (field, payload) => {
    const e = thrown(() => parseLinkInfo(payload, expect2x2))
    expect(e.code).toBe('HPD_KVLINK_BAD_HANDSHAKE')
    expect(e.details).toMatchObject({field})
    expect(e.exitCode).toBe(5)
  })

  it('property: any JSON value either parses to a payload of the expected shape or is refused with the typed error', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          const p = parseLinkInfo(v, expect2x2)
          expect(p.ranks).toHaveLength(2)
        } catch (error) {
          expect((error as {code?: string}).code).toBe('HPD_KVLINK_BAD_HANDSHAKE')
        }
      }),
      {numRuns: 300},
    )
  })
})

describe('the KV-link messages', () => {
  it('round-trips read-done and freed, request ids with colons included', () => {
    expect(parseLinkMessage(readDoneMessage('cmpl-a:b:c', 3))).toEqual({kind: 'read-done', requestId: 'cmpl-a:b:c', expected: 3})
    expect(parseLinkMessage(freedMessage('c0r1'))).toEqual({kind: 'freed', requestId: 'c0r1'})
    expect(parseLinkMessage('something else')).toBeUndefined()
  })

  it('refuses a malformed read-done (HPD_KVLINK_PROTOCOL) and ids it would not send', () => {
    for (const text of ['hpd-read-done:x:id', 'hpd-read-done:0:id', 'hpd-read-done:2:', 'hpd-read-done:id']) expect(thrown(() => parseLinkMessage(text)).code).toBe('HPD_KVLINK_PROTOCOL')
    expect(thrown(() => readDoneMessage('x'.repeat(257), 1)).code).toBe('HPD_KVLINK_PROTOCOL')
  })
})
