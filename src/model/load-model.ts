import {readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'

import {ModelConfigError, UsageError} from '../errors.js'
import type {ModelSpec} from './model-spec.js'
import {parseModelConfig} from './parse-config.js'
import {findPreset, PRESETS} from './presets.js'

/**
 * `--model` → ModelSpec: a preset name, a config.json path, or a model directory holding
 * config.json. The only file I/O of src/model's config path.
 */
export function loadModelSpec(model: string): ModelSpec {
  const preset = findPreset(model)
  if (preset) {
    return parseModelConfig(preset.config, {name: preset.name, source: {kind: 'preset', preset: preset.name, builtFrom: preset.builtFrom}})
  }
  const path = configPath(model)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new UsageError('HPD_MODEL_UNREADABLE', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
      hint: 'Check the path and its permissions.',
      cause: error,
    })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new ModelConfigError('HPD_MODEL_BAD_JSON', `${path} is not valid JSON: ${(error as Error).message}`, {
      hint: 'Fix the JSON syntax of config.json.',
      cause: error,
    })
  }
  return parseModelConfig(raw, {name: nameFromConfig(raw, model), source: {kind: 'file', path}})
}

function configPath(model: string): string {
  let stats
  try {
    stats = statSync(model)
  } catch {
    throw new UsageError('HPD_MODEL_NOT_FOUND', `--model ${model} is neither a preset nor an existing path`, {
      hint: `Presets: ${PRESETS.map((p) => p.name).join(', ')}; or pass a config.json file or a model directory.`,
      details: {flag: 'model', value: model},
    })
  }
  return stats.isDirectory() ? join(model, 'config.json') : model
}

function nameFromConfig(raw: unknown, fallback: string): string {
  const named = (raw as {_name_or_path?: unknown})?._name_or_path
  return typeof named === 'string' && named !== '' ? named : fallback
}
