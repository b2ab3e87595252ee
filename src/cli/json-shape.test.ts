import {describe, expect, it} from 'vitest'

import {mergeShapes, shapeOf, shapeOfSamples, shapeViolations} from './json-shape.js'

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

describe('schemas from several runs', () => {
  const preset = {model: {name: 'p', source: {kind: 'preset', preset: 'p', builtFrom: 'defaults'}}}
  const file = {model: {name: 'f', source: {kind: 'file', path: '/c.json'}}}

  it('a field only some runs carry is optional; a schema from one run rejects the others (the drift this prevents)', () => {
    expect(shapeViolations(file, shapeOf(preset))).toEqual(['$.model.source: missing required builtFrom', '$.model.source: missing required preset'])
    const merged = shapeOfSamples([preset, file])
    expect(merged).toMatchObject({properties: {model: {properties: {source: {required: ['kind']}}}}})
    expect(shapeViolations(preset, merged)).toEqual([])
    expect(shapeViolations(file, merged)).toEqual([])
  })

  it('open objects (keys that depend on another field) and optional fields the samples all carry', () => {
    const errors = [{error: {code: 'A', hint: 'h', details: {flag: 'tp', value: '3'}}}, {error: {code: 'B', hint: 'h', details: {key: 'n', tp: 3}}}]
    const shape = shapeOfSamples(errors, {open: {'error.details': 'keys depend on error.code'}, optional: ['error.hint']})
    expect(shape).toEqual({
      type: 'object',
      properties: {
        error: {
          type: 'object',
          properties: {code: {type: 'string'}, details: {type: 'object', description: 'keys depend on error.code'}, hint: {type: 'string'}},
          required: ['code', 'details'],
        },
      },
      required: ['error'],
    })
    expect(shapeViolations({error: {code: 'C', details: {anything: [1]}}}, shape)).toEqual([])
    expect(shapeViolations({error: {code: 'C', details: 'no'}}, shape)).toEqual(['$.error.details: expected object, got string'])
    expect(() => shapeOfSamples(errors, {optional: ['error.nothing']})).toThrow(/no property error\.nothing/u)
  })

  it('violations name the path: wrong leaf types, array items, anyOf', () => {
    const shape = shapeOf({n: 1, xs: [{a: 'x'}], v: null})
    expect(shapeViolations({n: '1', xs: [{a: 'x'}, {a: 2}], v: null}, shape)).toEqual(['$.n: expected number, got string', '$.xs[1].a: expected string, got number'])
    const either = mergeShapes({type: 'number'}, {type: 'null'})
    expect(shapeViolations(null, either)).toEqual([])
    expect(shapeViolations('x', either)).toEqual(['$: matches none of null | number'])
  })
})
