/**
 * `--model` for serving: resolved by the engine's one resolver (`resolveModelDir`: a tiny preset
 * generated on first use, or a model directory), so `serve` meets the same error codes as
 * `generate` and `inspect-layout`; yields what the router needs (served name, tokenizer, context
 * length, vocabulary) and the directory the workers load.
 */
import {loadTokenizer, type TextTokenizer} from '../engine/tokenizer.js'
import {resolveModelDir} from '../engine/load-model.js'
import {compatibilityHash, planEngineLayout, planLayout} from '../layout/index.js'
import {contextLength, loadModelSpec} from '../model/index.js'
import {ENGINE_LAYOUT_OPTIONS} from './worker/layout-options.js'
import type {ServeModel, ServeTokenizer} from './backend.js'

export type {ServeModel} from './backend.js'

export function resolveServeModel(model: string): ServeModel {
  const {name, dir, spec} = resolveModelDir(model)
  return {name, dir, tokenizer: serveTokenizer(loadTokenizer(dir)), maxModelLen: contextLength(spec), vocabSize: spec.vocabSize}
}

/**
 * The router's face of the model tokenizer. Models without a chat template (the tiny byte-level
 * ones) get a plain "role: content" transcript ending in "assistant: ".
 */
export function serveTokenizer(t: TextTokenizer): ServeTokenizer {
  return {
    encode: (text, options) => t.encode(text, options),
    decode: (ids) => t.decode(ids),
    encodeChat: (messages) =>
      t.encode(t.applyChatTemplate ? t.applyChatTemplate(messages) : `${messages.map((m) => `${m.role}: ${m.content}\n`).join('')}assistant: `),
    createDecoder: () => {
      // Decode the whole output each time and emit the new suffix, holding back while it ends in
      // U+FFFD (an incomplete UTF-8 sequence or a partial multi-token character).
      const ids: number[] = []
      let emitted = 0
      const step = (final: boolean) => {
        const text = t.decode(ids)
        if (!final && text.endsWith('\uFFFD')) return ''
        const delta = text.slice(emitted)
        emitted = text.length
        return delta
      }
      return {
        push: (id) => {
          ids.push(id)
          return step(false)
        },
        flush: () => step(true),
      }
    },
  }
}

/**
 * Fails fast, before any worker starts, when the model cannot be split over the TP sizes or the
 * two sides' caches cannot be paired (the layout engine's typed errors: exit 2 or 3).
 */
export function checkServeLayout(model: ServeModel, prefillTp: number, decodeTp: number): void {
  planLayout({model: loadModelSpec(model.dir), prefillTp, decodeTp, ...ENGINE_LAYOUT_OPTIONS})
}

/** The cache-compatibility hash of the served model (TP-independent): workers must match it. */
export function modelCompatibilityHash(model: ServeModel): string {
  const spec = loadModelSpec(model.dir)
  return compatibilityHash(spec, planEngineLayout({model: spec, tp: 1, ...ENGINE_LAYOUT_OPTIONS}))
}
