import {basename, join, resolve} from 'node:path'

import {ModelConfigError} from '../errors.js'
import {enginePresetList, loadModelSpecAt, locateModel, type ModelSpec} from '../model/index.js'
import {dimsFromSpec, type ModelDims} from './model-dims.js'
import {ensureTinyModel} from './tiny-models.js'
import {loadTokenizer, type TextTokenizer} from './tokenizer.js'
import {loadWeights, type LoadWeightsOptions, type Weights} from './weights.js'

/** A model that can run: its name, the directory holding its files, and its validated spec. */
export interface ModelDirectory {
  /** The preset name, or the model directory's base name (what `serve` calls the model, and what messages name). */
  readonly name: string
  /** The directory the weights and tokenizer are read from (absolute for a path: workers start elsewhere). */
  readonly dir: string
  readonly spec: ModelSpec
}

export interface LoadedModel extends ModelDirectory {
  readonly dims: ModelDims
  readonly weights: Weights
  readonly tokenizer: TextTokenizer
}

/**
 * `--model` → a runnable model directory: the one resolver of every command that runs a model
 * (generate, serve and its workers, bench serve). A tiny preset is generated into the cache dir on
 * first use; another preset has a layout but no weights (HPD_ENGINE_PRESET_WITHOUT_WEIGHTS); a
 * path is located and its config.json read by src/model (`locateModel`, `loadModelSpecAt`), so the
 * same bad input meets the same code here as in `inspect-layout` and `bench transfer`.
 */
export function resolveModelDir(model: string): ModelDirectory {
  const location = locateModel(model)
  if (location.kind === 'preset') {
    const {preset} = location
    const dir = ensureTinyModel(preset.name)
    if (!dir) {
      throw new ModelConfigError('HPD_ENGINE_PRESET_WITHOUT_WEIGHTS', `preset ${preset.name} describes a layout only; hpd has no weights for it`, {
        hint: `Use a tiny preset (${enginePresetList()}), or a local Hugging Face model directory.`,
        details: {flag: 'model', value: preset.name},
      })
    }
    return {name: preset.name, dir, spec: {...loadModelSpecAt({kind: 'path', configPath: join(dir, 'config.json'), dir}), name: preset.name}}
  }
  // Served under its directory's name (what a client sends as "model"); the spec keeps the
  // config's `_name_or_path` for results, and messages use `name`, never text read from the file.
  const dir = resolve(location.dir)
  return {name: basename(dir), dir, spec: loadModelSpecAt(location, model)}
}

/**
 * `--model` → everything the engine needs: the resolved directory, its dims (the engine's view of
 * the spec), weights checked tensor by tensor against the config (bf16 kept as bf16 unless
 * `weightDtype: 'fp32'`), and the tokenizer.
 */
export function loadModel(model: string, options: LoadWeightsOptions = {}): LoadedModel {
  const resolved = resolveModelDir(model)
  const dims = dimsFromSpec(resolved.spec)
  return {...resolved, dims, weights: loadWeights(resolved.dir, dims, options), tokenizer: loadTokenizer(resolved.dir)}
}
