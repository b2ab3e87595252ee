import {statSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {ModelConfigError, UsageError} from '../errors.js'
import {FILE_LIMITS, readModelJson} from './model-files.js'
import type {ModelSpec} from './model-spec.js'
import {parseModelConfig} from './parse-config.js'
import {findPreset, type ModelPreset, PRESETS} from './presets.js'

/**
 * Where `--model` points: a built-in preset, or a config.json on disk and the model directory
 * around it. The one classification every command shares (inspect-layout, bench transfer,
 * generate, serve and its workers), so the same input meets the same error code everywhere.
 */
export type ModelLocation =
  | {readonly kind: 'preset'; readonly preset: ModelPreset}
  | {readonly kind: 'path'; readonly configPath: string; readonly dir: string}

/**
 * `--model` → its location: a preset name (case-insensitive, presets win over same-named paths),
 * a model directory (its config.json), or a file taken as the config.json of its directory.
 * Only stats the path; special files are refused when read (`readModelJson`).
 */
export function locateModel(model: string): ModelLocation {
  const preset = findPreset(model)
  if (preset) return {kind: 'preset', preset}
  let isDirectory: boolean
  try {
    if (model === '' || model.includes('\0')) throw Object.assign(new Error('no such path'), {code: 'ENOENT'})
    isDirectory = statSync(model).isDirectory()
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') {
      throw new UsageError('HPD_MODEL_NOT_FOUND', `--model ${model} is neither a preset nor an existing path`, {
        hint: `Presets: ${PRESETS.map((p) => p.name).join(', ')}; or pass a config.json file or a model directory.`,
        details: {flag: 'model', value: model},
      })
    }
    throw new UsageError('HPD_MODEL_UNREADABLE', `cannot read --model ${model}: ${code ?? 'EIO'}`, {
      hint: 'Check the path and its permissions.',
      details: {flag: 'model', value: model, errno: code ?? 'EIO'},
    })
  }
  return isDirectory ? {kind: 'path', configPath: join(model, 'config.json'), dir: model} : {kind: 'path', configPath: model, dir: dirname(model)}
}

/**
 * `--model` → ModelSpec: a preset name, a config.json path, or a model directory holding
 * config.json. The only file I/O of src/model's config path.
 */
export function loadModelSpec(model: string): ModelSpec {
  return loadModelSpecAt(locateModel(model), model)
}

/** The spec at a location `locateModel` found (`fallbackName` names a config without `_name_or_path`). */
export function loadModelSpecAt(location: ModelLocation, fallbackName: string = location.kind === 'preset' ? location.preset.name : location.configPath): ModelSpec {
  if (location.kind === 'preset') {
    const {preset} = location
    return parseModelConfig(preset.config, {name: preset.name, source: {kind: 'preset', preset: preset.name, builtFrom: preset.builtFrom}})
  }
  const raw = readConfigJson(location.configPath)
  return parseModelConfig(raw, {name: nameFromConfig(raw, fallbackName), source: {kind: 'file', path: location.configPath}})
}

/** A config.json, bounded (FILE_LIMITS.configBytes) and parsed; errors never quote its text. */
export function readConfigJson(path: string): unknown {
  return readModelJson(path, {what: 'config.json', maxBytes: FILE_LIMITS.configBytes}, (where) =>
    new ModelConfigError('HPD_MODEL_BAD_JSON', `${path} is not valid JSON${where}`, {
      hint: 'Point --model at a Hugging Face config.json, or fix its JSON syntax.',
      details: {path},
    }),
  )
}

function nameFromConfig(raw: unknown, fallback: string): string {
  const named = (raw as {_name_or_path?: unknown})?._name_or_path
  return typeof named === 'string' && named !== '' && named.length <= 200 ? named : fallback
}
