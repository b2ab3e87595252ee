import {describe, expect, it} from 'vitest'

import {LeaseTable} from './lease-table.js'

function table(durationMs = 1000, maxHoldMs?: number) {
  let now = 0
  const ended: [string, string][] = []
  const t = new LeaseTable({durationMs, maxHoldMs, onEnd: (id, why) => ended.push([id, why]), nowMs: () => now})
  return {t, ended, advance: (ms: number) => (now += ms)}
}

describe('LeaseTable', () => {
  it('expires a lease nobody extends, once', () => {
    const {t, ended, advance} = table()
    expect(t.hold('a')).toBe(1000)
    advance(999)
    expect(t.sweep()).toEqual([])
    advance(1)
    expect(t.sweep()).toEqual(['a'])
    expect(t.sweep()).toEqual([])
    expect(ended).toEqual([['a', 'expired']])
    expect(t.held).toBe(0)
    expect(t.expired).toBe(1)
  })

  it('keeps a lease the decode side extends, and frees it on release', () => {
    const {t, ended, advance} = table()
    t.hold('a')
    advance(800)
    expect(t.extend('a')).toBe(1800)
    advance(800)
    expect(t.sweep()).toEqual([])
    expect(t.release('a')).toBe(true)
    expect(t.release('a')).toBe(false)
    expect(t.extend('a')).toBeUndefined()
    expect(ended).toEqual([['a', 'released']])
  })

  it('never extends a lease past its maximum hold, however often it beats', () => {
    const {t, ended, advance} = table(1000, 3000)
    t.hold('a')
    for (let i = 0; i < 10; i++) {
      advance(500)
      t.extend('a')
      t.sweep()
    }
    expect(ended).toEqual([['a', 'expired']])
    expect(t.extend('a')).toBeUndefined()
  })
})
