/**
 * `--model` for serving: a tiny preset (generated on first use by the engine) or a model
 * directory; yields what the router needs (served name, tokenizer, context length, vocabulary)
 * and the directory the workers load.
 */
import {readFileSync} from 'node:fs'
import {basename, join, resolve} from 'node:path'

import {ensureTinyModel} from '../engine/tiny-models.js'
import {loadTokenizer, type TextTokenizer} from '../engine/tokenizer.js'
import {ModelConfigError, UsageError} from '../errors.js'
import {planLayout} from '../layout/index.js'
import {findPreset, loadModelSpec} from '../model/index.js'
import {ENGINE_LAYOUT_OPTIONS} from './worker/layout-options.js'
import type {ServeModel, ServeTokenizer} from './backend.js'

export type {ServeModel} from './backend.js'


export function resolveServeModel(model: string): ServeModel {
  const preset = findPreset(model)
  let dir: string
  let name: string
  if (preset) {
    const generated = ensureTinyModel(model)
    if (!generated) {
      throw new UsageError('HPD_SERVE_NO_WEIGHTS', `preset ${preset.name} has a layout but no weights hpd can serve`, {
        hint: 'Serve a tiny preset (tiny-hybrid, tiny-hybrid-g1, tiny-llama) or pass a model directory with config.json and *.safetensors.',
        details: {flag: 'model', value: model},
      })
    }
    dir = generated
    name = preset.name
  } else {
    dir = resolve(model)
    name = basename(dir)
  }
  let config: Record<string, unknown>
  try {
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
  } catch (error) {
    throw new UsageError('HPD_MODEL_NOT_FOUND', `--model ${model}: cannot read ${join(dir, 'config.json')} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, {
      hint: 'Pass a tiny preset name or a model directory holding config.json, *.safetensors and tokenizer.json.',
      details: {flag: 'model', value: model},
    })
  }
  const maxModelLen = Number(config.max_position_embeddings)
  const vocabSize = Number(config.vocab_size)
  if (!Number.isInteger(maxModelLen) || maxModelLen < 2) {
    throw new ModelConfigError('HPD_MODEL_BAD_VALUE', `config.json max_position_embeddings must be an integer >= 2, got ${String(config.max_position_embeddings)}`, {details: {key: 'max_position_embeddings'}})
  }
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new ModelConfigError('HPD_MODEL_BAD_VALUE', `config.json vocab_size must be a positive integer, got ${String(config.vocab_size)}`, {details: {key: 'vocab_size'}})
  }
  return {name, dir, tokenizer: serveTokenizer(loadTokenizer(dir)), maxModelLen, vocabSize}
}

/**
 * The router's face of the model tokenizer. Models without a chat template (the tiny byte-level
 * ones) get a plain "role: content" transcript ending in "assistant: ".
 */
export function serveTokenizer(t: TextTokenizer): ServeTokenizer {
  return {
    encode: (text) => t.encode(text),
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
