import {describe, expect, it} from 'vitest'

import {mergeShapes, shapeOf} from './json-shape.js'

describe('json shape', () => {
  it('describes objects, arrays and leaves; keys sorted, required = present', () => {
    expect(shapeOf({b: 1, a: 'x', c: null, d: [true]})).toEqual({
      type: 'object',
      properties: {a: {type: 'string'}, b: {type: 'number'}, c: {type: 'null'}, d: {type: 'array', items: {type: 'boolean'}}},
      required: ['a', 'b', 'c', 'd'],
    })
    expect(shapeOf([])).toEqual({type: 'array', items: {}})
  })

  it('merges array items: optional keys leave required, differing leaves become anyOf', () => {
    const s = shapeOf([{id: 1, hint: 'h'}, {id: 2}, {id: 'x'}])
    expect(s).toEqual({
      type: 'array',
      items: {type: 'object', properties: {hint: {type: 'string'}, id: {anyOf: [{type: 'number'}, {type: 'string'}]}}, required: ['id']},
    })
    expect(mergeShapes({type: 'number'}, {type: 'number'})).toEqual({type: 'number'})
  })
})
